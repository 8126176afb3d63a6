"""A challenger rule set scored in the shadow of the active one.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

``shadow_rule_sets`` is append-only: its newest row is the challenger in effect (a row with
no version clears it). ``shadow_scores`` holds what the challenger made of each transaction
(score, band, hits, version): no alert, case or evidence is ever made from it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_TS = sa.TIMESTAMP(timezone=True)


def upgrade() -> None:
    op.create_table(
        "shadow_rule_sets",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("version", sa.Text),
        sa.Column("files", JSONB),
        sa.Column("author", sa.Text),
        sa.Column("created_at", _TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "shadow_scores",
        sa.Column("tx_id", sa.Text(collation="C"), nullable=False),
        sa.Column("ts", _TS, nullable=False),
        sa.Column("risk_score", sa.Double, nullable=False),
        sa.Column("band", sa.Text, nullable=False),
        sa.Column("rule_hits", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("rule_set_version", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("tx_id", "rule_set_version", name="shadow_scores_pkey"),
    )
    op.create_index("shadow_scores_ts", "shadow_scores", ["ts"])


def downgrade() -> None:
    op.drop_index("shadow_scores_ts", table_name="shadow_scores")
    op.drop_table("shadow_scores")
    op.drop_table("shadow_rule_sets")
