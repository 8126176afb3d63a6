"""One identity per transaction (transaction_ids) and dead-letter fingerprints (old 6).

Revision ID: 0003
Revises: 0002
Create Date: 2026-01-03
"""

from __future__ import annotations

from alembic import op

from workbench.storage import legacy

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Keeps the oldest copy of a tx_id stored with several timestamps, and the oldest of
    # identical dead letters: see workbench.storage.legacy (version 6) for why.
    op.get_bind().exec_driver_sql(legacy.sql(6))


def downgrade() -> None:
    raise NotImplementedError("deleted duplicate rows cannot be restored; restore a backup")
