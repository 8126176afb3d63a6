"""Maintained allow/block lists (``list_entries``): read, add, remove, announce.

Values are validated before they get here (:func:`workbench.rules.lists.clean_value`), and
checked again by the table's constraints. A change is announced with ``NOTIFY
workbench_lists`` in the transaction that makes it (delivered at commit), so every worker
rebuilds its lookup between two batches (:mod:`workbench.pipeline.lists`).

Through a store: ``store.lists.entries("blocked_cards")``, ``store.lists.active()``.
Writes take the caller's transaction connection (the dashboard writes the audit row in the
same transaction).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from workbench.errors import StorageError
from workbench.rules.lists import MAX_ENTRIES
from workbench.storage import tables
from workbench.storage.connection import storage_errors
from workbench.storage.frames import Source, fetch, raw

__all__ = ["active", "add", "announce", "entries", "remove"]  # bound on the store (functions)

CHANNEL = "workbench_lists"
_LIST_LOCK = 0x77620008  # serialises additions to one list (the size bound), with hashtext


def entries(
    source: Source,
    list_name: str | None = None,
    *,
    limit: int = 1000,
    after_value: str | None = None,
) -> pd.DataFrame:
    """Entries (all, or of one list), ordered by list and value; keyset-paged: the next page
    is ``after_value=<last value shown>`` (with ``list_name``)."""
    e = tables.list_entries.c
    query = sa.select(*tables.list_entries.columns).order_by(e.list_name, e.value)
    if list_name is not None:
        query = query.where(e.list_name == list_name)
    if after_value is not None:
        query = query.where(e.value > after_value)
    return fetch(source, query.limit(int(limit)), "cannot read the lists")


def active(source: Source, now: datetime | None = None) -> pd.DataFrame:
    """``list_name``, ``value`` of every entry not expired (by the database clock, or
    ``now``): what scoring reads."""
    e = tables.list_entries.c
    clock = sa.func.now() if now is None else sa.literal(now)
    query = sa.select(e.list_name, e.value).where(
        sa.or_(e.expires_at.is_(None), e.expires_at > clock)
    )
    return fetch(source, query, "cannot read the lists")


def add(
    source: Source,
    list_name: str,
    kind: str,
    value: str,
    *,
    added_by: str,
    reason: str = "",
    expires_at: datetime | None = None,
) -> dict | None:
    """Add one (validated) value; the new row as a dict, or None when the list already
    holds it. Refused (StorageError) when the list is full (:data:`MAX_ENTRIES`)."""
    with raw(source) as conn, storage_errors(f"cannot add to list {list_name}"), conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LIST_LOCK, list_name))
        (count,) = conn.execute(
            "SELECT count(*) FROM list_entries WHERE list_name = %s", (list_name,)
        ).fetchone()
        if count >= MAX_ENTRIES:
            raise StorageError(f"list {list_name} is full ({MAX_ENTRIES:,} entries)")
        row = conn.execute(
            "INSERT INTO list_entries (list_name, kind, value, reason, added_by, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (list_name, value) DO NOTHING"
            " RETURNING id, list_name, kind, value, reason, added_by, added_at, expires_at",
            (list_name, kind, value, reason or None, added_by, expires_at),
        ).fetchone()
        if row is None:
            return None
        announce(conn)
    return _row(row)


def remove(source: Source, list_name: str, value: str) -> dict | None:
    """Remove one value; the removed row as a dict, or None when it was not there."""
    with (
        raw(source) as conn,
        storage_errors(f"cannot remove from list {list_name}"),
        conn.transaction(),
    ):
        row = conn.execute(
            "DELETE FROM list_entries WHERE list_name = %s AND value = %s"
            " RETURNING id, list_name, kind, value, reason, added_by, added_at, expires_at",
            (list_name, value),
        ).fetchone()
        if row is not None:
            announce(conn)
    return None if row is None else _row(row)


def announce(source: Source) -> None:
    """``NOTIFY workbench_lists`` (at the commit of the caller's transaction)."""
    with raw(source) as conn, storage_errors("cannot announce a list change"):
        conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))


def _row(row: tuple) -> dict:
    keys = ("id", "list_name", "kind", "value", "reason", "added_by", "added_at", "expires_at")
    out = dict(zip(keys, row, strict=True))
    for key in ("added_at", "expires_at"):
        if out[key] is not None:
            out[key] = out[key].isoformat()
    return out
