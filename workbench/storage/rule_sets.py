"""Rule-set loads: every attempt recorded with its YAML files, the accepted ones announced.

Through a store: ``store.rule_sets.active()``, ``store.rule_sets.publish(...)``, ...
:func:`publish` stays on raw psycopg: its advisory lock and NOTIFY belong to one session's
transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import sqlalchemy as sa
from psycopg.types.json import Jsonb

from workbench.errors import StorageError
from workbench.storage import tables
from workbench.storage.connection import storage_errors
from workbench.storage.frames import Source, fetch, one, raw, select_rows

__all__ = ["accepted_before", "active", "files", "history", "last", "publish", "record"]

RULE_SET_STATUSES = ("accepted", "rejected")
RULES_CHANNEL = "workbench_rules"  # NOTIFY payload: the version of a newly accepted rule set
_RULE_SETS_LOCK = 0x7275_6C65  # advisory lock that serialises rule-set publication ("rule")

_RULE_SETS = tables.rule_sets


def record(
    source: Source,
    version: str,
    texts: Mapping[str, str],
    author: str | None,
    status: str,
    error: str | None = None,
) -> int:
    """Record one rule-set load (``texts``: file name -> YAML text); its id."""
    if status not in RULE_SET_STATUSES:
        raise StorageError(f"unknown rule-set status {status!r}: use accepted or rejected")
    with raw(source) as conn, storage_errors("cannot record the rule set"), conn.transaction():
        row = conn.execute(
            "INSERT INTO rule_sets (version, files, author, status, error)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (version, Jsonb(dict(texts)), author, status, error),
        ).fetchone()
    assert row is not None
    return int(row[0])


def history(source: Source, limit: int = 50) -> pd.DataFrame:
    """Rule-set loads, newest first: id, version, created_at, author, status, error, files."""
    r = _RULE_SETS.c
    query = (
        sa.select(r.id, r.version, r.created_at, r.author, r.status, r.error, r.files)
        .order_by(r.id.desc())
        .limit(int(limit))
    )
    return fetch(source, query, "cannot read rule-set history")


def publish(
    source: Source,
    version: str,
    texts: Mapping[str, str],
    author: str | None,
    status: str,
    error: str | None = None,
    *,
    still_current: Callable[[], bool] | None = None,
    on_record: Callable[[Any, int], None] | None = None,
) -> int | None:
    """Record a rule-set attempt once, and announce an accepted one; its id, or None.

    Under an advisory lock (one publisher at a time, across processes): nothing is written
    when the newest row already says the same (same ``version`` and ``status``), or when
    ``still_current()`` (called while holding the lock) says the candidate is stale. An
    accepted row is announced with ``NOTIFY workbench_rules, version`` in the same
    transaction, so listeners see it only once it is committed.

    ``on_record(conn, row_id)`` runs in that same transaction right after the row is
    inserted (never when nothing is written): the caller's audit row, so a publication is
    never stored without it. Whatever it raises rolls the publication back.
    """
    if status not in RULE_SET_STATUSES:
        raise StorageError(f"unknown rule-set status {status!r}: use accepted or rejected")
    # Raw psycopg: the advisory lock and the NOTIFY belong to this one session's transaction.
    with raw(source) as conn, storage_errors("cannot publish the rule set"), conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_RULE_SETS_LOCK,))
        newest = conn.execute(
            "SELECT version, status FROM rule_sets ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if newest is not None and tuple(newest) == (version, status):
            return None
        if still_current is not None and not still_current():
            return None
        row = conn.execute(
            "INSERT INTO rule_sets (version, files, author, status, error)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (version, Jsonb(dict(texts)), author, status, error),
        ).fetchone()
        assert row is not None
        if on_record is not None:
            on_record(conn, int(row[0]))
        if status == "accepted":
            conn.execute("SELECT pg_notify(%s, %s)", (RULES_CHANNEL, version))
    assert row is not None
    return int(row[0])


def active(source: Source, *, before_id: int | None = None) -> dict[str, Any] | None:
    """The rule set in effect — the newest accepted row: id, version, created_at, author,
    files (name -> YAML text); None when none was ever accepted. With ``before_id``: the one
    in effect before row ``before_id`` (what a publication replaced, for its audit row)."""
    r = _RULE_SETS.c
    query = (
        sa.select(r.id, r.version, r.created_at, r.author, r.files)
        .where(r.status == "accepted")
        .order_by(r.id.desc())
        .limit(1)
    )
    if before_id is not None:
        query = query.where(r.id < int(before_id))
    row = one(source, query, "cannot read the active rule set", optional=True)
    if row is None:
        return None
    rid, version, created_at, author, files = row
    return {
        "id": int(rid),
        "version": version,
        "created_at": created_at,
        "author": author,
        "files": {str(k): str(v) for k, v in files.items()},
    }


def files(source: Source, version: str) -> dict[str, str] | None:
    """The YAML files (name -> text) of the newest accepted load of rule-set ``version``."""
    r = _RULE_SETS.c
    query = (
        sa.select(r.files)
        .where(r.version == version, r.status == "accepted")
        .order_by(r.id.desc())
        .limit(1)
    )
    row = one(source, query, "cannot read rule-set files", optional=True)
    return None if row is None else {str(k): str(v) for k, v in row[0].items()}


def accepted_before(source: Source, version: str) -> bool:
    """Whether rule-set ``version`` was ever accepted."""
    r = _RULE_SETS.c
    query = sa.select(sa.exists().where(r.version == version, r.status == "accepted"))
    return bool(one(source, query, "cannot read rule-set history")[0])


def last(source: Source) -> dict[str, Any] | None:
    """The newest rule-set load without its files: id, version, created_at, author, status,
    error; None when no rule set was ever loaded."""
    r = _RULE_SETS.c
    query = sa.select(r.id, r.version, r.created_at, r.author, r.status, r.error)
    rows, names = select_rows(
        source, query.order_by(r.id.desc()).limit(1), "cannot read the last rule-set load"
    )
    return dict(zip(names, rows[0], strict=True)) if rows else None
