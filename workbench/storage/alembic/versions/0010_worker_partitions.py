"""A Kafka worker's partitions and lag (health view) and its batch's offsets (the next offset
per partition, to find a log that lost messages) on each of its pipeline_stats rows.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pipeline_stats", sa.Column("partitions", ARRAY(sa.Integer())))
    op.add_column("pipeline_stats", sa.Column("lag", sa.BigInteger()))
    op.add_column("pipeline_stats", sa.Column("offsets", JSONB))


def downgrade() -> None:
    op.drop_column("pipeline_stats", "offsets")
    op.drop_column("pipeline_stats", "lag")
    op.drop_column("pipeline_stats", "partitions")
