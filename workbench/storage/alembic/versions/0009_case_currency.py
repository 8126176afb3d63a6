"""Cases keep the currency of their largest amount.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

A case's ``max_amount`` is in the currency of the transaction it came from; the queue shows
them together. The batch write keeps both (storage/alerting.py); existing cases read it once
here from their card's transaction of that amount (None when it is gone).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BACKFILL = """
UPDATE cases c SET currency = (
    SELECT t.currency FROM transactions t
    WHERE t.card_id = c.card_id AND t.ts BETWEEN c.first_ts AND c.last_ts
      AND t.amount = c.max_amount
    LIMIT 1)
"""


def upgrade() -> None:
    op.add_column("cases", sa.Column("currency", sa.Text))
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_column("cases", "currency")
