"""Each pipeline_stats row carries the id of the transaction that committed its batch
(``xact``, the 64-bit ``pg_current_xact_id()`` as bigint, indexed), so a worker can find
the batches other workers committed since a snapshot of its own
(:mod:`workbench.storage.committed`).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

The column is added without a default first, then given one: a volatile default on
``ADD COLUMN`` would rewrite the table, filling the rows already there (which no snapshot
taken from now on can miss) with the migration's own transaction id.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

XACT_DEFAULT = "((pg_current_xact_id())::text)::bigint"


def upgrade() -> None:
    op.add_column("pipeline_stats", sa.Column("xact", sa.BigInteger()))
    op.alter_column("pipeline_stats", "xact", server_default=sa.text(XACT_DEFAULT))
    op.create_index("pipeline_stats_xact", "pipeline_stats", ["xact"])


def downgrade() -> None:
    op.drop_index("pipeline_stats_xact", table_name="pipeline_stats")
    op.drop_column("pipeline_stats", "xact")
