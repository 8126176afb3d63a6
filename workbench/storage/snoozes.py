"""Per-entity rule snoozes (``rule_snoozes``): read, add, lift.

A snooze (rule, entity kind and value, until, reason, who) stops the rule's points from
counting for that card, merchant or terminal while a transaction's *event time* is before
``until`` (:mod:`workbench.scoring.overlay`). Lifting one early sets ``lifted_at``; rows are
never deleted. Every change is announced on the lists channel (``NOTIFY workbench_lists``),
so the workers rebuild their overlay between batches.

Through a store: ``store.snoozes.current()``, ``store.snoozes.page()``.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from workbench.errors import StorageError
from workbench.storage import tables
from workbench.storage.connection import storage_errors
from workbench.storage.frames import Source, fetch, raw
from workbench.storage.lists import announce

__all__ = ["add", "current", "lift", "page"]

MAX_SNOOZES = 10_000  # unlifted snoozes at once


def current(source: Source) -> pd.DataFrame:
    """``rule_id``, ``kind``, ``value``, ``until`` of every snooze not lifted (expiry is by
    event time, decided per transaction when scoring)."""
    s = tables.rule_snoozes.c
    query = (
        sa.select(s.rule_id, s.kind, s.value, s.until)
        .where(s.lifted_at.is_(None))
        .order_by(s.id)
        .limit(MAX_SNOOZES)
    )
    return fetch(source, query, "cannot read the snoozes")


def page(
    source: Source, limit: int = 200, *, before_id: int | None = None, lifted: bool = False
) -> pd.DataFrame:
    """Snoozes, newest first (keyset: ``before_id=<last id shown>``); lifted ones only when
    ``lifted``."""
    s = tables.rule_snoozes.c
    query = sa.select(*tables.rule_snoozes.columns).order_by(s.id.desc()).limit(int(limit))
    if not lifted:
        query = query.where(s.lifted_at.is_(None))
    if before_id is not None:
        query = query.where(s.id < int(before_id))
    return fetch(source, query, "cannot read the snoozes")


def add(
    source: Source,
    rule_id: str,
    kind: str,
    value: str,
    until: datetime,
    *,
    reason: str,
    created_by: str,
) -> dict:
    """Snooze ``rule_id`` for one entity until ``until`` (event time); the new row."""
    with raw(source) as conn, storage_errors("cannot snooze the rule"), conn.transaction():
        (count,) = conn.execute(
            "SELECT count(*) FROM rule_snoozes WHERE lifted_at IS NULL"
        ).fetchone()
        if count >= MAX_SNOOZES:
            raise StorageError(f"too many snoozes at once ({MAX_SNOOZES:,}); lift some first")
        row = conn.execute(
            "INSERT INTO rule_snoozes (rule_id, kind, value, until, reason, created_by)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            " RETURNING id, rule_id, kind, value, until, reason, created_by",
            (rule_id, kind, value, until, reason, created_by),
        ).fetchone()
        announce(conn)
    return _row(row)


def lift(source: Source, snooze_id: int, *, lifted_by: str) -> dict | None:
    """End snooze ``snooze_id`` now; the row as it was, or None when there is no such
    unlifted snooze."""
    with raw(source) as conn, storage_errors("cannot lift the snooze"), conn.transaction():
        row = conn.execute(
            "UPDATE rule_snoozes SET lifted_at = now(), lifted_by = %s"
            " WHERE id = %s AND lifted_at IS NULL"
            " RETURNING id, rule_id, kind, value, until, reason, created_by",
            (lifted_by, int(snooze_id)),
        ).fetchone()
        if row is not None:
            announce(conn)
    return None if row is None else _row(row)


def _row(row: tuple) -> dict:
    keys = ("id", "rule_id", "kind", "value", "until", "reason", "created_by")
    out = dict(zip(keys, row, strict=True))
    out["until"] = out["until"].isoformat()
    return out
