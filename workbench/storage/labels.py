"""Labels: what analysts (and chargeback files) say a transaction was, and when it was known.

A label row is ``(tx_id, label, known_at, source, actor, alert/case id)`` with the
transaction's ``ts``, ``card_id``, ``customer_id``, ``terminal_id`` and ``merchant_category``
copied in, so label-aware features and precision queries need no join back to the
partitioned ``transactions``. Through a store: ``store.labels.precision(start, end)``.

Decisions, in one place:

- **History is kept.** The table is append-only (no role may UPDATE or DELETE it); the
  *current* label of a ``(tx_id, source)`` is its newest row (highest ``id``). A feature
  reading labels point-in-time sees a version from its ``known_at`` until the next
  version's ``known_at`` (:mod:`workbench.features.labels`), so an analyst who changes their
  mind changes the features only from then on.
- **Dispositions map to labels** (:data:`DISPOSITION_LABELS`): ``confirmed_fraud`` -> fraud,
  ``false_positive`` -> legitimate, ``valuable`` -> fraud ("a valuable alert" is Marble's
  ``valuable_alert``: the analyst found real risk worth acting on, so precision counts it as
  a true positive). Every transaction attached to the alert (``alert_hits``) is labelled.
- **known_at is event time.** A disposition happens at wall-clock time, transactions carry
  the stream's event time (the simulator runs its own clock). A disposition's ``known_at`` is
  the stream's *now* when it was written: the newest stored transaction's ``ts`` (never
  before the labelled transaction's own ``ts``). Replaying or backtesting the stored history
  then puts the label exactly where the stream saw it. Chargeback files give ``known_at``
  explicitly (:mod:`workbench.storage.label_import`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on

from workbench.errors import StorageError
from workbench.storage import tables
from workbench.storage.connection import storage_errors
from workbench.storage.frames import Source, fetch, one, raw

__all__ = ["current", "from_dispositions", "known", "precision", "since", "stream_now"]

LABELS = tables.LABELS
DISPOSITION_LABELS = {
    "confirmed_fraud": "fraud",
    "false_positive": "legitimate",
    "valuable": "fraud",
}
ANALYST = "analyst"
FEATURE_COLUMNS = (
    "id",
    "tx_id",
    "ts",
    "card_id",
    "customer_id",
    "terminal_id",
    "merchant_category",
    "label",
    "known_at",
    "source",
)
"""What the feature engine reads of a label row."""

_L = tables.labels


def label_of(disposition_or_label: str) -> str:
    """``fraud`` or ``legitimate`` from a disposition or a label; a StorageError otherwise."""
    value = DISPOSITION_LABELS.get(disposition_or_label, disposition_or_label)
    if value not in LABELS:
        choices = ", ".join([*DISPOSITION_LABELS, *LABELS])
        raise StorageError(f"unknown label {disposition_or_label!r}: use one of {choices}")
    return value


# One statement: every transaction attached to the alerts, its columns copied from the stored
# transaction (the join on (tx_id, ts) prunes to one partition per hit), known_at defaulting
# to the stream's now. DISTINCT: a transaction attached to two of the alerts is labelled once.
_FROM_DISPOSITIONS = """
INSERT INTO labels (tx_id, ts, card_id, customer_id, terminal_id, merchant_category,
                    label, known_at, source, actor, alert_id, case_id)
SELECT DISTINCT ON (t.tx_id) t.tx_id, t.ts, t.card_id, t.customer_id, t.terminal_id,
       t.merchant_category, %(label)s,
       greatest(coalesce(%(known_at)s::timestamptz,
                         (SELECT max(ts) FROM transactions), t.ts), t.ts),
       %(source)s, %(actor)s, h.alert_id, %(case_id)s
FROM alert_hits h JOIN transactions t ON t.tx_id = h.tx_id AND t.ts = h.ts
WHERE h.alert_id = ANY(%(alert_ids)s)
ORDER BY t.tx_id, h.alert_id
"""


def from_dispositions(
    conn: Source,
    alert_ids: list[int],
    label: str,
    known_at: datetime | None,
    actor: str,
    *,
    case_id: int | None = None,
    source: str = ANALYST,
) -> int:
    """Label every transaction attached to ``alert_ids`` (one INSERT ... SELECT); the number
    of label rows written. ``label``: ``fraud``/``legitimate`` or a disposition (mapped by
    :data:`DISPOSITION_LABELS`). ``known_at`` None: the stream's now (module docstring).

    On a psycopg connection inside a transaction (the disposition's), the labels commit or
    roll back with it.
    """
    params: dict[str, Any] = {
        "label": label_of(label),
        "known_at": known_at,
        "source": source,
        "actor": str(actor)[:200],
        "case_id": case_id,
        "alert_ids": [int(a) for a in alert_ids],
    }
    with raw(conn) as c, storage_errors("cannot write labels"), c.transaction():
        return c.execute(_FROM_DISPOSITIONS, params).rowcount


def stream_now(source: Source) -> pd.Timestamp | None:
    """The newest stored transaction's ts (the stream's event-time now), None when empty."""
    t = tables.transactions
    (value,) = one(source, sa.select(sa.func.max(t.c.ts)), "cannot read the stream's time")
    return None if value is None else pd.Timestamp(value).tz_convert("UTC")


def since(
    source: Source, after_id: int = 0, limit: int = 50_000, *, ts_from: datetime | None = None
) -> pd.DataFrame:
    """Label rows with ``id > after_id``, by id, at most ``limit`` (the worker's incremental
    read: keyset on the primary key, so each call costs what it returns); with ``ts_from``
    only labels of transactions at or after it (older ones are outside every window)."""
    query = (
        sa.select(*(_L.c[c] for c in FEATURE_COLUMNS))
        .where(_L.c.id > int(after_id))
        .order_by(_L.c.id)
        .limit(int(limit))
    )
    if ts_from is not None:
        query = query.where(_L.c.ts >= ts_from)
    return fetch(source, query, "cannot read labels")


def known(
    source: Source, before: datetime | None = None, *, ts_from: datetime | None = None
) -> pd.DataFrame:
    """Every label row (history included) known before ``before`` (default: all) of
    transactions at or after ``ts_from``, by id: what a backtest gives the features."""
    query = sa.select(*(_L.c[c] for c in FEATURE_COLUMNS)).order_by(_L.c.id)
    if before is not None:
        query = query.where(_L.c.known_at < before)
    if ts_from is not None:
        query = query.where(_L.c.ts >= ts_from)
    return fetch(source, query, "cannot read labels")


def current(
    source: Source,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    label_source: str = ANALYST,
) -> pd.DataFrame:
    """The current label (newest row) of each labelled transaction with ``start <= ts <
    end``, from ``label_source``: columns tx_id, ts, label, known_at, actor, alert_id."""
    cols = ("tx_id", "ts", "label", "known_at", "actor", "alert_id")
    query = (
        sa.select(*(_L.c[c] for c in cols))
        .ext(distinct_on(_L.c.tx_id))
        .where(_L.c.source == label_source)
        .order_by(_L.c.tx_id, _L.c.id.desc())
    )
    if start is not None:
        query = query.where(_L.c.ts >= start)
    if end is not None:
        query = query.where(_L.c.ts < end)
    return fetch(source, query, "cannot read labels")


def precision(
    source: Source,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    label_source: str = ANALYST,
) -> pd.DataFrame:
    """Per rule id: the stored transactions with ``start <= ts < end`` that the rule hit and
    that carry a current ``label_source`` label — ``labelled``, ``fraud``, ``legitimate`` and
    ``precision`` (fraud / labelled). Driven from the labels (few) to their transactions (by
    ``(tx_id, ts)``: one partition each); rules that hit no labelled transaction are absent.
    """
    empty = pd.DataFrame(
        {
            "rule_id": pd.Series([], dtype="str"),
            "labelled": pd.Series([], dtype="int64"),
            "fraud": pd.Series([], dtype="int64"),
            "legitimate": pd.Series([], dtype="int64"),
            "precision": pd.Series([], dtype="float64"),
        }
    )
    with raw(source) as conn, storage_errors("cannot read rule precision"):
        rows = conn.execute(
            _PRECISION, {"source": label_source, "start": start, "end": end}
        ).fetchall()
    if not rows:
        return empty
    frame = pd.DataFrame(rows, columns=["rule_id", "labelled", "fraud"])
    frame["rule_id"] = frame["rule_id"].astype("str")
    frame[["labelled", "fraud"]] = frame[["labelled", "fraud"]].astype("int64")
    frame["legitimate"] = frame["labelled"] - frame["fraud"]
    frame["precision"] = frame["fraud"] / frame["labelled"]
    return frame.sort_values(["labelled", "rule_id"], ascending=[False, True], ignore_index=True)


_PRECISION = """
WITH cur AS (
    SELECT DISTINCT ON (tx_id) tx_id, ts, label FROM labels
    WHERE source = %(source)s
      AND (%(start)s::timestamptz IS NULL OR ts >= %(start)s::timestamptz)
      AND (%(end)s::timestamptz IS NULL OR ts < %(end)s::timestamptz)
    ORDER BY tx_id, id DESC
)
SELECT r.rule_id, count(*), count(*) FILTER (WHERE cur.label = 'fraud')
FROM cur JOIN transactions t ON t.tx_id = cur.tx_id AND t.ts = cur.ts
CROSS JOIN LATERAL jsonb_object_keys(t.rule_hits) AS r(rule_id)
GROUP BY r.rule_id
"""
