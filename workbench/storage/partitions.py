"""Daily partitions of ``transactions``: create them ahead of need, drop them for retention.

Partition ``transactions_pYYYYMMDD`` holds ``[day 00:00 UTC, next day 00:00 UTC)``. There is
no default partition: a row whose day has no partition would fail, so the writer calls
:func:`ensure_days` for the days of every batch before its transaction starts. Known days
are cached per connection, so in the steady state this costs no query at all. Creating or
dropping partitions takes an advisory lock, so concurrent workers never race on the same
``CREATE TABLE``.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

from workbench.storage.connection import storage_errors

PARENT = "transactions"
PARTITION_LOCK = 0x77620002
_NAME = re.compile(r"^transactions_p(\d{8})$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# connection -> days known to have a partition. Weak keys: a closed, collected connection
# takes its cache with it.
_known: weakref.WeakKeyDictionary[psycopg.Connection, set[date]] = weakref.WeakKeyDictionary()


def partition_name(day: date) -> str:
    """``transactions_p20260101`` for 2026-01-01."""
    return f"{PARENT}_p{day:%Y%m%d}"


def list_partitions(conn: psycopg.Connection) -> list[date]:
    """Days that have a partition, oldest first."""
    with storage_errors("cannot list partitions"):
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass(%s)",
            (PARENT,),
        ).fetchall()
    days = []
    for (name,) in rows:
        match = _NAME.match(name)
        if match:
            days.append(datetime.strptime(match.group(1), "%Y%m%d").date())
    return sorted(days)


def ensure_partitions(
    conn: psycopg.Connection, start: date | datetime, end: date | datetime, *, ahead: int = 0
) -> list[date]:
    """Create every missing daily partition from ``start`` to ``end`` (inclusive, UTC days)
    plus ``ahead`` more days; the days created."""
    first, last = _day(start), _day(end)
    if last < first:
        return []
    count = (last - first).days + 1 + max(ahead, 0)
    return ensure_days(conn, (first + timedelta(days=i) for i in range(count)))


def ensure_days(conn: psycopg.Connection, days: Iterable[date]) -> list[date]:
    """Create the partitions of ``days`` that do not exist yet; the days created.

    Runs its own short transaction, so call it outside the batch transaction: creating a
    partition locks the parent table, and doing that inside a long batch transaction would
    serialise (or deadlock) concurrent writers.
    """
    known = _known.setdefault(conn, set())
    wanted = set(days) - known
    if not wanted:
        return []
    created: list[date] = []
    with storage_errors("cannot create partitions"), conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
        existing = set(list_partitions(conn))
        for day in sorted(wanted - existing):
            lower = datetime(day.year, day.month, day.day, tzinfo=UTC)
            conn.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(partition_name(day)),
                    sql.Identifier(PARENT),
                    sql.Literal(lower.isoformat()),
                    sql.Literal((lower + timedelta(days=1)).isoformat()),
                )
            )
            created.append(day)
    # Only after the commit: a rolled-back CREATE must not be remembered.
    known.update(existing | set(created))
    return created


def retention(conn: psycopg.Connection, days: int, *, now: datetime | None = None) -> list[date]:
    """Detach and drop every partition that lies entirely before ``now - days``, and forget
    the transaction ids (``transaction_ids``) stored before the oldest partition kept.

    This is the horizon of "one identity per transaction": a tx_id is known (a second copy
    with any ts is a duplicate) as long as the partition holding it is kept; once dropped, the
    same tx_id would be stored again.

    ``now`` defaults to the wall clock; pass the newest event time instead when replaying
    history (a 2019 replay would otherwise lose everything at once). Returns the days dropped.
    """
    if days < 0:
        raise ValueError(f"retention days must be >= 0, got {days}")
    reference = now if now is not None else datetime.now(UTC)
    if reference.tzinfo is None:
        reference = reference.replace(tzinfo=UTC)
    cutoff = reference - timedelta(days=days)
    dropped: list[date] = []
    with storage_errors("cannot apply retention"), conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
        for day in list_partitions(conn):
            upper = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
            if upper > cutoff:
                break
            name = sql.Identifier(partition_name(day))
            conn.execute(
                sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(sql.Identifier(PARENT), name)
            )
            conn.execute(sql.SQL("DROP TABLE {}").format(name))
            dropped.append(day)
        if dropped:
            # In the same transaction: the ids never outlive (nor die before) their rows.
            # Everything before the newest dropped day's end: the dropped days are the oldest.
            horizon = datetime(dropped[-1].year, dropped[-1].month, dropped[-1].day, tzinfo=UTC)
            end = horizon + timedelta(days=1) - _EPOCH
            conn.execute("DELETE FROM transaction_ids WHERE ts_us < %s", (end // _MICROSECOND,))
    forget(conn)
    return dropped


def forget(conn: psycopg.Connection) -> None:
    """Drop the cached partition days of ``conn`` (after retention, reset or an error)."""
    _known.pop(conn, None)


def _day(value: date | datetime) -> date:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.date()
    return value
