"""Alerts: the analysts' queue, the transactions attached to one alert, closing one.

Alerts are opened inside the batch write (:mod:`workbench.storage.alerting`); these are the
reads and the analysts' one write. Through a store: ``store.alerts.page(status="open")``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

from workbench.errors import StorageError
from workbench.storage import tables
from workbench.storage.connection import storage_errors
from workbench.storage.frames import Source, fetch, one, raw

__all__ = ["hits", "open_count", "page", "set_disposition"]

DISPOSITIONS = ("confirmed_fraud", "false_positive", "valuable")

_ALERTS = tables.alerts
_ALERT_COLUMNS = (
    "id",
    "status",
    "disposition",
    "assignee",
    "notes",
    "tx_id",
    "ts",
    "card_id",
    "risk_score",
    "band",
    "hit_count",
    "last_ts",
    "rules",
    "rule_set_version",
    "created_at",
    "updated_at",
    "closed_at",
)


def page(
    source: Source,
    status: str | None = None,
    limit: int = 100,
    *,
    alert_id: int | None = None,
) -> pd.DataFrame:
    """Alerts, newest first; only ``status`` ('open' or 'closed') or the one ``alert_id``
    when given."""
    query = sa.select(*(_ALERTS.c[c] for c in _ALERT_COLUMNS))
    if status:
        query = query.where(_ALERTS.c.status == status)
    if alert_id is not None:
        query = query.where(_ALERTS.c.id == int(alert_id))
    query = query.order_by(_ALERTS.c.id.desc()).limit(int(limit))
    return fetch(source, query, "cannot read alerts")


def hits(source: Source, alert_id: int) -> pd.DataFrame:
    """The transactions attached to one alert (the opening one included), oldest first."""
    h = tables.alert_hits
    query = sa.select(*h.c).where(h.c.alert_id == int(alert_id)).order_by(h.c.ts, h.c.tx_id)
    return fetch(source, query, "cannot read alert hits")


def set_disposition(
    source: Source, alert_id: int, disposition: str, user: str, notes: str | None = None
) -> dict[str, dict[str, Any]]:
    """Close an alert with the analyst's verdict (confirmed_fraud, false_positive, valuable).

    Returns ``{"before": ..., "after": ...}``: the alert's status, disposition, assignee and
    notes as they were and as written (read under the row lock, for the audit row).
    """
    if disposition not in DISPOSITIONS:
        raise StorageError(
            f"unknown disposition {disposition!r}: use one of " + ", ".join(DISPOSITIONS)
        )
    with raw(source) as conn, storage_errors(f"cannot close alert {alert_id}"), conn.transaction():
        row = conn.execute(_CLOSE, (int(alert_id), disposition, user, notes)).fetchone()
    if row is None:
        raise StorageError(f"cannot close alert {alert_id}: no such alert")
    half = len(_STATE)
    return {
        "before": dict(zip(_STATE, row[:half], strict=True)),
        "after": dict(zip(_STATE, row[half:], strict=True)),
    }


_STATE = ("status", "disposition", "assignee", "notes")
# The old values come from a locked read in the same statement (RETURNING sees only new ones).
_CLOSE = """
WITH old AS (
    SELECT id, status, disposition, assignee, notes FROM alerts WHERE id = %s FOR UPDATE
)
UPDATE alerts a SET status = 'closed', disposition = %s, assignee = %s,
    notes = coalesce(%s, a.notes), closed_at = now(), updated_at = now()
FROM old WHERE a.id = old.id
RETURNING old.status, old.disposition, old.assignee, old.notes,
          a.status, a.disposition, a.assignee, a.notes
"""


def open_count(source: Source) -> int:
    """How many alerts are open (served by the partial index on open alerts)."""
    query = sa.select(sa.func.count()).select_from(_ALERTS).where(_ALERTS.c.status == "open")
    return int(one(source, query, "cannot count open alerts")[0])
