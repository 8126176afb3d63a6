"""Labels: analysts' dispositions and imported chargebacks, with the time each became known.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

Self-contained (one new table, nothing else touched), so it can be re-chained after any
other revision. Append-only by privilege: no role is granted UPDATE or DELETE on it
(:mod:`workbench.storage.roles`); a newer row for the same (tx_id, source) supersedes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    ident = sa.Text(collation="C")
    op.create_table(
        "labels",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("tx_id", ident, nullable=False),
        sa.Column("ts", ts, nullable=False),
        sa.Column("card_id", ident, nullable=False),
        sa.Column("customer_id", sa.Text),
        sa.Column("terminal_id", sa.Text),
        sa.Column("merchant_category", sa.Text),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("known_at", ts, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("alert_id", sa.BigInteger),
        sa.Column("case_id", sa.BigInteger),
        sa.Column("created_at", ts, nullable=False, server_default=sa.func.clock_timestamp()),
        sa.CheckConstraint("label IN ('fraud', 'legitimate')", name="labels_label_check"),
        sa.CheckConstraint("source ~ '^[a-z][a-z0-9_]{0,31}$'", name="labels_source_check"),
        sa.CheckConstraint("known_at >= ts", name="labels_known_after_ts"),
    )
    op.create_index("labels_tx_source", "labels", ["tx_id", "source", "id"])
    op.create_index("labels_ts", "labels", ["ts"])


def downgrade() -> None:
    op.drop_table("labels")
