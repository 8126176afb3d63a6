"""write_batch against a real PostgreSQL: rows, idempotence, partitions, retention, dead letters."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from workbench import storage
from workbench.errors import ConfigError
from workbench.schema import NAMES
from workbench.storage import partitions
from workbench.storage import writer as writer_module
from workbench.storage.writer import write_batch

pytestmark = pytest.mark.integration

START = pd.Timestamp("2026-01-01T00:00:00Z")
END = pd.Timestamp("2026-01-10T00:00:00Z")


def test_a_batch_stores_exactly_its_rows_with_scores_and_hits(conn, make_batch):
    batch = make_batch(300, step_s=7.25)
    result = write_batch(conn, batch, source="sim", worker="w1")
    assert (result.stored, result.duplicates, result.dead) == (300, 0, 0)

    stored = storage.transactions.load(conn, START, END)
    assert len(stored) == 300
    expected = batch.frame.sort_values(["ts", "tx_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(stored[list(NAMES)], expected[list(NAMES)])
    pd.testing.assert_series_equal(stored["risk_score"], expected["risk_score"])
    assert stored["band"].tolist() == expected["band"].tolist()
    assert set(stored["rule_set_version"]) == {"rs-1"}

    hits = stored.set_index("tx_id")["rule_hits"].map(json.loads)
    assert hits["tx0000010"] == {}
    assert hits["tx0000050"] == {"big_amount": 40}
    assert hits["tx0000095"] == {"big_amount": 40, "new_country": 55}
    long = storage.transactions.load_hits(conn, START, END)
    assert len(long) == len(batch.hits)
    assert long.dtypes["points"] == "float64"


def test_writing_the_same_batch_twice_stores_it_once(conn, make_batch):
    batch = make_batch(200)
    first = write_batch(conn, batch)
    second = write_batch(conn, batch)
    assert first.stored == 200 and first.alerts_opened > 0
    assert (second.stored, second.duplicates) == (0, 200)
    assert (second.alerts_opened, second.alerts_attached) == (0, 0)
    assert second.summary.bands == {"Low": 0, "Medium": 0, "High": 0}
    counts = storage.stats.counts(conn)
    assert counts["stored"] == 200
    assert counts["alerts_open"] == first.alerts_opened
    hit_count = conn.execute("SELECT sum(hit_count) FROM alerts").fetchone()[0]
    assert hit_count == first.alerts_opened + first.alerts_attached


def test_duplicates_inside_one_batch_are_stored_once(conn, make_batch):
    batch = make_batch(10)
    batch.frame = pd.concat([batch.frame, batch.frame.iloc[:3]], ignore_index=True)
    result = write_batch(conn, batch, alert_min_band="none")
    assert (result.stored, result.duplicates) == (10, 3)


def test_partitions_appear_across_day_boundaries(conn, make_batch):
    # 23:50 -> 00:20 the next day, then a row two days later.
    batch = make_batch(30, start="2026-03-01T23:50:00Z", step_s=60)
    write_batch(conn, batch)
    later = make_batch(1, start="2026-03-04T12:00:00Z", prefix="late")
    write_batch(conn, later)
    days = partitions.list_partitions(conn)
    assert {date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 4)} <= set(days)
    per_partition = dict(
        conn.execute(
            "SELECT tableoid::regclass::text, count(*) FROM transactions GROUP BY 1"
        ).fetchall()
    )
    assert per_partition == {
        "transactions_p20260301": 10,
        "transactions_p20260302": 20,
        "transactions_p20260304": 1,
    }


def test_ensure_partitions_creates_each_missing_day_and_days_ahead(conn):
    created = partitions.ensure_partitions(conn, date(2026, 5, 1), date(2026, 5, 3), ahead=2)
    assert created == [date(2026, 5, d) for d in range(1, 6)]
    assert partitions.ensure_partitions(conn, date(2026, 5, 2), date(2026, 5, 4)) == []


def test_retention_drops_whole_old_partitions_only(conn, make_batch):
    for day in ("2026-02-01", "2026-02-02", "2026-02-03"):
        write_batch(conn, make_batch(5, start=f"{day}T10:00:00Z", prefix=day))
    dropped = partitions.retention(conn, 1, now=datetime(2026, 2, 3, 12, tzinfo=UTC))
    assert dropped == [date(2026, 2, 1)]  # Feb 2 ends at Feb 3 00:00, after the cutoff
    assert date(2026, 2, 1) not in partitions.list_partitions(conn)
    assert storage.stats.counts(conn)["stored"] == 10
    # A late row for the dropped day still finds (re-creates) its partition.
    write_batch(conn, make_batch(1, start="2026-02-01T11:00:00Z", prefix="late"))
    assert storage.stats.counts(conn)["stored"] == 11


def test_writer_recovers_when_another_connection_dropped_a_cached_partition(
    conn, db_dsn, make_batch
):
    from workbench.storage.connection import connect
    from workbench.storage.writer import BatchWriter

    writer = BatchWriter(conn)
    writer.write(make_batch(3, start="2026-04-01T00:00:00Z", prefix="a"))
    assert date(2026, 4, 1) in writer.partitions.known
    with connect(db_dsn) as other:
        partitions.retention(other, 0, now=datetime(2026, 4, 5, tzinfo=UTC))
    result = writer.write(make_batch(3, start="2026-04-01T01:00:00Z", prefix="b"))
    assert result.stored == 3


def test_a_batch_writer_remembers_its_connection_state_and_write_batch_does_not(conn, make_batch):
    from workbench.storage.writer import BatchWriter

    writer = BatchWriter(conn)
    assert (writer.staged, writer.conflicted, writer.partitions.known) == (False, False, set())
    batch = make_batch(5, start="2026-07-01T00:00:00Z")
    writer.write(batch)
    assert writer.staged and not writer.conflicted
    assert {date(2026, 7, 1), date(2026, 7, 2)} <= writer.partitions.known
    writer.write(batch)  # a replay: stays on the staging path until a batch has no duplicate
    assert writer.conflicted
    # Another writer on the same connection shares nothing with this one.
    other = BatchWriter(conn)
    assert not other.conflicted and not other.partitions.known
    assert other.write(batch).duplicates == 5
    assert other.conflicted
    writer.retention(0, now=datetime(2026, 7, 10, tzinfo=UTC))
    assert not writer.partitions.known


def test_dead_letters_are_stored_with_their_reason(conn, make_batch):
    batch = make_batch(
        2,
        dead=[
            ('{"amount": "abc"}', "amount is not a number: 'abc'"),
            ('line\nwith "quotes", commas\x00and NUL', "bad line"),
        ],
    )
    result = write_batch(conn, batch, source="replay:file.csv", worker="w9")
    assert result.dead == 2
    dead = storage.dead_letters.recent(conn)
    assert len(dead) == 2
    assert set(dead["reason"]) == {"amount is not a number: 'abc'", "bad line"}
    assert set(dead["source"]) == {"replay:file.csv"}
    assert 'line\nwith "quotes", commas\ufffdand NUL' in set(dead["raw"])


def test_a_batch_of_only_dead_letters_is_stored(conn, make_batch):
    batch = make_batch(0, dead=[("{}", "missing required column(s): tx_id")])
    result = write_batch(conn, batch)
    assert (result.stored, result.dead) == (0, 1)
    assert storage.stats.counts(conn)["dead"] == 1


def test_pipeline_stats_row_per_batch(conn, make_batch):
    write_batch(conn, make_batch(50), worker="w1", source="sim")
    write_batch(conn, make_batch(50, prefix="b"), worker="w1", source="sim")
    rows = conn.execute(
        "SELECT worker, stored, duplicates, rule_set_version, latency_s >= 0"
        " FROM pipeline_stats ORDER BY id"
    ).fetchall()
    assert rows == [("w1", 50, 0, "rs-1", True), ("w1", 50, 0, "rs-1", True)]
    throughput = conn.execute("SELECT sum(stored) FROM pipeline_throughput").fetchone()[0]
    assert throughput == 100


def test_empty_batch_touches_nothing(conn, make_batch):
    result = write_batch(conn, make_batch(0))
    assert result.stored == 0
    assert storage.stats.counts(conn)["batches"] == 0


def test_unknown_alert_band_is_refused(conn, make_batch):
    with pytest.raises(ConfigError, match="unknown alert band 'critical'"):
        write_batch(conn, make_batch(1), alert_min_band="critical")


def test_text_columns_made_of_several_chunks_are_written_intact(conn, make_batch) -> None:
    # pd.concat of an empty and a full string column gives an Arrow column whose first
    # chunk is empty; the CSV encoder must still see the text, not NUL bytes.
    import pandas as pd

    from workbench.storage import write_batch

    scored = make_batch(2, prefix="chunk")
    scored.dead = pd.concat(
        [
            scored.dead,
            pd.DataFrame(
                {
                    "raw": pd.Series([f'{{"a": "b{i}"}}' for i in range(3)], dtype="str"),
                    "reason": pd.Series(["why"] * 3, dtype="str"),
                }
            ),
        ],
        ignore_index=True,
    )
    result = write_batch(conn, scored)
    assert result.dead == 3
    stored = storage.dead_letters.recent(conn, 10)
    assert sorted(stored["raw"]) == [f'{{"a": "b{i}"}}' for i in range(3)]


def _rows(batch, start: int, stop: int):
    """Rows ``start:stop`` of a scored batch, with their hits renumbered."""
    from dataclasses import replace

    hits = batch.hits[(batch.hits["row"] >= start) & (batch.hits["row"] < stop)].copy()
    hits["row"] -= start
    frame = batch.frame.iloc[start:stop].reset_index(drop=True)
    return replace(batch, frame=frame, hits=hits.reset_index(drop=True))


def _stored(conn) -> tuple:
    rows = conn.execute(
        "SELECT tx_id, ts, card_id, amount, risk_score, band, rule_hits, rule_set_version"
        " FROM transactions ORDER BY ts, tx_id"
    ).fetchall()
    alerts = conn.execute(
        "SELECT tx_id, ts, card_id, risk_score, band, rules, hit_count, last_ts FROM alerts"
        " ORDER BY ts, tx_id"
    ).fetchall()
    hits = conn.execute(
        "SELECT tx_id, ts, risk_score, band, rules FROM alert_hits ORDER BY ts, tx_id"
    ).fetchall()
    stats = conn.execute(
        "SELECT stored, duplicates, alerts_opened, alerts_attached, min_ts, max_ts"
        " FROM pipeline_stats"
    ).fetchall()
    return rows, alerts, hits, stats


def test_direct_and_staging_paths_store_and_report_the_same(conn, make_batch):
    # The direct COPY builds rule_hits JSON and the summary itself; the staging path has
    # PostgreSQL build them. Same batch, both paths: same rows, alerts and summary.
    from workbench.storage.writer import BatchWriter

    writer = BatchWriter(conn)
    conn.execute("SET TimeZone = 'Asia/Kolkata'")  # summaries carry the session's offset
    batch = make_batch(400, step_s=3.5)
    odd = batch.hits["row"] % 3 == 0
    batch.hits.loc[odd, "rule_id"] = 'odd "id" \\ é'
    batch.hits.loc[batch.hits["row"] % 5 == 0, "points"] = 12.345
    batch.hits.loc[batch.hits["row"] % 7 == 0, "points"] = 1e-7
    batch.frame.loc[3, "risk_score"] = float("nan")  # NULL: left out of mean and p95

    assert not writer.conflicted
    direct = writer.write(batch, source="s", worker="w")
    first = _stored(conn)

    # Put the connection on the staging path (a replay), then empty the tables.
    other = make_batch(5, start="2026-06-01T00:00:00Z", prefix="other")
    writer.write(other)
    writer.write(other)
    conn.execute("TRUNCATE transactions, transaction_ids, alerts, alert_hits, pipeline_stats")
    assert writer.conflicted
    staged = writer.write(batch, source="s", worker="w")
    assert not writer.conflicted  # no duplicates: back to the direct path

    assert _stored(conn) == first
    assert len(first[0]) == 400 and len(first[1]) > 0
    assert direct.stored == staged.stored == 400
    # The same summary by both paths, but for when each was written.
    assert dataclasses.replace(direct.summary, latency_ms=0.0) == dataclasses.replace(
        staged.summary, latency_ms=0.0
    )
    assert direct.summary.min_ts.utcoffset() == pd.Timedelta(hours=5, minutes=30)
    rule_hits = {r[0]: r[6] for r in first[0]}
    assert rule_hits["tx0000095"] == {"big_amount": 12.345, "new_country": 12.345}
    assert rule_hits["tx0000098"] == {"big_amount": 1e-7, "new_country": 1e-7}
    assert rule_hits["tx0000099"] == {'odd "id" \\ é': 59}  # same key twice: the last wins


def test_a_batch_overlapping_stored_rows_stores_only_the_new_ones(db_dsn, make_batch):
    from workbench.storage.connection import connect

    full = make_batch(150)
    with connect(db_dsn) as first:
        assert write_batch(first, _rows(full, 0, 100)).stored == 100
    with connect(db_dsn) as second:  # a fresh connection tries the direct COPY first
        result = write_batch(second, _rows(full, 50, 150))
        assert (result.stored, result.duplicates) == (50, 50)
        assert result.summary.rows == 50
        assert storage.stats.counts(second)["stored"] == 150
        high = int((full.frame["band"] == "High").sum())
        assert second.execute("SELECT count(*) FROM alert_hits").fetchone()[0] == high
        assert second.execute("SELECT sum(hit_count) FROM alerts").fetchone()[0] == high


def test_rule_ids_that_json_text_cannot_hold_as_is_are_stored(conn, make_batch):
    batch = make_batch(100)
    batch.hits["rule_id"] = "tab\there"
    batch.hits["points"] = batch.hits["points"].where(batch.hits["row"] != 99, float("inf"))
    assert write_batch(conn, batch, alert_min_band="none").stored == 100
    hits = conn.execute("SELECT rule_hits FROM transactions WHERE tx_id = 'tx0000050'")
    assert hits.fetchone()[0] == {"tab\there": 40}


def test_each_batch_empties_the_stage_and_every_few_batches_truncates_it(
    conn, make_batch, monkeypatch
):
    # The staging tables keep rows at commit: each batch deletes what it staged (nothing
    # reaches the next batch) and every third starts with a TRUNCATE (the dead rows' pages go).
    monkeypatch.setattr(writer_module, "_TRUNCATE_EVERY", 3)
    writer = storage.BatchWriter(conn)
    pages = []
    for k in range(3):
        batch = make_batch(400, prefix=f"b{k}-", start=f"2026-01-0{k + 1}T00:00:00Z")
        assert writer.write(batch, alert_min_band="low").stored == 400
        for table in writer_module._STAGE_TABLES:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
        pages.append(conn.execute("SELECT pg_relation_size('wb_stage_alert')").fetchone()[0])
    assert pages[0] < pages[1]  # the second batch's deleted rows came after the first's
    assert pages[2] == pages[0]  # truncated first: only the third batch's rows
    assert storage.stats.counts(conn)["stored"] == 1200
