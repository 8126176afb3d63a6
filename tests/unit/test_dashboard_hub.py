"""The dashboard hub: aggregates of batch summaries, deltas per session, fixed bounds."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from workbench.dashboard import hub as hub_module
from workbench.dashboard.hub import Hub
from workbench.storage.notify import BatchSummary


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def summary(rows=100, bands=(90, 8, 2), mean=12.0, p95=60.0, created=None, **extra):
    body = {
        "rows": rows,
        "bands": dict(zip(("Low", "Medium", "High"), bands, strict=True)),
        "mean_score": mean,
        "p95_score": p95,
        "dead": 0,
        "alerts_opened": 0,
        "created_at": created,
        "rule_set_version": "v1",
        "worker": "w1",
    }
    body.update(extra)
    return BatchSummary.from_payload(json.dumps(body))  # as the feed decodes a NOTIFY


def transactions(start: int, n: int) -> pd.DataFrame:
    ids = [f"tx{i}" for i in range(start, start + n)]
    return pd.DataFrame(
        {
            "tx_id": ids,
            "ts": pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC")
            + pd.Timedelta(seconds=start),
            "card_id": [f"c{i % 7}" for i in range(n)],
        }
    )


def test_totals_rates_and_shares_follow_the_summaries():
    clock = Clock()
    hub = Hub(clock=clock)
    hub.start_totals(stored=1_000, dead=3, alerts_opened=5, open_alerts=4)
    for _ in range(10):  # 10 batches of 100 rows over 5 seconds
        hub.ingest(summary(created=clock.t - 0.2, alerts_opened=1))
        clock.t += 0.5
    d = hub.delta()
    assert d.kpis.processed == 2_000
    assert d.kpis.dead_letters == 3
    assert d.kpis.alerts_opened == 15
    assert d.kpis.open_alerts == 14
    # received at t0, t0+0.5 .. t0+4.5, read at t0+5: the window (t0, t0+5] holds 9 batches
    assert d.kpis.tx_per_s == pytest.approx(900 / hub_module.RATE_WINDOW_S)
    assert d.kpis.pct_high == pytest.approx(2.0)
    assert d.kpis.mean_score == pytest.approx(12.0)
    assert d.bands == {"Low": 900, "Medium": 80, "High": 20}
    assert d.health.rule_set_version == "v1"
    assert d.health.workers == ("w1",)


def test_latency_percentiles_are_receive_time_minus_batch_creation():
    clock = Clock()
    hub = Hub(clock=clock)
    latencies_ms = np.arange(1, 101, dtype=float)  # 1..100 ms
    for ms in latencies_ms:
        hub.ingest(summary(created=clock.t - ms / 1000.0))
    d = hub.delta()
    assert d.kpis.latency_p50_ms == pytest.approx(np.percentile(latencies_ms, 50), abs=1e-6)
    assert d.kpis.latency_p99_ms == pytest.approx(np.percentile(latencies_ms, 99), abs=1e-6)
    clock.t += hub_module.LATENCY_WINDOW_S + 1
    assert math.isnan(hub.delta().kpis.latency_p50_ms)  # old batches leave the window


def test_seconds_are_published_once_closed_and_deltas_only_carry_what_is_new():
    clock = Clock(100.0)
    hub = Hub(clock=clock)
    hub.ingest(summary(rows=10, bands=(10, 0, 0), mean=1.0, p95=5.0))
    clock.t = 100.5
    hub.ingest(summary(rows=30, bands=(20, 5, 5), mean=5.0, p95=50.0))
    first = hub.delta()
    assert first.seconds == []  # second 100 is still open
    clock.t = 101.2
    second = hub.delta(first.seq)
    assert len(second.seconds) == 1
    s = second.seconds[0]
    assert (s.t, s.rows, s.low, s.medium, s.high) == (100.0, 40, 30, 5, 5)
    assert s.mean_score == pytest.approx((10 * 1.0 + 30 * 5.0) / 40)
    assert s.p95_score == 50.0
    assert hub.delta(second.seq).seconds == []  # nothing new for this session
    assert len(hub.delta(0).seconds) == 1  # a new session gets what is kept


def test_transactions_are_deduplicated_and_bounded():
    hub = Hub(clock=Clock())
    hub.add_transactions(transactions(0, 300))
    hub.add_transactions(transactions(200, 300))  # 100 already seen
    d = hub.delta()
    assert d.transactions["tx_id"].is_unique
    assert len(d.transactions) == min(500, hub_module.TRANSACTIONS)
    assert d.transactions["tx_id"].iloc[-1] == "tx499"  # oldest first, newest last
    seq = d.seq
    for start in range(500, 500 + 20 * 400, 400):
        hub.add_transactions(transactions(start, 400))
    assert len(hub.delta().transactions) <= hub_module.TRANSACTIONS
    assert len(hub._tx_seen_set) <= 4 * hub_module.TRANSACTIONS
    newer = hub.delta(seq).transactions
    assert newer["tx_id"].iloc[-1] == f"tx{500 + 20 * 400 - 1}"


def test_every_collection_stays_bounded_however_long_it_runs():
    clock = Clock()
    hub = Hub(clock=clock)
    high = [{"tx_id": f"t{i}", "card_id": "c", "amount": 1.0, "risk_score": 99.0} for i in range(5)]
    for i in range(hub_module.TICKS + 2_000):
        hub.ingest(summary(created=clock.t, high=high, rule_hits={f"r{i % 50}": 1}))
        clock.t += 0.7
    d = hub.delta()
    assert len(hub._ticks) == hub_module.TICKS
    assert len(d.seconds) <= hub_module.SECONDS
    assert len(d.alerts) <= hub_module.ALERTS
    assert len(d.rule_rates) <= 50


def test_rule_rates_are_hits_per_minute_over_the_window():
    clock = Clock()
    hub = Hub(clock=clock)
    for _ in range(61):  # one batch per second for a minute
        hub.ingest(summary(rule_hits={"big": 2, "night": 1}))
        clock.t += 1.0
    rates = hub.delta().rule_rates
    assert list(rates) == ["big", "night"]  # largest first
    assert rates["big"] == pytest.approx(2 * 61 / (61 / 60.0))
    clock.t += hub_module.RULE_WINDOW_S + 1
    assert hub.delta().rule_rates == {}


def test_alerts_keep_payload_order_newest_last():
    hub = Hub(clock=Clock())
    newest_first = [{"tx_id": "b", "ts": "2026-01-01T00:00:02"}, {"tx_id": "a", "ts": "2026"}]
    hub.ingest(summary(high=newest_first))
    assert [a.tx_id for a in hub.delta().alerts] == ["a", "b"]


def test_health_and_open_alerts_changes_move_the_sequence():
    hub = Hub(clock=Clock())
    seq = hub.seq
    hub.set_health(database="ok")
    assert hub.seq == seq + 1
    hub.set_health(database="ok")  # no change, no new sequence number
    assert hub.seq == seq + 1
    hub.set_open_alerts(7)
    assert hub.delta().kpis.open_alerts == 7
    assert hub.delta().health.database == "ok"
