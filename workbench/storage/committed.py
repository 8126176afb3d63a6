"""The transactions other workers committed since a snapshot: a commit-ordered cursor.

A worker that follows the rows other workers store (:mod:`workbench.pipeline.tail`) needs
every committed batch exactly once, in whatever order the batches commit. Neither a
timestamp nor a sequence gives that: ``stored_at`` is ``now()``, the writing transaction's
*start*, and ``pipeline_stats.id`` is drawn when the row is inserted; either way a batch
whose transaction started (or drew its id) before another's but commits after it would be
behind a cursor already moved past it, and missed.

The cursor here is a PostgreSQL snapshot (``pg_current_snapshot()``), which says exactly
which transactions had committed when it was taken. :func:`snapshot` opens a read-only
REPEATABLE READ transaction, so its snapshot and everything read in it agree: what is read
is what the snapshot holds, no more, no less. :func:`since` then returns the rows of the
batches committed after an earlier snapshot ``after``: those whose transaction is visible
now but was not visible in ``after``. Each batch's ``pipeline_stats`` row carries its
transaction's id (``xact``, revision 0012, written in the batch's own transaction by the
column's default); a transaction not visible in ``after`` has an id at or above
``pg_snapshot_xmin(after)``, so the index on ``xact`` narrows the search to the batches
since the oldest transaction that was still running then (a handful; snapshots span the
whole server, so a transaction left open for hours on any database widens this index range
to the batches since it began, each then dropped by one visibility test), and the rows of each
are found by its time span (the ``ts`` index) and their ``xmin`` (the same top-level
transaction wrote them: the batch write uses no savepoint). A batch that rolled back is
never visible; nothing needs a de-duplication set.

Raw psycopg, not SQLAlchemy: the snapshot is a transaction-level setting of one connection
held across two statements, and the rows come through COPY like every bulk read
(:func:`workbench.storage.frames.copy_out`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime

import pandas as pd
import psycopg
from psycopg import sql

from workbench.schema import COLUMNS, NAMES
from workbench.storage.connection import storage_errors
from workbench.storage.frames import Source, copy_out, raw

__all__ = ["since", "snapshot"]

_XID32 = 4294967295  # an xid8's low 32 bits are the xid a row's xmin holds


@contextlib.contextmanager
def snapshot(source: Source) -> Iterator[tuple[psycopg.Connection, str]]:
    """A read-only REPEATABLE READ transaction on ``source`` and its snapshot (text): every
    read made on the connection inside sees exactly the transactions the snapshot holds."""
    with raw(source) as conn, storage_errors("cannot take a snapshot"):
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()  # a transaction left open would pin an older snapshot
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = conn.execute("SELECT pg_current_snapshot()::text").fetchone()
            assert row is not None
            yield conn, str(row[0])


def since(
    conn: psycopg.Connection,
    after: str,
    *,
    worker: str | None = None,
    ts_from: datetime | None = None,
) -> pd.DataFrame:
    """The stored transactions (batch schema columns, oldest first) of the batches whose
    transaction is visible to ``conn`` (inside :func:`snapshot`) but was not in snapshot
    ``after``; not those of ``worker``'s batches, nor any with ``ts < ts_from``."""
    select = sql.SQL(", ").join(
        sql.SQL("(extract(epoch FROM t.ts) * 1000000)::bigint")
        if c == "ts"
        else sql.SQL("t.{}").format(sql.Identifier(c))
        for c in NAMES
    )
    mine = sql.SQL("")
    if worker is not None:
        mine = sql.SQL(" AND s.worker IS DISTINCT FROM {}").format(sql.Literal(worker))
    floor = sql.SQL("")
    if ts_from is not None:
        floor = sql.SQL(" AND s.max_ts >= {0}").format(sql.Literal(ts_from))
    rows_floor = (
        sql.SQL("") if ts_from is None else sql.SQL(" AND t.ts >= {}").format(sql.Literal(ts_from))
    )
    query = sql.SQL(
        "SELECT {select} FROM ("
        " SELECT s.xact, s.min_ts, s.max_ts FROM pipeline_stats s"
        " WHERE s.xact >= pg_snapshot_xmin({after}::pg_snapshot)::text::bigint"
        " AND NOT pg_visible_in_snapshot(s.xact::text::xid8, {after}::pg_snapshot)"
        " AND s.stored > 0{mine}{floor}"
        ") b JOIN transactions t ON t.ts >= b.min_ts AND t.ts <= b.max_ts"
        " AND t.xmin::text::bigint = (b.xact & {xid32}){rows_floor}"
        " ORDER BY t.ts, t.tx_id"
    ).format(
        select=select,
        after=sql.Literal(after),
        mine=mine,
        floor=floor,
        xid32=sql.Literal(_XID32),
        rows_floor=rows_floor,
    )
    kinds = {c.name: c.kind for c in COLUMNS}
    return copy_out(conn, query, kinds, "cannot read the batches committed since a snapshot")
