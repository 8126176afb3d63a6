"""Poison rows and fatal errors on the write path, against a real PostgreSQL.

A row the server refuses for its data is isolated (bisection) into a dead letter carrying
its SQLSTATE, the other rows are stored and the stream goes on; an error that means the
schema or the code is wrong stops the worker with one line; nothing is retried forever.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import storage
from workbench.errors import DataRefused, SchemaError
from workbench.pipeline.writer import RetryingWriter
from workbench.storage import connect
from workbench.storage.isolation import Isolation, write_isolating
from workbench.storage.writer import write_batch

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

# Random hex does not compress: 3,000 bytes stay larger than a btree row may be (2,704).
HUGE_CARD = "card-" + secrets.token_hex(1500)
HUGE_TX = "tx-" + secrets.token_hex(1500)


def _write(writer: RetryingWriter, batch) -> bool:
    return asyncio.run(writer.write(batch))


def _poisoned(make_batch, n=1000, *, card_row=437, tx_row=801, prefix="tx"):
    batch = make_batch(n, prefix=prefix)
    batch.frame.loc[card_row, "card_id"] = HUGE_CARD
    batch.frame.loc[tx_row, "tx_id"] = HUGE_TX
    return batch


def test_one_poison_row_among_good_rows_becomes_a_dead_letter(db_dsn, make_batch):
    batch = make_batch(1000)
    batch.frame.loc[437, "card_id"] = HUGE_CARD
    writer = RetryingWriter(db_dsn, source="test", worker="w")
    assert _write(writer, batch) is True
    # The next batches are stored as usual.
    assert _write(writer, make_batch(300, prefix="next", start="2026-01-02T00:00:00Z"))
    assert _write(writer, make_batch(300, prefix="last", start="2026-01-03T00:00:00Z"))
    writer.close()
    stats = writer.stats
    assert (stats.records, stats.stored, stats.duplicates, stats.dead) == (1600, 1599, 0, 1)
    assert stats.db_failures == 0  # no retry loop: refused data is never "unavailable"
    with connect(db_dsn) as conn:
        ids = {r[0] for r in conn.execute("SELECT tx_id FROM transactions")}
        dead = conn.execute("SELECT source, raw, reason FROM dead_letters").fetchall()
        stats_rows = conn.execute("SELECT sum(stored), sum(dead) FROM pipeline_stats").fetchone()
    assert len(ids) == 1599 and "tx0000437" not in ids and "tx0000436" in ids
    assert len(dead) == 1
    source, raw, reason = dead[0]
    assert source == "test"
    assert reason.startswith("refused by the database (SQLSTATE 54000): index row size")
    record = json.loads(raw)
    assert record["tx_id"] == "tx0000437" and record["card_id"] == HUGE_CARD
    assert record["ts"].startswith("2026-01-01")
    # The parts' pipeline_stats rows (and NOTIFYs) add up to the batch.
    assert stats_rows == (1599, 1)


def test_poison_tx_id_and_card_id_in_one_batch_cost_few_writes(conn, make_batch):
    batch = _poisoned(make_batch)
    iso = Isolation(batch)
    while not iso.done:
        part = iso.next()
        try:
            iso.stored(write_batch(conn, part))
        except DataRefused as error:
            assert error.sqlstate == "54000"
            iso.refused(error)
    result = iso.result
    assert (result.stored, result.duplicates, result.dead) == (998, 0, 2)
    # O(k log n): two bad rows in 1,000 take a few dozen writes, not hundreds.
    assert iso.parts_written + iso.refusals <= 2 * 2 * 11 + 2
    reasons = [r[0] for r in conn.execute("SELECT reason FROM dead_letters")]
    assert len(reasons) == 2 and all("SQLSTATE 54000" in r for r in reasons)
    counts = storage.stats.counts(conn)
    assert counts["stored"] == 998 and counts["dead"] == 2
    # Alerts were raised for the good rows as for any batch.
    high = batch.frame["band"].eq("High")
    high[[437, 801]] = False
    assert conn.execute("SELECT count(*) FROM alert_hits").fetchone()[0] == high.sum()


def test_a_poisoned_batch_written_twice_adds_nothing(conn, make_batch):
    batch = _poisoned(make_batch, 200, card_row=37, tx_row=101, prefix="p")
    batch.frame.loc[150, "card_id"] = HUGE_CARD  # three bad rows
    first = write_isolating(conn, batch, source="replay:x.csv")
    second = write_isolating(conn, batch, source="replay:x.csv")
    assert (first.stored, first.duplicates, first.dead) == (197, 0, 3)
    # Counted as seen by the run (the equation holds), stored once.
    assert (second.stored, second.duplicates, second.dead) == (0, 197, 3)
    assert conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 3
    assert storage.stats.counts(conn)["stored"] == 197


def test_the_batch_dead_letters_travel_once_with_a_poisoned_batch(conn, make_batch):
    batch = make_batch(8, dead=[('{"amount": "abc"}', "amount is not a number")])
    batch.eval_errors = {"spend_spike": 2}
    batch.frame.loc[0, "card_id"] = HUGE_CARD  # the part carrying them is refused
    result = write_isolating(conn, batch)
    assert (result.stored, result.dead) == (7, 2)
    reasons = sorted(r[0] for r in conn.execute("SELECT reason FROM dead_letters"))
    assert reasons[0] == "amount is not a number" and "54000" in reasons[1]
    errors = conn.execute("SELECT sum(dead) FROM pipeline_stats").fetchone()[0]
    assert errors == 2


def test_every_row_refused_means_the_schema_is_wrong(db_dsn, make_batch):
    with connect(db_dsn) as conn:
        # A column the writer does not fill: every row violates NOT NULL (23502), a data
        # error by class, but no row is to blame.
        conn.execute("ALTER TABLE transactions ADD COLUMN must_have integer NOT NULL")
    writer = RetryingWriter(db_dsn, source="test", worker="w")
    with pytest.raises(SchemaError, match=r"every one of the 6 rows .*SQLSTATE 23502"):
        _write(writer, make_batch(6))
    writer.close()
    with connect(db_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0


def test_a_dropped_column_stops_the_writer_with_one_line(db_dsn, make_batch):
    with connect(db_dsn) as conn:
        conn.execute("ALTER TABLE transactions DROP COLUMN device_id")
    writer = RetryingWriter(db_dsn, source="test", worker="w")
    with pytest.raises(SchemaError) as info:
        _write(writer, make_batch(50))
    writer.close()
    message = str(info.value)
    assert (
        message
        == 'cannot write batch: column "device_id" of relation "transactions" does not exist'
    )
    assert writer.stats.db_failures == 0 and writer.stats.records == 0


def test_a_dropped_table_stops_workbench_run_with_one_line(db_dsn, tmp_path):
    with connect(db_dsn) as conn:
        conn.execute("DROP TABLE pipeline_stats CASCADE")  # every write adds a row to it
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(WORKBENCH_DATABASE_URL=db_dsn, WORKBENCH_RULES_DIR=str(ROOT / "rules"))
    out = subprocess.run(
        [sys.executable, "-m", "workbench", "run", "--duration", "60"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    # The first statement that meets the missing table says so (reading where the simulator
    # stopped, or writing the first batch): one line, no retry loop.
    assert len(lines) == 1, out.stderr
    assert lines[0].endswith('relation "pipeline_stats" does not exist'), out.stderr
