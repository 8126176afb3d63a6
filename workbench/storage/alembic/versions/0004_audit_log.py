"""The append-only audit trail (audit_log).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Privileges decide who may insert; these triggers make the trail append-only for everyone,
# the table's owner included (only dropping the trigger, itself a schema change, lifts it).
APPEND_ONLY = """
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: %% refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
"""


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("at", ts, nullable=False, server_default=sa.func.clock_timestamp()),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("role", sa.Text),
        sa.Column("provider", sa.Text),
        sa.Column("address", sa.Text),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("object", sa.Text),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("before", JSONB),
        sa.Column("after", JSONB),
        sa.Column("detail", sa.Text),
        sa.CheckConstraint(
            "outcome IN ('ok', 'refused', 'failed')", name="audit_log_outcome_check"
        ),
    )
    op.create_index("audit_log_at", "audit_log", ["at"])
    op.create_index("audit_log_actor_at", "audit_log", ["actor", "at"])
    op.create_index("audit_log_action_at", "audit_log", ["action", "at"])
    op.get_bind().exec_driver_sql(APPEND_ONLY)


def downgrade() -> None:
    op.drop_table("audit_log")
    op.get_bind().exec_driver_sql("DROP FUNCTION audit_log_append_only()")
