"""Maintained allow/block lists (list_entries), per-entity rule snoozes (rule_snoozes) and
the evidence of alerted decisions (alert_evidence).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    ident = sa.Text(collation="C")
    op.create_table(
        "alert_evidence",
        sa.Column("tx_id", ident, primary_key=True),
        sa.Column("ts", ts, nullable=False),
        sa.Column("evidence", JSONB, nullable=False),
    )
    op.create_table(
        "list_entries",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("list_name", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("value", ident, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("added_by", sa.Text, nullable=False),
        sa.Column("added_at", ts, nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", ts),
        sa.CheckConstraint(
            "kind IN ('card', 'merchant', 'terminal', 'country')", name="list_entries_kind_check"
        ),
        sa.CheckConstraint("char_length(value) BETWEEN 1 AND 128", name="list_entries_value_check"),
    )
    op.create_index("list_entries_list_value", "list_entries", ["list_name", "value"], unique=True)
    op.create_table(
        "rule_snoozes",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("rule_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("value", ident, nullable=False),
        sa.Column("until", ts, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", ts, nullable=False, server_default=sa.func.now()),
        sa.Column("lifted_at", ts),
        sa.Column("lifted_by", sa.Text),
        sa.CheckConstraint(
            "kind IN ('card', 'merchant', 'terminal')", name="rule_snoozes_kind_check"
        ),
    )
    op.create_index(
        "rule_snoozes_active",
        "rule_snoozes",
        ["rule_id", "kind", "value"],
        postgresql_where=sa.text("lifted_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("rule_snoozes")
    op.drop_table("list_entries")
    op.drop_table("alert_evidence")
