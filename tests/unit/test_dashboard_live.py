"""The live page without a browser: a hub fed with summaries, updates applied, widgets read."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench.dashboard import hub as hub_module
from workbench.dashboard import live as live_module
from workbench.dashboard.hub import Hub
from workbench.dashboard.live import LiveView, table_rows
from workbench.dashboard.live_tables import TABLE_EVERY_S
from workbench.dashboard.live_toasts import TOAST_EVERY_S
from workbench.storage.notify import BatchSummary


class Clock:
    def __init__(self) -> None:
        self.t = 2_000_000.0

    def __call__(self) -> float:
        return self.t


def stored(start: int, n: int, high_every: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(start)
    band = np.where(np.arange(start, start + n) % high_every == 0, "High", "Low")
    return pd.DataFrame(
        {
            "tx_id": [f"tx{i}" for i in range(start, start + n)],
            "ts": pd.Timestamp("2026-01-01", tz="UTC")
            + pd.to_timedelta(np.arange(start, start + n), unit="s"),
            "card_id": [f"card{i % 13}" for i in range(n)],
            "amount": rng.uniform(1, 500, n),
            "merchant_category": "grocery",
            "country": "FR",
            "channel": "pos",
            "lat": np.where(np.arange(n) % 10 == 0, np.nan, rng.uniform(40, 50, n)),
            "lon": rng.uniform(0, 10, n),
            "risk_score": np.where(band == "High", 90.0, 0.0),
            "band": band,
            "rule_hits": [{"big": 90.0} if b == "High" else {} for b in band],
        }
    )


def as_summary(body: dict) -> BatchSummary:
    """A summary as the feed decodes it from a NOTIFY payload."""
    return BatchSummary.from_payload(json.dumps(body))


def feed(hub: Hub, clock: Clock, batches: int, rows: int = 100) -> int:
    start = 0
    for _ in range(batches):
        frame = stored(start, rows)
        high = frame[frame["band"] == "High"]
        hub.ingest(
            as_summary(
                {
                    "rows": rows,
                    "bands": {"Low": int((frame["band"] == "Low").sum()), "High": len(high)},
                    "mean_score": float(frame["risk_score"].mean()),
                    "p95_score": float(frame["risk_score"].quantile(0.95)),
                    "created_at": clock.t - 0.1,
                    "alerts_opened": len(high),
                    "rule_hits": {"big": len(high)},
                    "high": [
                        {
                            "tx_id": r.tx_id,
                            "ts": r.ts.isoformat(),
                            "card_id": r.card_id,
                            "amount": r.amount,
                            "risk_score": r.risk_score,
                            "rules": ["big"],
                        }
                        for r in high.itertuples()
                    ][::-1],
                }
            )
        )
        hub.add_transactions(frame)
        start += rows
        clock.t += 0.25
    return start


def rows_of(source) -> int:
    lengths = {len(v) for v in source.data.values()}
    assert len(lengths) == 1, "every column of a source has the same length"
    return lengths.pop()


def test_kpis_show_the_hub_numbers():
    clock = Clock()
    hub = Hub(clock=clock)
    total = feed(hub, clock, batches=8)
    view = LiveView()
    view.update(hub.delta(0), first=True)
    assert view.kpis.kpi["processed"].value == total
    assert view.kpis.kpi["open_alerts"].value == total // 50
    assert view.kpis.kpi["pct_high"].value == pytest.approx(2.0)
    assert view.kpis.kpi["latency"].value == "100 / 100 ms"
    assert view.kpis.kpi["tx_per_s"].value == round(hub.delta().kpis.tx_per_s)
    assert "big" in list(view.rules.source.data["rule"])
    assert list(view.bands.source.data["count"]) == [total - total // 50, 0, total // 50]


@pytest.mark.parametrize(
    "seconds_per_update",
    [0.0, 0.3, 2 * TABLE_EVERY_S],
    ids=["no-flush-between", "flush-every-few", "flush-every-update"],
)
def test_streaming_views_never_exceed_their_rollover(seconds_per_update):
    """However many updates fall between two table flushes, the tables keep their newest
    rows. (The view's own clock: with the real one, how many flushes happened depended on how
    fast the machine ran the loop, and a forced flush just after a throttled one used to
    *replace* the alert feed with the few alerts held since, fewer than its rollover.)"""
    clock, view_clock = Clock(), Clock()
    hub = Hub(clock=clock)
    view = LiveView(clock=view_clock)
    seq, start = 0, 0
    for _ in range(30):  # 30 updates of 4 batches of 100 rows: 12,000 rows
        for _ in range(4):
            frame = stored(start, 100, high_every=7)
            hub.ingest(
                as_summary({"rows": 100, "high": [{"tx_id": t} for t in frame["tx_id"][:5]]})
            )
            hub.add_transactions(frame)
            start += 100
            clock.t += 0.3
        delta = hub.delta(seq)
        view.update(delta, first=seq == 0)
        seq = delta.seq
        view_clock.t += seconds_per_update
    assert len(view.tables.table.value) == live_module.TABLE_ROWS
    view.flush_tables(force=True)  # tables are streamed at most every TABLE_EVERY_S
    table, feed = view.tables.table.value, view.tables.feed.value
    assert len(table) == live_module.TABLE_ROWS
    assert table["tx_id"].iloc[-1] == f"tx{start - 1}"  # the newest row is kept
    assert len(feed) == live_module.FEED_ROWS
    assert feed["tx_id"].iloc[-1] == f"tx{start - 100}"  # the newest alert is kept
    assert rows_of(view.map.source) == live_module.MAP_POINTS
    assert rows_of(view.trends.score_source) <= hub_module.SECONDS
    assert rows_of(view.trends.band_source) == rows_of(view.trends.score_source) > 0


def test_trend_sources_are_bounded_by_the_hub_window():
    clock = Clock()
    hub = Hub(clock=clock)
    view = LiveView()
    seq = 0
    for _ in range(hub_module.SECONDS + 120):
        hub.ingest(
            as_summary({"rows": 10, "bands": {"Low": 10}, "mean_score": 1.0, "p95_score": 2.0})
        )
        clock.t += 1.0
        delta = hub.delta(seq)
        view.update(delta)
        seq = delta.seq
    assert rows_of(view.trends.score_source) == hub_module.SECONDS


def test_a_toast_at_most_every_interval_counting_the_rest():
    clock, view_clock = Clock(), Clock()
    hub = Hub(clock=clock)
    toasts: list[str] = []
    view = LiveView(notify=toasts.append, clock=view_clock)
    feed(hub, clock, batches=4)
    first = hub.delta(0)
    view.update(first, first=True)
    assert toasts == []  # what happened before the session opened is no news
    feed(hub, clock, batches=4)
    second = hub.delta(first.seq)
    view.update(second)
    assert len(toasts) == 1
    assert "card" in toasts[0] and "more High" in toasts[0]
    feed(hub, clock, batches=4)
    view_clock.t += TOAST_EVERY_S - 0.1
    third = hub.delta(second.seq)
    view.update(third)  # within TOAST_EVERY_S of the last toast: counted, not shown
    assert len(toasts) == 1
    feed(hub, clock, batches=4)
    view_clock.t += 0.1
    view.update(hub.delta(third.seq))
    assert len(toasts) == 2
    assert "and 15 more High" in toasts[1]  # 8 + 8 High transactions, one of them shown


def test_table_rows_colour_by_formatter_and_list_the_rules():
    rows = table_rows(stored(0, 60))
    assert list(rows.columns) == list(live_module.TABLE_DTYPES)
    assert rows.loc[rows["band"] == "High", "rules"].eq("big").all()
    assert rows.loc[rows["band"] == "Low", "rules"].eq("").all()
    view = LiveView()
    assert "band" in view.tables.table.formatters
    assert "High" in view.tables.table.formatters["band"].template


def test_a_failing_session_update_does_not_touch_the_hub(monkeypatch):
    from workbench.dashboard.session import LIVE_TAB, Session

    clock = Clock()
    hub = Hub(clock=clock)
    feed(hub, clock, batches=2)
    session = Session(hub, "postgresql://unused")
    session.build(LIVE_TAB)
    monkeypatch.setattr(session.live, "update", lambda *a, **k: 1 / 0)
    before = hub.delta(0)
    session.pull()
    assert session.failures == 1
    after = hub.delta(0)
    assert after.kpis == before.kpis and after.seq == before.seq


def test_a_refused_rule_load_shows_a_banner_until_a_good_one():
    from workbench.dashboard.session import Session

    hub = Hub(clock=Clock())
    session = Session(hub, "postgresql://unused")
    hub.ingest(as_summary({"rows": 1, "rule_set_version": "v1"}))
    hub.set_health(
        reload_status="rejected",
        reload_version="v2",
        reload_error="rules/x.yaml:3:9 rule big: unknown feature 'amout' (did you mean 'amount'?)",
    )
    session.pull()
    assert session.banner.visible
    assert (
        "rules/x.yaml:3:9" in session.banner.object and "<code>v1</code>" in session.banner.object
    )
    hub.set_health(
        reload_status="rejected", reload_version="v4", reload_error="<img src=x>\nline 2"
    )
    session.pull()
    assert "&lt;img src=x&gt;<br>line 2" in session.banner.object
    hub.set_health(reload_status="accepted", reload_version="v3", reload_error=None)
    session.pull()
    assert not session.banner.visible
