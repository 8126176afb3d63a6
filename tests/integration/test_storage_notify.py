"""The pg_notify batch summary: received by a listener, always under 8000 bytes."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.storage import notify
from workbench.storage.connection import connect
from workbench.storage.writer import write_batch


def test_the_payload_stays_under_the_limit_whatever_the_input():
    huge = "é𝄞" * 5000
    high = [
        {
            "tx_id": huge,
            "ts": huge,
            "card_id": huge,
            "amount": 1e300,
            "risk_score": 99.5,
            "rules": {f"{huge}{i}": i for i in range(100)},
        }
        for i in range(100)
    ]
    errors = {f"{huge}{i}": i for i in range(100)}
    summary = notify.summarize(
        worker=huge,
        source=huge,
        rows=50_000,
        duplicates=0,
        dead=3,
        band_counts=(1, 2, 3),
        mean_score=1.0,
        p95_score=2.0,
        alerts_opened=0,
        alerts_attached=0,
        min_ts=None,
        max_ts=None,
        rule_set_version=huge,
        created_at=0.0,
        latency_ms=1.0,
        eval_errors=errors,
        rule_hits=errors,
        high=high,
    )
    text = summary.payload()
    assert len(text.encode()) < notify.LIMIT
    body = notify.BatchSummary.from_payload(text)
    assert body.rows == 50_000
    assert len(body.high) <= notify.MAX_HIGH
    assert all(len(r.rules) <= notify.MAX_RULES for r in body.high)
    assert len(body.rule_hits) <= notify.MAX_RULE_HITS


def test_a_payload_that_is_not_a_summary_decodes_to_defaults_not_errors():
    odd = notify.BatchSummary.from_payload(
        '{"rows": "many", "bands": [1], "high": [3, {"tx_id": 7}], "min_ts": "yesterday"}'
    )
    assert (odd.rows, odd.bands, odd.min_ts) == (0, {}, None)
    assert [h.tx_id for h in odd.high] == ["7"]
    assert notify.BatchSummary.from_payload("[1, 2]").truncated


@pytest.mark.integration
def test_listener_receives_a_small_payload_for_a_50k_row_batch(conn, db_dsn, make_batch):
    n = 50_000
    batch = make_batch(
        n,
        scores=[99.0] * n,
        step_s=0.01,
        prefix="ж" * 40 + "-",
        cards=[f"{'card' * 20}{i % 100}" for i in range(n)],
        version="v" * 200,
    )
    batch.frame["tx_id"] = batch.frame["tx_id"] + "𝄞" * 30
    batch.eval_errors = {f"rule_{i}_{'x' * 80}": i for i in range(60)}
    with connect(db_dsn) as listener:
        listener.execute(f"LISTEN {notify.CHANNEL}")
        result = write_batch(conn, batch, worker="worker-" + "w" * 300, source="sim")
        received = list(listener.notifies(timeout=10, stop_after=1))
    assert result.stored == n
    assert len(received) == 1
    payload = received[0].payload
    assert len(payload.encode()) < 8000
    body = notify.BatchSummary.from_payload(payload)
    assert body.rows == n
    assert body.bands == {"Low": 0, "Medium": 0, "High": n}
    assert (body.alerts_opened, body.alerts_attached) == (100, n - 100)
    assert body.p95_score == 99.0
    assert body.max_ts == pd.Timestamp("2026-01-01T00:00:00Z") + pd.Timedelta(
        seconds=(n - 1) * 0.01
    )
    assert 1 <= len(body.high) <= notify.MAX_HIGH
    assert body.high[0].risk_score == 99.0
    # The payload is the writer's summary, its texts shortened to fit.
    assert (body.rows, body.bands, body.max_ts, body.high[0].risk_score) == (
        result.summary.rows,
        result.summary.bands,
        result.summary.max_ts,
        result.summary.high[0].risk_score,
    )
    assert body.worker == notify.short(result.summary.worker)


@pytest.mark.integration
def test_nothing_is_notified_when_the_write_fails(conn, db_dsn, make_batch):
    from workbench.errors import StorageError

    batch = make_batch(3)
    batch.hits = batch.hits.head(0)
    batch.frame["band"] = pd.Series(["High"] * 3, dtype="str")
    batch.frame.loc[1, "card_id"] = None  # violates NOT NULL: the whole batch rolls back
    with connect(db_dsn) as listener:
        listener.execute(f"LISTEN {notify.CHANNEL}")
        with pytest.raises(StorageError, match=r"cannot write batch: .*card_id"):
            write_batch(conn, batch)
        assert list(listener.notifies(timeout=0.5, stop_after=1)) == []
    assert conn.execute("SELECT count(*) FROM transactions").fetchone() == (0,)


@pytest.mark.integration
def test_the_summary_counts_rule_hits_of_the_batch(conn, db_dsn, make_batch):
    batch = make_batch(100)  # scores 0..99: >= 40 hit big_amount, >= 70 also new_country
    with connect(db_dsn) as listener:
        listener.execute(f"LISTEN {notify.CHANNEL}")
        write_batch(conn, batch)
        (received,) = list(listener.notifies(timeout=10, stop_after=1))
    body = notify.BatchSummary.from_payload(received.payload)
    assert body.rule_hits == {"big_amount": 60, "new_country": 30}
    assert list(body.rule_hits) == ["big_amount", "new_country"]  # most frequent first
