"""The live page of one browser session: KPIs, trends, live table, alert feed, map, health.

:class:`LiveView` owns its widgets and Bokeh sources (never shared between sessions) and
changes them only in :meth:`LiveView.update`, from a hub :class:`~workbench.dashboard.hub.Delta`.
Every streaming view has a rollover, so a session open for days holds a bounded amount.
Trends are raw Bokeh figures fed by ``ColumnDataSource.stream`` (cheap per update); the table
is coloured by formatters, never by ``Tabulator.style``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, FactorRange, HoverTool, NumeralTickFormatter
from bokeh.plotting import figure

from workbench.bands import LABELS
from workbench.dashboard import clock, safe
from workbench.dashboard.hub import SECONDS, Delta, Kpis
from workbench.dashboard.parts import read_only_table
from workbench.dashboard.theme import (
    ACCENT,
    BAND_COLORS,
    fmt_age,
    fmt_money,
    fmt_number,
)
from workbench.storage.notify import HighRow

TABLE_ROWS = 200  # live transaction table rollover
FEED_ROWS = 50  # alert feed rollover
MAP_POINTS = 500  # map rollover
RULES_EVERY_S = 5.0  # the hits-per-rule chart is redrawn at most this often
TABLE_EVERY_S = 1.0  # the two tables are streamed at most this often
TOAST_EVERY_S = 10.0  # at most one toast this often; High transactions in between are counted
STATUS_EVERY_S = 1.0  # without new batches, rates and the worker status are re-read this often
STALLED_AFTER_S = 5.0  # no batch for this long: the pipeline is shown as stalled

TABLE_DTYPES = {
    "time": "object",
    "tx_id": "object",
    "card_id": "object",
    "amount": "float64",
    "merchant_category": "object",
    "country": "object",
    "channel": "object",
    "risk_score": "float64",
    "band": "object",
    "rules": "object",
}
FEED_DTYPES = {
    "time": "object",
    "card_id": "object",
    "amount": "float64",
    "risk_score": "float64",
    "rules": "object",
    "tx_id": "object",
}


def table_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Stored transactions (hub rows) as live-table rows, oldest first."""
    if frame.empty:
        return _empty(TABLE_DTYPES)
    out = pd.DataFrame(
        {
            "time": clock.stamp(frame["ts"]),
            "tx_id": frame["tx_id"].astype(str),
            "card_id": frame["card_id"].astype(str),
            "amount": frame["amount"].astype(float).round(2),
            "merchant_category": frame["merchant_category"].astype(str),
            "country": frame["country"].astype(str),
            "channel": frame["channel"].astype(str),
            "risk_score": frame["risk_score"].astype(float).round(1),
            "band": frame["band"].astype(str),
            "rules": [", ".join(sorted(h or {})) for h in frame["rule_hits"]],
        }
    )
    return out.reset_index(drop=True).astype(TABLE_DTYPES)


def feed_rows(alerts: list[HighRow]) -> pd.DataFrame:
    """High transactions of the hub (oldest first) as alert-feed rows."""
    return pd.DataFrame(
        {
            "time": clock.stamp(pd.Series([a.ts for a in alerts], dtype=object)).fillna(""),
            "card_id": [a.card_id or "" for a in alerts],
            "amount": [_num(a.amount) for a in alerts],
            "risk_score": [_num(a.risk_score) for a in alerts],
            "rules": [", ".join(a.rules) for a in alerts],
            "tx_id": [a.tx_id or "" for a in alerts],
        },
        columns=list(FEED_DTYPES),
    ).astype(FEED_DTYPES)


def _empty(dtypes: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in dtypes.items()})


class LiveView(pn.viewable.Viewer):
    """The live page of one session. ``notify`` shows a toast (None: no toasts); it is given
    :class:`~workbench.dashboard.safe.Html` (card ids and rule ids escaped). ``table`` makes
    the two tables (``read_only_table``'s signature; a notebook passes its own)."""

    def __init__(
        self,
        notify: Callable[[safe.Html], None] | None = None,
        *,
        table: Callable[..., Any] = read_only_table,
    ) -> None:
        super().__init__()
        self.notify = notify
        self.updates = 0
        # Per session: an analyst working a case mutes the High toasts; they are still counted
        # in the alert feed and the KPIs.
        self.mute = pn.widgets.Checkbox(label="Mute High-risk toasts", css_classes=["mute-toasts"])
        self._rules_seen: dict[str, None] = {}  # every rule shown once stays (at 0 hits)
        self._last_toast = -math.inf
        self._untoasted = 0
        self._last_flush = -math.inf
        self._last_rules = -math.inf
        self._pending_rows: list[pd.DataFrame] = []
        self._pending_alerts: list[HighRow] = []
        self.kpi = {
            "processed": pn.indicators.Number(label="Transactions", value=0, format="{value:,}"),
            "tx_per_s": pn.indicators.Number(label="tx/s", value=0, format="{value:,.0f}"),
            "pct_high": pn.indicators.Number(
                label="% High (10 min)",
                value=0,
                format="{value:.2f}%",
                colors=[(1, BAND_COLORS["Low"]), (5, BAND_COLORS["Medium"]), (100, "#c62828")],
            ),
            "open_alerts": pn.indicators.Number(label="Open alerts", value=0, format="{value:,}"),
            "mean_score": pn.indicators.String(label="Mean score (10 min)", value="—"),
            "latency": pn.indicators.String(label="Latency p50 / p99", value="—"),
        }
        for key, widget in self.kpi.items():
            widget.css_classes = [f"kpi-{key}"]
            widget.param.update(font_size="26pt", title_size="11pt", width=180)
        self.kpi["latency"].width = 280
        newest_first = [{"field": "time", "dir": "desc"}]
        self.table = table(
            table_rows(pd.DataFrame()), "live-transactions", 360, sorters=newest_first
        )
        self.feed = table(feed_rows([]), "alert-feed", 360, sorters=newest_first)
        self.trend_source = ColumnDataSource({"t": [], "mean": [], "p95": []})
        self.band_time_source = ColumnDataSource({"t": [], "Low": [], "Medium": [], "High": []})
        self.band_source = ColumnDataSource(
            {
                "band": list(LABELS),
                "count": [0] * len(LABELS),
                "color": _colors(),
                "label": ["0"] * 3,
            }
        )
        self.rule_source = ColumnDataSource({"rule": [], "rate": []})
        self.map_source = ColumnDataSource(
            {"lon": [], "lat": [], "color": [], "band": [], "card_id": [], "amount": []}
        )
        self.health = safe.pane(sizing_mode="stretch_width", css_classes=["health"])
        self.status = safe.pane(css_classes=["live-status"])
        self.panel = self._layout()

    def __panel__(self) -> pn.viewable.Viewable:
        return self.panel

    # -- update ---------------------------------------------------------------------------

    def update(self, delta: Delta, *, first: bool = False) -> None:
        """Apply one delta; ``first``: the session's first, whose alerts are history."""
        if delta.seconds:
            self._stream_seconds(delta)
        if not delta.transactions.empty:
            self._pending_rows.append(delta.transactions.tail(TABLE_ROWS))
            self._stream_map(delta.transactions)
        if delta.alerts:
            self._pending_alerts.extend(delta.alerts)
            del self._pending_alerts[:-FEED_ROWS]
            if not first:
                self._toast(delta.alerts)
        self.flush_tables(force=first)
        counts = [int(delta.bands.get(b, 0)) for b in LABELS]
        if counts != list(self.band_source.data["count"]):
            self.band_source.data = {
                "band": list(LABELS),
                "count": counts,
                "color": _colors(),
                "label": [f"{c:,}" for c in counts],
            }
        now = time.monotonic()
        if first or now - self._last_rules >= RULES_EVERY_S:  # a 5-minute rate moves slowly
            self._rules(delta.rule_rates)
            self._last_rules = now
        self.update_status(delta)
        self.updates += 1

    def update_status(self, delta: Delta) -> None:
        """The KPIs, the health panel and the live/stalled status: called by every update and,
        while no batch arrives, every :data:`STATUS_EVERY_S` by the session, so a stopped
        worker's rate decays to 0 and its status turns "stalled" within seconds."""
        self._kpis(delta.kpis)
        safe.show(self.health, _health_html(delta))
        safe.show(self.status, status_html(delta.health))

    def flush_tables(self, *, force: bool = False) -> None:
        """Stream the rows gathered since the last flush, at most every :data:`TABLE_EVERY_S`
        (Tabulator's stream costs milliseconds of server CPU each, the Bokeh sources'
        microseconds)."""
        now = time.monotonic()
        if not force and now - self._last_flush < TABLE_EVERY_S:
            return
        if self._pending_rows:
            frame = pd.concat(self._pending_rows, ignore_index=True).tail(TABLE_ROWS)
            _add_rows(self.table, table_rows(frame), TABLE_ROWS, replace=force)
        if self._pending_alerts:
            _add_rows(self.feed, feed_rows(self._pending_alerts), FEED_ROWS, replace=force)
        self._pending_rows, self._pending_alerts = [], []
        self._last_flush = now

    def _kpis(self, k: Kpis) -> None:
        values = {
            "processed": k.processed,
            "tx_per_s": round(k.tx_per_s),
            "pct_high": round(k.pct_high, 2),
            "open_alerts": k.open_alerts,
            # pn.indicators.String puts its value into HTML as is: text goes through safe
            "mean_score": safe.text(fmt_number(k.mean_score, 1)),
            "latency": safe.html(
                "{} / {}", fmt_number(k.latency_p50_ms), fmt_number(k.latency_p99_ms, 0, " ms")
            ),
        }
        for key, value in values.items():
            if self.kpi[key].value != value:
                self.kpi[key].value = value

    def _stream_seconds(self, delta: Delta) -> None:
        t = clock.axis_ms([s.t for s in delta.seconds])
        self.trend_source.stream(
            {
                "t": t,
                "mean": [s.mean_score for s in delta.seconds],
                "p95": [s.p95_score for s in delta.seconds],
            },
            rollover=SECONDS,
        )
        self.band_time_source.stream(
            {
                "t": t,
                # a log axis cannot show 0: a second without a band is a gap in its line
                "Low": [s.low or math.nan for s in delta.seconds],
                "Medium": [s.medium or math.nan for s in delta.seconds],
                "High": [s.high or math.nan for s in delta.seconds],
            },
            rollover=SECONDS,
        )

    def _stream_map(self, frame: pd.DataFrame) -> None:
        located = frame.dropna(subset=["lat", "lon"])
        if located.empty:
            return
        self.map_source.stream(
            {
                "lon": located["lon"].tolist(),
                "lat": located["lat"].tolist(),
                "color": [BAND_COLORS.get(b, ACCENT) for b in located["band"]],
                "band": located["band"].astype(str).tolist(),
                "card_id": located["card_id"].astype(str).tolist(),
                "amount": located["amount"].round(2).tolist(),
            },
            rollover=MAP_POINTS,
        )

    def _rules(self, rates: dict[str, float]) -> None:
        """Every rule that hit since the session opened stays on the chart, at 0 when it no
        longer hits (a rule that stops matching is news, not noise)."""
        self._rules_seen.update(dict.fromkeys(rates))
        rates = {r: rates.get(r, 0.0) for r in self._rules_seen}
        ordered = sorted(rates, key=lambda r: (-rates[r], r))
        rules = ordered[:15][::-1]  # largest at the top
        data = {"rule": rules, "rate": [round(rates[r], 2) for r in rules]}
        if data != dict(self.rule_source.data):
            self.rule_figure.y_range.factors = rules
            self.rule_source.data = data

    def _toast(self, alerts: list[HighRow]) -> None:
        """One toast for the newest High transaction, at most every :data:`TOAST_EVERY_S`;
        the ones in between are counted into the next toast rather than flooding the page."""
        if self.notify is None:
            return
        self._untoasted += len(alerts)
        if self.mute.value:
            return
        now = time.monotonic()
        if now - self._last_toast < TOAST_EVERY_S:
            return
        a = alerts[-1]
        more = self._untoasted - 1
        self.notify(
            safe.html(
                "High risk {}: card {}, amount {} ({}){}",
                fmt_number(_num(a.risk_score)),
                a.card_id,
                fmt_money(_num(a.amount)),
                ", ".join(a.rules),
                f" — and {more} more High" if more > 0 else "",
            )
        )
        self._last_toast, self._untoasted = now, 0

    # -- layout ---------------------------------------------------------------------------

    def _layout(self) -> pn.viewable.Viewable:
        trend = _time_figure("Risk score per second (mean, p95)", "score")
        trend.y_range.start = 0
        trend.line("t", "mean", source=self.trend_source, color=ACCENT, legend_label="mean")
        trend.line("t", "p95", source=self.trend_source, color="#c62828", legend_label="p95")
        trend.legend.location = "top_left"
        # One line per band on a log scale: High is ~1 % of Low, invisible on a linear stack.
        bands_t = _time_figure("Transactions per second by band (log scale)", "tx/s", log=True)
        for band, color in zip(LABELS, _colors(), strict=True):
            bands_t.line("t", band, source=self.band_time_source, color=color, legend_label=band)
        bands_t.legend.location = "top_left"
        dist = figure(
            title="Band distribution (10 min)",
            x_range=list(LABELS),
            height=260,
            sizing_mode="stretch_width",
            toolbar_location=None,
        )
        dist.vbar(x="band", top="count", color="color", width=0.7, source=self.band_source)
        dist.text(
            x="band",
            y="count",
            text="label",
            source=self.band_source,
            text_align="center",
            text_baseline="bottom",
            text_font_size="11pt",
        )
        dist.y_range.start = 0
        dist.y_range.range_padding = 0.15
        self.rule_figure = figure(
            title="Hits per minute by rule (5 min)",
            y_range=FactorRange(factors=[]),
            height=260,
            sizing_mode="stretch_width",
            toolbar_location=None,
        )
        self.rule_figure.hbar(
            y="rule", right="rate", height=0.7, color=ACCENT, source=self.rule_source
        )
        self.rule_figure.x_range.start = 0
        geo = figure(
            title="Recent transactions (colour: band)",
            height=360,
            sizing_mode="stretch_width",
            x_axis_label="longitude",
            y_axis_label="latitude",
            match_aspect=True,
            tools="pan,wheel_zoom,reset",
        )
        geo.scatter(
            "lon",
            "lat",
            color="color",
            size=6,
            alpha=0.7,
            source=self.map_source,
        )
        # A static legend: one empty renderer per band. (legend_field would index the
        # streamed source, whose rollover leaves the legend reading past its end: a RangeError
        # in BokehJS.)
        for band in LABELS:
            geo.scatter([], [], color=BAND_COLORS[band], size=6, legend_label=band)
        geo.legend.location = "top_left"
        geo.legend.title = "band"
        # Bokeh escapes @field values (only a "{safe}" format in our template would not)
        geo.add_tools(
            HoverTool(tooltips=[("card", "@card_id"), ("amount", "@amount"), ("band", "@band")])
        )
        dist.yaxis.formatter = NumeralTickFormatter(format="0,0")
        self.rule_figure.xaxis.formatter = NumeralTickFormatter(format="0,0.[0]")
        return pn.Column(
            pn.FlexBox(self.status, self.mute, align_items="center"),
            pn.FlexBox(*self.kpi.values()),
            _wrap(pn.pane.Bokeh(trend), pn.pane.Bokeh(bands_t)),
            _wrap(
                pn.pane.Bokeh(dist),
                pn.pane.Bokeh(self.rule_figure),
                pn.Column(safe.heading("Pipeline health"), self.health),
            ),
            _wrap(
                pn.Column(safe.heading("Live transactions"), self.table),
                pn.Column(safe.heading("Alert feed (High)"), self.feed),
            ),
            pn.pane.Bokeh(geo, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )


def _add_rows(table: pn.widgets.Tabulator, rows: pd.DataFrame, rollover: int, *, replace: bool):
    """Stream ``rows`` into ``table`` keeping the newest ``rollover``; ``replace`` sets the
    value instead (the first update: a table whose browser model does not exist yet does not
    receive streamed rows in Panel 1.9)."""
    if replace:
        table.value = rows.tail(rollover).reset_index(drop=True)
    else:
        table.stream(rows, rollover=rollover, follow=False)


def _wrap(*cards: pn.viewable.Viewable) -> pn.Row:
    """Cards side by side, each stretching to its share of the width.

    A wrapping FlexBox was tried: Bokeh figures in it drew blank in the full app (sized
    while the page was laid out, never redrawn), so a Row it is; its cards have no minimum
    width, so it never widens the page on a phone (the charts get narrow instead)."""
    for card in cards:
        card.sizing_mode = "stretch_width"
    return pn.Row(*cards, sizing_mode="stretch_width")


def _time_figure(title: str, y_label: str, *, log: bool = False):
    fig = figure(
        title=title,
        x_axis_type="datetime",
        y_axis_type="log" if log else "linear",
        height=260,
        sizing_mode="stretch_width",
        x_axis_label=clock.label(clock.WALL),  # the second a batch was received
        y_axis_label=y_label,
        tools="pan,xwheel_zoom,reset",
    )
    fig.yaxis.formatter = NumeralTickFormatter(format="0,0.[00]")  # never 1e+3
    return fig


def _colors() -> list[str]:
    return [BAND_COLORS[b] for b in LABELS]


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


_HEALTH_ROW = "<tr><th style='text-align:left;padding:2px 16px 2px 0'>{}</th><td>{}</td></tr>"


def _health_html(d: Delta) -> safe.Html:
    """The health panel: a two-column table whose values (a rule-load error quoting a rule
    file, worker names) are escaped."""
    h = d.health
    reload: str | safe.Html = h.reload_status or "—"
    if h.reload_status == "rejected" and h.reload_error:
        reload = safe.html("<b>rejected</b>: {}", h.reload_error)
    elif h.reload_status:
        reload = f"{h.reload_status} ({h.reload_version})"
    rows = [
        ("Database", h.database),
        ("Rule set scoring", h.rule_set_version or "—"),
        ("Last rule-set load", reload),
        ("Dead letters", fmt_number(d.kpis.dead_letters)),
        ("Alerts opened", fmt_number(d.kpis.alerts_opened)),
        ("Last batch", _last_batch(h)),
        ("Workers", ", ".join(h.workers) or "—"),
    ]
    body = safe.join([safe.html(_HEALTH_ROW, k, v) for k, v in rows])
    return safe.html("<table style='border-collapse:collapse'>{}</table>", body)


def _last_batch(h) -> str:
    """'live' while batches keep coming (so the panel is not redrawn every update), else
    how long ago and at what wall-clock time the last one came."""
    age = h.last_batch_age_s
    if age is None or math.isnan(age):
        return "—"
    if age < STALLED_AFTER_S:
        return f"live (< {STALLED_AFTER_S:.0f} s ago)"
    return f"{fmt_age(age)} ago, at {_wall(age)}"


def _wall(age_s: float) -> str:
    """The wall-clock time ``age_s`` seconds ago, labelled."""
    at = pd.Timestamp(time.time() - age_s, unit="s", tz="UTC")
    return f"{clock.stamp(at, '%H:%M:%S')} {clock.label(clock.WALL)}"


def status_html(h) -> safe.Html:
    """The status line at the top of the Live page: live / stalled (no batch for
    :data:`STALLED_AFTER_S`, with the time of the last) / waiting for a first batch."""
    age = h.last_batch_age_s
    if age is None or math.isnan(age):
        return safe.html("<b>Waiting</b> for the first batch of the pipeline")
    if age < STALLED_AFTER_S:
        return safe.html("<b style='color:{}'>● live</b>", BAND_COLORS["Low"])
    return safe.html(
        "<b style='color:{}'>■ stalled</b>: no batch for {} (last at {})",
        BAND_COLORS["High"],
        fmt_age(age),
        _wall(age),
    )
