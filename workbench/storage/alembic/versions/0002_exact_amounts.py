"""Exact money: transactions.amount becomes numeric(14,2) (old migration 5).

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02
"""

from __future__ import annotations

from alembic import op

from workbench.storage import legacy

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ALTER ... TYPE on the partitioned parent converts every partition in place, rounding a
    # wave-1 double to the cent.
    op.get_bind().exec_driver_sql(legacy.sql(5))


def downgrade() -> None:
    op.get_bind().exec_driver_sql(
        "ALTER TABLE transactions ALTER COLUMN amount TYPE double precision"
    )
