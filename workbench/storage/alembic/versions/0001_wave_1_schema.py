"""The wave-1 schema: the old runner's migrations 1-4 (tables, indexes, the throughput view).

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

from alembic import op

from workbench.storage import legacy

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The frozen SQL of the old runner, so both runners build the same schema. Through the
    # driver: several statements at once, and SQL text with "::" casts taken as is.
    op.get_bind().exec_driver_sql(legacy.sql(1, 2, 3, 4))


def downgrade() -> None:
    op.get_bind().exec_driver_sql(
        "DROP VIEW IF EXISTS pipeline_throughput;"
        " DROP TABLE alert_hits, alerts, dead_letters, pipeline_stats, rule_sets, transactions"
    )
