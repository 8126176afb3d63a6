"""The commit-ordered cursor of other workers' batches (workbench.storage.committed).

Batches are written as the pipeline writes them: their rows and their pipeline_stats row in
one transaction. A batch whose transaction started before another's and commits after it
(its stored_at and its pipeline_stats id both earlier) is returned by the first read after
its commit, once; a rolled-back batch never; a worker's own batches not at all.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from workbench.storage import shared_store
from workbench.storage.committed import since, snapshot
from workbench.storage.partitions import ensure_days

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def begin_batch(
    dsn: str, worker: str, ids: list[str], at: datetime, card: str | None = None
) -> psycopg.Connection:
    """A connection whose open transaction has written a batch of ``ids`` (one terminal;
    card ``card``, else one per row) and its pipeline_stats row, not committed yet."""
    conn = psycopg.connect(dsn)
    ts = [at + timedelta(seconds=i) for i in range(len(ids))]
    with conn.cursor() as cur:
        for tx_id, t in zip(ids, ts, strict=True):
            cur.execute(
                "INSERT INTO transactions (tx_id, ts, card_id, terminal_id, amount)"
                " VALUES (%s, %s, %s, 'term-1', 10.0)",
                (tx_id, t, card or f"card-{tx_id}"),
            )
        cur.execute(
            "INSERT INTO pipeline_stats (worker, stored, duplicates, dead, alerts_opened,"
            " alerts_attached, min_ts, max_ts) VALUES (%s, %s, 0, 0, 0, 0, %s, %s)",
            (worker, len(ids), min(ts), max(ts)),
        )
    return conn


def read(dsn: str, cursor: str, **kwargs) -> tuple[list[str], str]:
    with snapshot(shared_store(dsn)) as (conn, now):
        rows = since(conn, cursor, **kwargs)
    return rows["tx_id"].tolist(), now


def test_a_batch_that_started_first_and_commits_last_is_read_once(db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        ensure_days(conn, [date(2026, 3, 2)])
    with snapshot(shared_store(db_dsn)) as (_, cursor):
        pass

    slow = begin_batch(db_dsn, "b", ["slow-1", "slow-2"], T0)  # starts first: earlier id
    fast = begin_batch(db_dsn, "c", ["fast-1"], T0 + timedelta(minutes=1))
    fast.commit()
    got, cursor = read(db_dsn, cursor)
    assert got == ["fast-1"]  # the slow batch is still in progress: invisible

    slow.commit()  # commits after the cursor passed the fast batch (a later id, stored_at)
    got, cursor = read(db_dsn, cursor)
    assert got == ["slow-1", "slow-2"]

    rolled = begin_batch(db_dsn, "b", ["gone-1"], T0 + timedelta(minutes=2))
    rolled.rollback()
    mine = begin_batch(db_dsn, "a", ["mine-1"], T0 + timedelta(minutes=3))
    mine.commit()
    got, cursor = read(db_dsn, cursor, worker="a")
    assert got == []  # neither the rolled-back batch nor this worker's own
    got, _ = read(db_dsn, cursor)
    assert got == []  # nothing is read twice
    for c in (slow, fast, rolled, mine):
        c.close()

    with psycopg.connect(db_dsn) as conn:  # the stored order the cursor does not rely on
        order = conn.execute(
            "SELECT tx_id FROM transactions t JOIN pipeline_stats s ON s.worker IN ('b', 'c')"
            " AND t.ts BETWEEN s.min_ts AND s.max_ts ORDER BY s.id, t.stored_at"
        ).fetchall()
    assert [r[0] for r in order] == ["slow-1", "slow-2", "fast-1"]


def test_rows_before_the_floor_are_left_out(db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        ensure_days(conn, [date(2026, 3, 2)])
    with snapshot(shared_store(db_dsn)) as (_, cursor):
        pass
    with begin_batch(db_dsn, "b", ["old-1", "old-2", "old-3"], T0) as writer:
        writer.commit()
    got, _ = read(db_dsn, cursor, ts_from=T0 + timedelta(seconds=1))
    assert got == ["old-2", "old-3"]
