"""Cases: one per card while not closed, with a timeline; alerts belong to a case.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

The queue's indexes are partial on active cases (``status <> 'closed'``): the queue shows
active cases by default, and a partial index is as small as the active set, not the whole
history. Open alerts of an existing database are gathered into one case per card (their
counts, maximum score and rules), so the queue is not empty after the upgrade.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status <> 'closed'")

BACKFILL = """
WITH c AS (
    INSERT INTO cases (card_id, sla_due, alert_count, hit_count, max_score, band, rules,
                       first_ts, last_ts, opened_at)
    SELECT card_id, min(created_at) + interval '24 hours', count(*), sum(hit_count),
           max(risk_score), (array_agg(band ORDER BY risk_score DESC))[1],
           (SELECT jsonb_object_agg(k, p) FROM (
                SELECT e.key AS k, max(e.value::double precision) AS p
                FROM alerts x, jsonb_each(x.rules) e
                WHERE x.card_id = a.card_id AND x.status = 'open' GROUP BY e.key) r),
           min(ts), max(last_ts), min(created_at)
    FROM alerts a WHERE status = 'open' GROUP BY card_id
    RETURNING id, card_id
)
UPDATE alerts a SET case_id = c.id FROM c WHERE a.card_id = c.card_id AND a.status = 'open'
"""


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "cases",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("card_id", sa.Text(collation="C"), nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'open'::text")),
        sa.Column("assignee", sa.Text),
        sa.Column("claimed_at", ts),
        sa.Column("opened_at", ts, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", ts, nullable=False, server_default=sa.func.now()),
        sa.Column("closed_at", ts),
        sa.Column("sla_due", ts, nullable=False),
        sa.Column("outcome", sa.Text),
        sa.Column("alert_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("hit_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("max_score", sa.Double, nullable=False),
        sa.Column("band", sa.Text, nullable=False),
        sa.Column("max_amount", sa.Numeric(14, 2), nullable=False, server_default=sa.text("0")),
        sa.Column("rules", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("first_ts", ts, nullable=False),
        sa.Column("last_ts", ts, nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'investigating', 'closed')", name="cases_status_check"
        ),
        sa.CheckConstraint(
            "outcome IN ('confirmed_fraud', 'false_positive', 'valuable')",
            name="cases_outcome_check",
        ),
        sa.CheckConstraint(
            "(status = 'closed') = (closed_at IS NOT NULL)", name="cases_closed_check"
        ),
    )
    op.create_index("cases_active_card", "cases", ["card_id"], unique=True, postgresql_where=ACTIVE)
    desc = [sa.text("max_score DESC"), sa.text("id DESC")]
    op.create_index("cases_active_score", "cases", desc, postgresql_where=ACTIVE)
    op.create_index("cases_active_opened", "cases", ["opened_at", "id"], postgresql_where=ACTIVE)
    op.create_index("cases_active_sla", "cases", ["sla_due", "id"], postgresql_where=ACTIVE)
    op.create_index(
        "cases_active_amount",
        "cases",
        [sa.text("max_amount DESC"), sa.text("id DESC")],
        postgresql_where=ACTIVE,
    )
    op.create_index("cases_active_assignee", "cases", ["assignee", *desc], postgresql_where=ACTIVE)
    for column in ("band", "status"):
        op.create_index(f"cases_active_{column}", "cases", [column, *desc], postgresql_where=ACTIVE)
    op.create_index("cases_rules", "cases", ["rules"], postgresql_using="gin")
    closed = sa.text("status = 'closed'")
    op.create_index("cases_closed", "cases", ["closed_at", "id"], postgresql_where=closed)
    op.create_table(
        "case_events",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("case_id", sa.BigInteger, nullable=False),
        sa.Column("at", ts, nullable=False, server_default=sa.func.clock_timestamp()),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("detail", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], ondelete="CASCADE", name="case_events_case_id_fkey"
        ),
    )
    op.create_index("case_events_case_at", "case_events", ["case_id", "at"])
    op.add_column("alerts", sa.Column("case_id", sa.BigInteger))
    op.create_foreign_key("alerts_case_id_fkey", "alerts", "cases", ["case_id"], ["id"])
    op.create_index("alerts_case", "alerts", ["case_id"])
    op.get_bind().exec_driver_sql(BACKFILL)


def downgrade() -> None:
    op.drop_index("alerts_case", "alerts")
    op.drop_constraint("alerts_case_id_fkey", "alerts")
    op.drop_column("alerts", "case_id")
    op.drop_table("case_events")
    op.drop_table("cases")
