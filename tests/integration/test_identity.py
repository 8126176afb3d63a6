"""One identity per transaction: a tx_id is stored once whatever its ts, within retention."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest

from workbench import storage
from workbench.storage import connect, partitions
from workbench.storage.writer import write_batch

pytestmark = pytest.mark.integration


def _ids(conn) -> dict[str, datetime]:
    return dict(
        conn.execute(
            "SELECT tx_id, 'epoch'::timestamptz + ts_us * interval '1 microsecond'"
            " FROM transaction_ids"
        ).fetchall()
    )


def test_the_same_tx_id_with_a_new_ts_is_a_duplicate_on_a_fresh_connection(db_dsn, make_batch):
    first = make_batch(100)
    later = make_batch(100, start="2026-01-05T00:00:00Z")  # same tx_ids, other days
    later.frame.loc[:49, "tx_id"] = [f"new{i}" for i in range(50)]
    with connect(db_dsn) as conn:
        assert write_batch(conn, first).stored == 100
    with connect(db_dsn) as conn:  # a fresh connection tries the direct COPY first
        result = write_batch(conn, later)
        assert (result.stored, result.duplicates) == (50, 50)
        assert result.summary.rows == 50 and result.summary.duplicates == 50
        stored = conn.execute("SELECT tx_id, ts FROM transactions").fetchall()
        ids = _ids(conn)
    assert len(stored) == 150 == len({tx for tx, _ in stored})
    assert dict(stored) == ids
    assert ids["tx0000099"].date() == date(2026, 1, 1)  # the first one stays


def test_the_same_tx_id_twice_in_one_batch_keeps_the_earliest(conn, make_batch):
    batch = make_batch(10, start="2026-02-01T00:00:00Z", step_s=60)
    # Row 7 repeats row 2's id with a later ts, row 1 row 8's with an earlier one.
    batch.frame.loc[7, "tx_id"] = "tx0000002"
    batch.frame.loc[1, "tx_id"] = "tx0000008"
    result = write_batch(conn, batch, alert_min_band="none")
    assert (result.stored, result.duplicates) == (8, 2)
    stored = dict(conn.execute("SELECT tx_id, ts FROM transactions").fetchall())
    assert stored["tx0000002"] == pd.Timestamp("2026-02-01T00:02:00Z")
    assert stored["tx0000008"] == pd.Timestamp("2026-02-01T00:01:00Z")
    assert stored == _ids(conn)


def test_a_batch_written_twice_stores_nothing_new_and_no_dead_letter(conn, make_batch):
    dead = [('{"amount": "abc"}', "amount is not a number"), ("x,y", "wrong column count")]
    batch = make_batch(300, dead=dead)
    first = write_batch(conn, batch, source="replay:a.csv")
    moved = make_batch(300, start="2026-03-01T00:00:00Z", dead=dead)  # same ids, other ts
    second = write_batch(conn, moved, source="replay:a.csv")
    third = write_batch(conn, batch, source="replay:a.csv")
    assert (first.stored, first.duplicates, first.dead) == (300, 0, 2)
    for again in (second, third):
        # Dead letters seen by the run count as dead: records = stored + duplicates + dead.
        assert (again.stored, again.duplicates, again.dead) == (0, 300, 2)
        assert (again.alerts_opened, again.alerts_attached) == (0, 0)
    counts = storage.stats.counts(conn)
    assert counts["stored"] == 300 and counts["dead"] == 2
    # The same record with another reason, or from another source, is another dead letter.
    other = make_batch(0, dead=[('{"amount": "abc"}', "amount is negative")])
    assert write_batch(conn, other, source="replay:a.csv").dead == 1
    assert write_batch(conn, make_batch(0, dead=dead[:1]), source="replay:b.csv").dead == 1
    assert storage.stats.counts(conn)["dead"] == 4


def test_retention_forgets_the_ids_of_the_partitions_it_drops(conn, make_batch):
    for day in ("2026-02-01", "2026-02-02", "2026-02-03"):
        write_batch(conn, make_batch(5, start=f"{day}T10:00:00Z", prefix=day))
    assert len(_ids(conn)) == 15
    dropped = partitions.retention(conn, 1, now=datetime(2026, 2, 3, 12, tzinfo=UTC))
    assert dropped == [date(2026, 2, 1)]
    ids = _ids(conn)
    assert len(ids) == 10 and min(ids.values()).date() == date(2026, 2, 2)
    assert set(ids) == {r[0] for r in conn.execute("SELECT tx_id FROM transactions")}
    # Past the horizon an id is new again; inside it, still a duplicate.
    gone = make_batch(1, start="2026-02-05T00:00:00Z", prefix="2026-02-01")
    kept = make_batch(1, start="2026-02-05T00:00:00Z", prefix="2026-02-02")
    assert write_batch(conn, gone).stored == 1
    assert write_batch(conn, kept).duplicates == 1


def test_the_same_tx_id_and_ts_twice_in_one_batch_is_stored_once(conn, make_batch):
    # Nothing but transaction_ids keys the rows: the same (tx_id, ts) twice must still be
    # one stored row and one duplicate, with the first row's values.
    batch = make_batch(6, start="2026-02-03T00:00:00Z", step_s=60)
    batch.frame.loc[4, ["tx_id", "ts"]] = batch.frame.loc[3, ["tx_id", "ts"]].to_numpy()
    batch.frame.loc[4, "amount"] = 999.0
    result = write_batch(conn, batch, alert_min_band="none")
    assert (result.stored, result.duplicates) == (5, 1)
    rows = conn.execute(
        "SELECT amount FROM transactions WHERE tx_id = %s", ("tx0000003",)
    ).fetchall()
    assert [float(r[0]) for r in rows] == [float(batch.frame.loc[3, "amount"])]
