"""Daily partitions of ``transactions``: create them ahead of need, drop them for retention.

Partition ``transactions_pYYYYMMDD`` holds ``[day 00:00 UTC, next day 00:00 UTC)``. There is
no default partition: a row whose day has no partition would fail, so the writer calls
:meth:`Partitions.ensure_days` for the days of every batch before its transaction starts.
A :class:`Partitions` object remembers the days known to exist for its connection (the
writer keeps one per connection, :class:`~workbench.storage.writer.BatchWriter`), so in the
steady state this costs no query at all; the module functions are one-shot (they remember
nothing). Creating or dropping partitions takes an advisory lock, so concurrent workers never
race on the same ``CREATE TABLE``.

The DDL itself runs in two ``SECURITY DEFINER`` functions of the schema owner (revision 0005:
``workbench_create_partitions``, ``workbench_drop_partitions``), which take that lock: a
partition needs the parent table's owner, and the pipeline's least-privilege role owns
nothing (:mod:`workbench.storage.roles`); it is only allowed to EXECUTE them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

import psycopg

from workbench.storage.connection import storage_errors

PARENT = "transactions"
PARTITION_LOCK = 0x77620002
_NAME = re.compile(r"^transactions_p(\d{8})$")


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
    return Partitions(conn).ensure(start, end, ahead=ahead)


def ensure_days(conn: psycopg.Connection, days: Iterable[date]) -> list[date]:
    """Create the partitions of ``days`` that do not exist yet; the days created (one-shot:
    see :meth:`Partitions.ensure_days`)."""
    return Partitions(conn).ensure_days(days)


def retention(conn: psycopg.Connection, days: int, *, now: datetime | None = None) -> list[date]:
    """Drop the partitions older than ``days`` (one-shot: see :meth:`Partitions.retention`)."""
    return Partitions(conn).retention(days, now=now)


class Partitions:
    """The daily partitions as one connection sees them: the days known to exist are
    remembered (state of this object, dropped with it), so ensuring them again costs nothing.
    """

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.known: set[date] = set()

    def ensure(self, start: date | datetime, end: date | datetime, *, ahead: int = 0) -> list[date]:
        """:func:`ensure_partitions` remembering the days."""
        first, last = _day(start), _day(end)
        if last < first:
            return []
        count = (last - first).days + 1 + max(ahead, 0)
        return self.ensure_days(first + timedelta(days=i) for i in range(count))

    def ensure_days(self, days: Iterable[date]) -> list[date]:
        """Create the partitions of ``days`` that do not exist yet; the days created.

        Runs its own short transaction, so call it outside the batch transaction: creating a
        partition locks the parent table, and doing that inside a long batch transaction
        would serialise (or deadlock) concurrent writers.
        """
        wanted = set(days) - self.known
        if not wanted:
            return []
        conn = self.conn
        with storage_errors("cannot create partitions"), conn.transaction():
            rows = conn.execute(
                "SELECT workbench_create_partitions(%s::date[])", (sorted(wanted),)
            ).fetchall()
            created = [day for (day,) in rows]
            existing = set(list_partitions(conn))
        # Only after the commit: a rolled-back CREATE must not be remembered.
        self.known.update(existing | set(created))
        return created

    def retention(self, days: int, *, now: datetime | None = None) -> list[date]:
        """Detach and drop every partition that lies entirely before ``now - days``, and
        forget the transaction ids (``transaction_ids``) stored before the oldest partition
        kept, and the shadow scores (``shadow_scores``) of the days dropped.

        This is the horizon of "one identity per transaction": a tx_id is known (a second
        copy with any ts is a duplicate) as long as the partition holding it is kept; once
        dropped, the same tx_id would be stored again.

        ``now`` defaults to the wall clock; pass the newest event time instead when
        replaying history (a 2019 replay would otherwise lose everything at once). Returns
        the days dropped.
        """
        if days < 0:
            raise ValueError(f"retention days must be >= 0, got {days}")
        reference = now if now is not None else datetime.now(UTC)
        if reference.tzinfo is None:
            reference = reference.replace(tzinfo=UTC)
        cutoff = reference - timedelta(days=days)
        conn = self.conn
        # One statement (its own transaction): the function drops the partitions that end by
        # the cutoff and, with them, the tx_ids stored before the newest one's end.
        with storage_errors("cannot apply retention"), conn.transaction():
            rows = conn.execute("SELECT workbench_drop_partitions(%s)", (cutoff,)).fetchall()
            dropped = [day for (day,) in rows]
            if dropped:  # the challenger's scores of the transactions dropped go with them
                horizon = datetime.combine(max(dropped) + timedelta(days=1), time(), UTC)
                conn.execute("DELETE FROM shadow_scores WHERE ts < %s", (horizon,))
        self.forget()
        return dropped

    def forget(self) -> None:
        """Forget the days known to exist (after retention, a reset or an error)."""
        self.known.clear()


def _day(value: date | datetime) -> date:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.date()
    return value
