"""The read API returns the expected frames, against a real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from workbench import storage
from workbench.errors import StorageError
from workbench.storage.writer import write_batch

pytestmark = pytest.mark.integration

T0 = pd.Timestamp("2026-01-01T00:00:00Z")


@pytest.fixture
def stored(conn, make_batch):
    """120 transactions, one every 30 s from T0 (scores i % 100), alerts from band High."""
    batch = make_batch(120, step_s=30)
    write_batch(conn, batch, alert_min_band="High", alert_dedup_s=60)
    return batch


def test_recent_transactions_newest_first(conn, stored):
    recent = storage.transactions.recent(conn, limit=5)
    assert recent["tx_id"].tolist() == [f"tx{i:07d}" for i in range(119, 114, -1)]
    assert str(recent["ts"].dtype) == "datetime64[ns, UTC]"
    assert recent["rule_hits"].iloc[0] == {}  # row 119 scores 19
    hits = storage.transactions.recent(conn, limit=50).set_index("tx_id")["rule_hits"]
    assert hits["tx0000079"] == {"big_amount": 40, "new_country": 79 - 40}
    since = storage.transactions.recent(conn, limit=100, since=T0 + timedelta(seconds=30 * 117))
    assert since["tx_id"].tolist() == ["tx0000119", "tx0000118"]


def test_card_history(conn, stored):
    history = storage.transactions.card_history(conn, "card7", limit=10)
    assert history["tx_id"].tolist() == ["tx0000107", "tx0000057", "tx0000007"]
    assert set(history["card_id"]) == {"card7"}
    assert storage.transactions.card_history(conn, "nobody").empty


def test_bucketed_counts_bands_scores_and_alerts(conn, stored):
    frame = storage.transactions.bucketed(conn, T0, T0 + timedelta(hours=2), "10m")
    assert len(frame) == 12  # an hour of data, then empty buckets
    first = frame.iloc[0]
    assert first["bucket"] == T0
    assert first["transactions"] == 20
    assert (first["low"], first["medium"], first["high"]) == (20, 0, 0)
    second = frame.iloc[2]  # rows 40..59: scores 40..59, all Medium
    assert (second["transactions"], second["medium"]) == (20, 20)
    assert second["mean_score"] == pytest.approx(49.5)
    assert second["p95_score"] == pytest.approx(pd.Series(range(40, 60)).quantile(0.95))
    assert second["amount"] == pytest.approx(sum(10 + i * 1.25 for i in range(40, 60)))
    assert frame["transactions"].sum() == 120
    assert frame["alerts"].sum() == storage.stats.counts(conn)["alerts_open"]
    assert frame.iloc[6]["transactions"] == 0 and pd.isna(frame.iloc[6]["mean_score"])
    interval = storage.transactions.bucketed(conn, T0, T0 + timedelta(hours=1), "30 minutes")
    assert interval["transactions"].tolist() == [60, 60]


def test_bucketed_refuses_too_many_buckets(conn):
    with pytest.raises(StorageError, match="too many buckets"):
        storage.transactions.bucketed(conn, T0, T0 + timedelta(days=365), "1s")


def test_alerts_and_disposition(conn, stored):
    open_alerts = storage.alerts.page(conn, status="open")
    assert len(open_alerts) > 0
    assert (open_alerts["band"] == "High").all()
    alert_id = int(open_alerts["id"].iloc[0])
    storage.alerts.set_disposition(conn, alert_id, "confirmed_fraud", "ana", "called the customer")
    closed = storage.alerts.page(conn, status="closed")
    assert closed["id"].tolist() == [alert_id]
    row = closed.iloc[0]
    assert (row["disposition"], row["assignee"], row["notes"]) == (
        "confirmed_fraud",
        "ana",
        "called the customer",
    )
    assert pd.notna(row["closed_at"])
    assert len(storage.alerts.page(conn)) == len(open_alerts)
    with pytest.raises(StorageError, match="unknown disposition"):
        storage.alerts.set_disposition(conn, alert_id, "maybe", "ana")
    with pytest.raises(StorageError, match="no such alert"):
        storage.alerts.set_disposition(conn, 999_999, "valuable", "ana")


def test_rule_set_history(conn):
    first = storage.rule_sets.record(
        conn, "abc123", {"default.yaml": "rules: []\n"}, "ana", "accepted"
    )
    storage.rule_sets.record(
        conn,
        "def456",
        {"default.yaml": "rules: [\n"},
        "bob",
        "rejected",
        "unexpected end of file (rules/default.yaml:1:9)",
    )
    history = storage.rule_sets.history(conn)
    assert history["version"].tolist() == ["def456", "abc123"]
    assert history["status"].tolist() == ["rejected", "accepted"]
    assert history["files"].iloc[1] == {"default.yaml": "rules: []\n"}
    assert pd.isna(history["error"].iloc[1]) and "1:9" in history["error"].iloc[0]
    assert int(history["id"].iloc[1]) == first
    with pytest.raises(StorageError, match="unknown rule-set status"):
        storage.rule_sets.record(conn, "x", {}, None, "pending")


def test_counts(conn, stored, make_batch):
    write_batch(conn, make_batch(0, dead=[("{}", "empty")]))
    counts = storage.stats.counts(conn)
    assert counts["stored"] == 120
    assert counts["dead"] == 1
    assert counts["batches"] == 2
    assert counts["partitions"] >= 1
    conn.execute("ANALYZE transactions")
    assert storage.stats.counts(conn, estimate=True)["stored"] == 120


def test_empty_answers_keep_their_dtypes(conn):
    recent = storage.transactions.recent(conn)
    assert recent.empty
    assert str(recent["ts"].dtype) == "datetime64[ns, UTC]"
    assert recent["amount"].dtype == "float64"
    loaded = storage.transactions.load(conn, T0, T0 + timedelta(days=1))
    assert loaded.empty and str(loaded["ts"].dtype) == "datetime64[ns, UTC]"
    assert storage.dead_letters.recent(conn).empty


def test_load_transactions_keeps_empty_strings_and_nulls_apart(conn, make_batch):
    batch = make_batch(3)
    batch.frame["fraud_scenario"] = pd.Series(["", "NULL", "N/A"], dtype="str")
    batch.frame["device_id"] = pd.Series(["a,b", 'say "hi"', "multi\nline"], dtype="str")
    write_batch(conn, batch)
    loaded = storage.transactions.load(conn, T0, T0 + timedelta(days=1))
    assert loaded["fraud_scenario"].tolist() == ["", "NULL", "N/A"]
    assert loaded["device_id"].tolist() == ["a,b", 'say "hi"', "multi\nline"]
    assert loaded["is_fraud"].isna().tolist() == [True, False, False]
    assert loaded["lat"].isna().tolist() == [True, False, False]
