"""Sessions are woken by the hub instead of waiting for a periodic pull, share what they
derive from one delta, and a hidden Live page is not updated until it is shown again."""

from __future__ import annotations

import gc

import pandas as pd
import pytest

from tests.unit.test_dashboard_live import Clock, as_summary, feed, rows_of
from workbench.dashboard.hub import Hub
from workbench.dashboard.live import LiveView
from workbench.dashboard.live_rows import prepare_alerts, prepare_rows
from workbench.dashboard.session import HISTORY_TAB, LIVE_TAB, Session


class Woken:
    def __init__(self) -> None:
        self.count = 0

    def wake(self) -> None:
        self.count += 1


class Broken:
    def wake(self) -> None:
        raise RuntimeError("a session gone wrong")


def test_the_hub_wakes_its_subscribers_holds_them_weakly_and_survives_a_failing_one():
    hub = Hub(clock=Clock())
    woken, broken, gone = Woken(), Broken(), Woken()
    for session in (woken, broken, gone):
        hub.subscribe(session)
    hub.wake()
    assert woken.count == 1 and gone.count == 1
    del gone
    gc.collect()
    hub.unsubscribe(woken)
    hub.wake()  # nobody left but the broken one: logged, not raised
    assert woken.count == 1


def test_sessions_asking_together_share_one_delta_and_what_is_derived_from_it():
    clock = Clock()
    hub = Hub(clock=clock)
    feed(hub, clock, batches=2)
    first, second = hub.delta(0), hub.delta(0)
    assert first is second
    made = []
    assert first.derived("x", lambda: made.append(1) or "html") == "html"
    assert second.derived("x", lambda: made.append(1) or "other") == "html"
    assert made == [1]
    hub.ingest(as_summary({"rows": 5}))
    assert hub.delta(0) is not first  # the hub changed: a new delta
    clock.t += 1.0
    assert hub.delta(first.seq).seq == hub.seq


@pytest.mark.parametrize("watched", [True, False], ids=["as-they-arrive", "when-needed"])
def test_rows_prepared_by_the_hub_show_as_formatting_them_per_session_would(watched):
    """Prepared as they arrive while a session is subscribed, else when a delta needs them."""
    plain, prepared = Clock(), Clock()
    hubs = [
        Hub(clock=plain),
        Hub(clock=prepared, prepare_rows=prepare_rows, prepare_alerts=prepare_alerts),
    ]
    subscriber = Woken()
    if watched:
        hubs[1].subscribe(subscriber)
    views = []
    for hub, clock in zip(hubs, (plain, prepared), strict=True):
        feed(hub, clock, batches=5)
        view = LiveView()
        view.update(hub.delta(0), first=True)
        views.append(view)
    assert hubs[0].delta(0).rows_prepared == [] and hubs[1].delta(0).rows_prepared
    a, b = views
    pd.testing.assert_frame_equal(a.tables.table.value, b.tables.table.value)
    pd.testing.assert_frame_equal(a.tables.feed.value, b.tables.feed.value)
    assert rows_of(a.map.source) == rows_of(b.map.source) > 0
    assert list(a.map.source.data["card_id"]) == list(b.map.source.data["card_id"])


def test_a_hidden_live_page_is_not_updated_and_catches_up_when_shown():
    clock = Clock()
    hub = Hub(clock=clock)
    feed(hub, clock, batches=2)
    session = Session(hub, "postgresql://unused")
    assert session.build(LIVE_TAB)
    session.pull()
    shown = session.live.kpis.kpi["processed"].value
    updates = session.live.updates
    session.tabs.active = HISTORY_TAB  # outside a server, History is built and shown
    hub.ingest(as_summary({"rows": 7}))
    session.pull()
    assert session.live.updates == updates  # hidden: nothing sent to it
    assert session.live.kpis.kpi["processed"].value == shown
    assert session.seq == hub.seq  # the session itself (banner) is up to date
    session.tabs.active = LIVE_TAB  # shown again: it catches up at once
    assert session.live.kpis.kpi["processed"].value == shown + 7
