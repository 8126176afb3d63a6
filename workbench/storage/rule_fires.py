"""Rule fires: aggregates of stored ``rule_hits`` for rule health (fire rates, overlap) and of
stored scores per card and day for capacity-aware thresholds.

Each answer is aggregated in PostgreSQL, so it costs rules x buckets (or cards x days) rows,
never one row per transaction. Ranges are event time, ``[start, end)``; buckets are aligned
to UTC midnight (as :func:`workbench.storage.transactions.bucketed`).

- :func:`fire_counts`  per bucket: ``transactions`` and, per rule id, ``hits`` (long frame);
- :func:`co_hits`      per ordered pair of rule ids (a, b): transactions both hit (a == b:
  the rule's own hits), the overlap matrix's numerator and denominator;
- :func:`card_days`    per (UTC day, card): the card's highest stored score, whether the
  simulator marked any of its transactions fraud, and its current analyst label of the day.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import sqlalchemy as sa

from workbench.storage.frames import Source, fetch
from workbench.storage.labels import ANALYST, stream_now

__all__ = ["card_days", "co_hits", "fire_counts", "span"]

_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)

# Totals count every row; the keys are expanded only for rows that hit (a few per cent).
_FIRE_COUNTS = """
WITH totals AS (
    SELECT date_bin(:step, ts, :origin) AS bucket, count(*) AS transactions FROM transactions
    WHERE ts >= :start AND ts < :end GROUP BY 1
), hit AS MATERIALIZED (
    SELECT date_bin(:step, ts, :origin) AS bucket, rule_hits FROM transactions
    WHERE ts >= :start AND ts < :end AND rule_hits <> '{}'::jsonb
), hits AS (
    SELECT bucket, r.rule_id, count(*) AS hits
    FROM hit CROSS JOIN LATERAL jsonb_object_keys(hit.rule_hits) AS r(rule_id)
    GROUP BY bucket, r.rule_id
)
SELECT totals.bucket, totals.transactions, hits.rule_id, coalesce(hits.hits, 0) AS hits
FROM totals LEFT JOIN hits USING (bucket)
ORDER BY totals.bucket, hits.rule_id
"""

_CO_HITS = """
WITH hit AS MATERIALIZED (
    SELECT rule_hits FROM transactions
    WHERE ts >= :start AND ts < :end AND rule_hits <> '{}'::jsonb
)
SELECT a.rule_id AS rule_a, b.rule_id AS rule_b, count(*) AS both_hit
FROM hit
CROSS JOIN LATERAL jsonb_object_keys(hit.rule_hits) AS a(rule_id)
CROSS JOIN LATERAL jsonb_object_keys(hit.rule_hits) AS b(rule_id)
GROUP BY 1, 2 ORDER BY 1, 2
"""

# The analyst label of a card-day: fraud when any current label of its transactions that day
# says fraud, legitimate when labelled but none says fraud, null when none is labelled.
_CARD_DAYS = """
WITH cur AS (
    SELECT DISTINCT ON (tx_id) tx_id, ts, card_id, label FROM labels
    WHERE source = :source AND ts >= :start AND ts < :end
    ORDER BY tx_id, id DESC
), lab AS (
    SELECT date_bin('1 day', ts, :origin) AS day, card_id,
           bool_or(label = 'fraud') AS analyst_fraud
    FROM cur GROUP BY 1, 2
), s AS (
    SELECT date_bin('1 day', ts, :origin) AS day, card_id, max(risk_score) AS score,
           bool_or(is_fraud) AS simulator_fraud
    FROM transactions WHERE ts >= :start AND ts < :end GROUP BY 1, 2
)
SELECT s.day, s.card_id, s.score, s.simulator_fraud, lab.analyst_fraud
FROM s LEFT JOIN lab USING (day, card_id)
ORDER BY s.day, s.card_id
"""


def span(source: Source, days: float) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[start, end)`` of the last ``days`` of event time: from UTC midnight ``days`` before
    the stream's now (the newest stored transaction; the wall clock when none) to just after
    it."""
    now = stream_now(source) or pd.Timestamp.now(tz="UTC")
    end = now + pd.Timedelta(microseconds=1)
    return (end - pd.Timedelta(days=days)).floor("1D"), end


def fire_counts(
    source: Source, start: datetime, end: datetime, bucket: timedelta = timedelta(days=1)
) -> pd.DataFrame:
    """Long frame ``bucket, transactions, rule_id, hits``: one row per (bucket, rule that hit
    in it); a bucket with transactions but no hit has one row with a null ``rule_id`` and 0
    hits. Buckets without transactions are absent."""
    params = {"step": bucket, "origin": _ORIGIN, "start": start, "end": end}
    columns = {"bucket": _TS, "transactions": _INT, "rule_id": _TEXT, "hits": _INT}
    return _read(source, _FIRE_COUNTS, params, columns, "cannot read rule fire counts")


def co_hits(source: Source, start: datetime, end: datetime) -> pd.DataFrame:
    """Long frame ``rule_a, rule_b, both_hit`` over the transactions of ``[start, end)``."""
    columns = {"rule_a": _TEXT, "rule_b": _TEXT, "both_hit": _INT}
    return _read(
        source, _CO_HITS, {"start": start, "end": end}, columns, "cannot read rule overlaps"
    )


def card_days(
    source: Source, start: datetime, end: datetime, *, label_source: str = ANALYST
) -> pd.DataFrame:
    """Frame ``day, card_id, score, simulator_fraud, analyst_fraud`` (the two truths are
    nullable booleans: null = that truth has no label for the card-day)."""
    params = {"source": label_source, "origin": _ORIGIN, "start": start, "end": end}
    columns = {"day": _TS, "card_id": _TEXT, "score": sa.Double(), "simulator_fraud": _BOOL,
               "analyst_fraud": _BOOL}  # fmt: skip
    return _read(source, _CARD_DAYS, params, columns, "cannot read card-day scores")


_TS, _INT, _TEXT, _BOOL = sa.DateTime(timezone=True), sa.BigInteger(), sa.Text(), sa.Boolean()


def _read(source: Source, text: str, params: dict, columns: dict, action: str) -> pd.DataFrame:
    return fetch(source, sa.text(text).bindparams(**params).columns(**columns), action)
