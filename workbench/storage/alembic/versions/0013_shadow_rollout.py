"""A challenger's percentage rollout: the share of cards it decides for.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

``shadow_rule_sets.rollout``: percent (0..100) of the cards, by a stable hash of the card id,
whose transactions the challenger decides (stored and alerting) while the active set's verdict
goes to ``shadow_scores`` (:mod:`workbench.scoring.rollout`). 0, the default, is the plain
shadow: every row written before this revision keeps its meaning.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "shadow_rule_sets",
        sa.Column("rollout", sa.SmallInteger, nullable=False, server_default=sa.text("0")),
    )
    op.create_check_constraint(
        "shadow_rule_sets_rollout", "shadow_rule_sets", "rollout BETWEEN 0 AND 100"
    )


def downgrade() -> None:
    op.drop_constraint("shadow_rule_sets_rollout", "shadow_rule_sets", type_="check")
    op.drop_column("shadow_rule_sets", "rollout")
