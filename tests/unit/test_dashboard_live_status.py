"""The live page's status, toasts and charts after the UI review: a stopped worker is shown
as stalled with its rate at 0, toasts can be muted, rules at 0 hits stay, axes never use
scientific notation and the map has a legend."""

from __future__ import annotations

from bokeh.models import Legend, NumeralTickFormatter

from tests.unit.test_dashboard_live import Clock, feed
from workbench.dashboard import safe
from workbench.dashboard.hub import Hub
from workbench.dashboard.live import STALLED_AFTER_S, LiveView
from workbench.dashboard.live_toasts import ToastArea
from workbench.dashboard.session import LIVE_TAB, Session
from workbench.dashboard.theme import BAND_COLORS


def live_session(hub: Hub) -> Session:
    """A session with only its Live page built (the other pages would read the database)."""
    session = Session(hub, "postgresql://unused")
    session.build(LIVE_TAB)
    session._last_status = -1e9
    return session


def test_a_stopped_worker_turns_stalled_and_its_rate_decays_to_zero():
    clock = Clock()
    hub = Hub(clock=clock)
    feed(hub, clock, batches=8)
    session = live_session(hub)
    session.pull()
    assert session.live.kpis.kpi["tx_per_s"].value > 0
    assert "live" in session.live.status.pane.object
    assert "live" in session.live.health.pane.object
    clock.t += STALLED_AFTER_S + 20  # the worker stopped; no batch, the hub sequence is still
    session._last_status = -1e9
    session.pull()
    assert session.live.kpis.kpi["tx_per_s"].value == 0
    assert "stalled" in session.live.status.pane.object
    assert "wall clock (UTC)" in session.live.status.pane.object
    assert "live (" not in session.live.health.pane.object


def test_toasts_can_be_muted_per_session():
    clock = Clock()
    hub = Hub(clock=clock)
    toasts: list[str] = []
    view = LiveView(notify=toasts.append)
    feed(hub, clock, batches=2)
    first = hub.delta(0)
    view.update(first, first=True)
    view.toasts.mute.value = True
    feed(hub, clock, batches=4)
    view.update(hub.delta(first.seq))
    assert toasts == []
    other = LiveView(notify=toasts.append)  # another session is not muted
    other.update(first, first=True)
    assert other.toasts.mute.value is False


def test_a_sessions_high_risk_toasts_show_in_its_toast_area():
    clock = Clock()
    hub = Hub(clock=clock)
    feed(hub, clock, batches=2)
    session = live_session(hub)
    session.pull()
    assert session.toast_area.pane.object == ""  # what came before the page opened is no news
    feed(hub, clock, batches=2)
    session.pull()
    shown = session.toast_area.pane.object
    assert shown.startswith('<div class="wb-toast" role="status"') and "High risk" in shown
    assert "card " in shown and "more High" in shown


def test_a_toast_area_escapes_what_is_not_html_yet_and_restarts_on_a_repeat():
    area = ToastArea()
    message = safe.html("card {}", "<img src=x onerror=alert(1)>")
    area.show(message)
    first = area.pane.object
    assert "&lt;img src=x onerror=alert(1)&gt;" in first and "<img" not in first
    area.show(message)  # the same text again is a new toast: a new element, a new fade
    assert area.pane.object != first and message in area.pane.object
    area.show("<b>not escaped</b>")  # type: ignore[arg-type]  # a str is shown as text
    assert "&lt;b&gt;not escaped&lt;/b&gt;" in area.pane.object


def test_a_rule_that_stops_hitting_stays_on_the_chart_at_zero():
    rules = LiveView().rules
    rules.update({"big": 3.0, "night": 1.0})
    rules.update({"big": 2.0})
    data = dict(zip(rules.source.data["rule"], rules.source.data["rate"], strict=True))
    assert data == {"big": 2.0, "night": 0.0}
    assert list(rules.figure.y_range.factors) == ["night", "big"]  # largest at the top


def test_axes_format_numbers_plainly_and_the_map_has_a_band_legend():
    view = LiveView()
    figures = [p.object for p in view.panel.select(lambda o: hasattr(o, "object"))]
    figures = [f for f in figures if hasattr(f, "yaxis")]
    assert len(figures) >= 5
    band_chart = next(f for f in figures if "by band" in f.title.text)
    assert band_chart.y_scale.__class__.__name__ == "LogScale"  # Medium/High visible
    assert all(isinstance(a.formatter, NumeralTickFormatter) for a in band_chart.yaxis)
    geo = next(f for f in figures if f.title.text.startswith("Recent transactions"))
    legends = [r for r in geo.above + geo.center if isinstance(r, Legend)]
    # a static legend (one item per band, not a field of the streamed source)
    assert legends and [i.label.value for i in legends[0].items] == ["Low", "Medium", "High"]
    # each entry's renderer holds one (undrawn) row: without any, BokehJS draws no marker
    assert all(len(i.renderers[0].data_source.data["x"]) == 1 for i in legends[0].items)


def test_the_map_streams_arrays_and_live_charts_do_not_sync_their_ranges_back():
    # What a session sends costs server CPU per session: the map's points are arrays (Bokeh
    # sends numbers as binary buffers and text as one list, not value by value), coloured in
    # the browser from the band; the browser's auto-ranged starts and ends are not sent back.
    clock = Clock()
    hub = Hub(clock=clock)
    feed(hub, clock, batches=3)
    view = LiveView()
    view.update(hub.delta(0), first=True)
    data = view.map.source.data
    assert "color" not in data and len(data["lon"]) > 0
    assert {k: v.dtype.kind for k, v in data.items()} == {
        "lon": "f", "lat": "f", "band": "U", "card_id": "U", "amount": "f"
    }  # fmt: skip
    (points,) = [r for r in view.map.figure.renderers if r.data_source is view.map.source]
    colors = points.glyph.fill_color.transform
    assert dict(zip(colors.factors, colors.palette, strict=True)) == BAND_COLORS
    figures = [p.object for p in view.panel.select(lambda o: hasattr(o, "object"))]
    figures = [f for f in figures if hasattr(f, "x_range")]
    assert len(figures) >= 5
    assert not any(r.syncable for f in figures for r in (f.x_range, f.y_range))
