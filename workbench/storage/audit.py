"""The audit trail: who did, or was refused, what and when (``audit_log``, append-only).

Every state-changing action of the dashboard and the CLI writes one row — rule publish and
rollback, claims, dispositions, list and snooze edits, user changes, logins — and so does
every refusal (a role that may not, a failed login). Write the row in the same transaction as
the change it describes (pass that transaction's connection as ``source``), so a change is
never stored without its row. The database refuses UPDATE, DELETE and TRUNCATE on the table
(a trigger, revision 0004).

Through a store: ``store.audit.record(actor="alice", ...)``, ``store.audit.recent()``.

Values are bounded before the database: long names and objects are cut (an outside value
never makes the audit write fail), ``before`` / ``after`` are JSON documents.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from psycopg.types.json import Jsonb

from workbench.errors import StorageError
from workbench.storage import tables
from workbench.storage.connection import storage_errors
from workbench.storage.frames import Source, fetch, raw

__all__ = ["recent", "record"]

OUTCOMES = tables.AUDIT_OUTCOMES
_SHORT, _LONG = 200, 4000  # characters kept of names/objects, and of a detail


def record(
    source: Source,
    *,
    actor: str,
    action: str,
    outcome: str = "ok",
    role: str | None = None,
    provider: str | None = None,
    address: str | None = None,
    object: str | None = None,
    before: Any = None,
    after: Any = None,
    detail: str | None = None,
) -> int:
    """Append one row; its id. On a psycopg connection inside a transaction, the row is part
    of that transaction; otherwise it commits on its own."""
    if outcome not in OUTCOMES:
        raise StorageError(f"unknown audit outcome {outcome!r}: use one of {', '.join(OUTCOMES)}")
    values = (
        _cut(actor, _SHORT) or "unknown",
        _cut(role, _SHORT),
        _cut(provider, _SHORT),
        _cut(address, _SHORT),
        _cut(action, _SHORT),
        _cut(object, _SHORT),
        outcome,
        None if before is None else Jsonb(before),
        None if after is None else Jsonb(after),
        _cut(detail, _LONG),
    )
    with (
        raw(source) as conn,
        storage_errors("cannot write the audit trail"),
        conn.transaction(),  # a savepoint inside the caller's transaction
    ):
        row = conn.execute(
            "INSERT INTO audit_log (actor, role, provider, address, action, object,"
            " outcome, before, after, detail)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            values,
        ).fetchone()
    assert row is not None
    return int(row[0])


def recent(
    source: Source,
    limit: int = 200,
    *,
    actor: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
) -> pd.DataFrame:
    """Audit rows, newest first, optionally of one actor, action (prefix: ``rules.`` matches
    every rule action), outcome or since a time: id, at, actor, role, provider, address,
    action, object, outcome, before, after, detail. ``before_id`` pages back: only rows older
    than that id (keyset paging: the next page is ``before_id=<last id shown>``)."""
    a = tables.audit_log.c
    query = sa.select(*tables.audit_log.columns).order_by(a.id.desc()).limit(int(limit))
    if actor is not None:
        query = query.where(a.actor == actor)
    if action is not None:
        query = query.where(a.action.startswith(action, autoescape=True))
    if outcome is not None:
        query = query.where(a.outcome == outcome)
    if since is not None:
        query = query.where(a.at >= since)
    if before_id is not None:
        query = query.where(a.id < int(before_id))
    return fetch(source, query, "cannot read the audit trail")


def _cut(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = str(value).replace("\x00", "\ufffd")  # PostgreSQL text cannot hold NUL
    return text if len(text) <= limit else text[: limit - 1] + "…"
