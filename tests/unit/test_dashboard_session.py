"""A session builds its pages lazily: a placeholder per tab until the page is first shown,
nothing read or updated for a page never opened, and a Live view built late still gets the
hub's whole window (as history: no toasts)."""

from __future__ import annotations

from tests.unit.test_dashboard_live import Clock, as_summary, feed
from workbench.dashboard.hub import Hub
from workbench.dashboard.session import (
    ALERTS_TAB,
    HISTORY_TAB,
    LISTS_TAB,
    LIVE_TAB,
    Session,
    loading_placeholder,
)


def texts(viewable) -> str:
    """Every HTML text shown inside ``viewable``."""
    return " ".join(str(p.object) for p in viewable.select() if hasattr(p, "object"))


def test_a_new_session_builds_no_page_and_each_tab_says_it_is_loading():
    session = Session(Hub(clock=Clock()), "postgresql://unused")
    views = (session.live, session.alerts, session.history, session.editor, session.lists)
    assert views == (None,) * 5 and session.precision is None and session.audit is None
    for name, holder in zip(session.page_names, session.tabs.objects, strict=True):
        assert f"Loading {name}…" in texts(holder)


def test_building_a_page_replaces_its_placeholder_and_only_that_page():
    session = Session(Hub(clock=Clock()), "postgresql://unused")
    assert session.build(HISTORY_TAB)
    assert session.history is not None
    history_tab = session.tabs.objects[HISTORY_TAB]
    assert "Loading History…" not in texts(history_tab)
    assert "Drill down to a card" in texts(history_tab)
    assert session.live is None and session.alerts is None and session.lists is None
    assert "Loading Live…" in texts(session.tabs.objects[LIVE_TAB])
    history, shown = session.history, list(history_tab.objects)
    assert session.build(HISTORY_TAB)  # built once: the same view
    assert session.history is history and history_tab.objects == shown


def test_the_pull_feeds_no_live_view_before_it_is_built_and_all_of_the_hub_after():
    clock = Clock()
    hub = Hub(clock=clock)
    feed(hub, clock, batches=4)
    toasts: list = []
    session = Session(hub, "postgresql://unused")
    hub.set_health(reload_status="rejected", reload_version="v2", reload_error="bad")
    session.pull()
    assert session.live is None and session.seq == hub.seq
    assert session.banner.visible  # the banner is for every page
    processed = hub.delta(0).kpis.processed
    assert session.build(LIVE_TAB)
    session.live.toasts.notify = toasts.append
    session.pull()
    assert session.live.kpis.kpi["processed"].value == processed > 0
    assert session.live.tables.feed.value.shape[0] > 0  # the window's High rows are in the feed
    assert toasts == []  # alerts from before the view existed are history, not toasts
    hub.ingest(as_summary({"rows": 5, "rule_set_version": "v1"}))
    session.pull()
    assert session.live.kpis.kpi["processed"].value == processed + 5


def test_showing_live_fills_it_from_the_hub_before_it_replaces_the_placeholder():
    clock = Clock()
    hub = Hub(clock=clock)
    feed(hub, clock, batches=3)
    session = Session(hub, "postgresql://unused")
    session.start()  # outside a server: at once
    assert session.live.kpis.kpi["processed"].value == hub.delta(0).kpis.processed > 0
    assert "Loading Live…" not in texts(session.tabs.objects[LIVE_TAB])
    assert session.alerts is None and session.history is None


def test_a_page_is_put_in_its_tab_once_its_first_load_is_done(monkeypatch):
    session = Session(Hub(clock=Clock()), "postgresql://unused")
    seen: list[str] = []

    async def load() -> None:  # the page exists, its tab still shows the placeholder
        assert session.lists is not None
        seen.append(texts(session.tabs.objects[LISTS_TAB]))

    monkeypatch.setattr(session, "_loads", lambda index: [load])
    session.show(LISTS_TAB)
    assert seen == [texts(loading_placeholder("Lists"))]
    assert "Loading Lists…" not in texts(session.tabs.objects[LISTS_TAB])
    session.show(LISTS_TAB)  # shown again: loaded again, in place
    assert len(seen) == 2 and "Loading Lists…" not in seen[1]


def test_a_page_that_cannot_be_built_says_so_and_the_others_still_work(monkeypatch):
    session = Session(Hub(clock=Clock()), "postgresql://unused")

    def broken(*_args, **_kwargs):
        raise RuntimeError("no <lists> today")

    monkeypatch.setattr("workbench.dashboard.session.ListsView", broken)
    assert not session.build(LISTS_TAB)
    shown = texts(session.tabs.objects[LISTS_TAB])
    assert "Lists cannot be shown" in shown and "no &lt;lists&gt; today" in shown
    assert session.build(ALERTS_TAB) and session.alerts is not None


def test_the_placeholder_escapes_the_page_name():
    assert "Loading &lt;b&gt;…" in texts(loading_placeholder("<b>"))
