"""Rule health on the Rules page: which rules never or always fire, which drift, which overlap,
and the score threshold that fits the analysts' alert budget.

A read-only :class:`RuleHealthView` (``pn.viewable.Viewer``), read on its Refresh button (not
when the page opens: it scans days of history): days of history, alert budget
(cards a day) and truth (simulator or analyst labels, never mixed) selectors and a Refresh
button; then the rules that never/always fire, the drift alarms of the newest day, the fire
rates as a plot, the overlap matrix, and the recommendation with its trade-off curve. The
figures are :mod:`workbench.scoring.health` over aggregates read in PostgreSQL
(:mod:`workbench.storage.rule_fires`); the same functions serve notebooks through
:mod:`workbench.analysis.rule_health`, and so do the plot functions below.

Everything shown is text (read-only Tabulators, ``Str`` panes through
:mod:`~workbench.dashboard.safe`) or HoloViews plots whose titles are our own constants.
"""

from __future__ import annotations

import asyncio
import logging

import holoviews as hv
import holoviews.plotting.bokeh
import pandas as pd
import panel as pn

from workbench.dashboard import clock, safe
from workbench.dashboard.parts import read_only_table, schedule
from workbench.errors import WorkbenchError
from workbench.rules import parse_rules
from workbench.scoring.health import TRUTHS, Health, Recommendation, assess, recommend
from workbench.storage import rule_fires, rule_sets, shared_store

__all__ = ["RuleHealthView", "fire_rate_plot", "overlap_plot", "tradeoff_plots"]

log = logging.getLogger(__name__)

_PANE = {"sizing_mode": "stretch_width", "css_classes": ["health-plot"]}
DAYS = {"last 7 days": 7, "last 14 days": 14, "last 30 days": 30}
"""Range label -> days of event time up to the stream's now."""


class RuleHealthView(pn.viewable.Viewer):
    """Selectors, Refresh, and the health tables and plots of the active rules."""

    def __init__(self, dsn: str, **params) -> None:
        super().__init__(**params)
        self.dsn = dsn
        self.loaded = False
        self.health: Health | None = None
        self.recommendation: Recommendation | None = None
        self.days = pn.widgets.Select(
            label="Event time", options=list(DAYS), value="last 14 days", width=150
        )
        self.budget = pn.widgets.IntInput(
            label="Alert budget (cards/day)", value=50, start=1, end=100_000, width=170
        )
        self.truth = pn.widgets.Select(label="Truth", options=list(TRUTHS), width=120)
        self.refresh = pn.widgets.Button(label="Refresh", width=100, css_classes=["health-refresh"])
        self.refresh.on_click(lambda _e: schedule(self.load))
        # Not read when the Rules page opens: it scans days of stored history (about 0.3 s per
        # 300,000 transactions, benchmarks/bench_rule_health.py), so each session asks for it.
        self.message = safe.preformatted(
            "Press Refresh to read rule health and the threshold for the alert budget.",
            css_classes=["health-message"],
        )
        self.advice = safe.preformatted(css_classes=["health-advice"])
        self.status = read_only_table(pd.DataFrame(), "health-status", 180)
        self.alarms = read_only_table(pd.DataFrame(), "health-alarms", 150)
        self.overlap = read_only_table(pd.DataFrame(), "health-overlap", 220)
        self.plots = pn.Column(sizing_mode="stretch_width")
        self.layout = pn.Column(
            safe.heading("Rule health", 4),
            pn.FlexBox(self.days, self.budget, self.truth, self.refresh),
            self.message,
            safe.heading("Never or always firing", 5),
            self.status,
            safe.heading("Drift alarms (newest day)", 5),
            self.alarms,
            safe.heading("Overlap: share of the row rule's hits where the column rule hits", 5),
            self.overlap,
            safe.heading("Capacity-aware threshold", 5),
            self.advice,
            self.plots,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self.layout

    async def load(self) -> Health | None:
        """Read and show health and the recommendation; None when the read failed."""
        days, budget, truth = DAYS[self.days.value], int(self.budget.value), self.truth.value
        try:
            health, cd, min_band = await asyncio.to_thread(self._read, days)
        except WorkbenchError as exc:
            safe.show_text(self.message, f"Cannot read rule health: {exc}")
            return None
        rec = recommend(cd, budget, truth=truth) if len(cd) else None
        self.loaded, self.health, self.recommendation = True, health, rec
        status = health.status[health.status["status"] != "ok"]
        alarms = health.alarms[["rule_id", "rate", "mean", "std", "z", "reason"]]
        with pn.io.hold():
            safe.show_text(
                self.message,
                f"{len(health.rates.columns)} rule(s), {len(status)} never/always firing, "
                f"{len(alarms)} drift alarm(s); event time {clock.stamp(health.start)} .. "
                f"{clock.stamp(health.end)} {clock.zone().key}",
            )
            self.status.value = status.reset_index().round(4)
            self.alarms.value = alarms.round(4)
            self.overlap.value = health.overlap.round(3).reset_index()
            safe.show_text(
                self.advice,
                rec.text(min_band) if rec is not None else "No stored transactions in range.",
            )
            plots = []
            if len(health.rates.columns):
                plots.append(pn.pane.HoloViews(fire_rate_plot(health.rates), **_PANE))
            if rec is not None:  # two panes: a HoloViews layout in a stretched pane collapses
                plots += [pn.pane.HoloViews(p, **_PANE) for p in tradeoff_plots(rec)]
            self.plots.objects = plots
        return health

    def _read(self, days: int):
        store = shared_store(self.dsn)
        rule_ids, min_band = _active_rules(store)
        start, end = rule_fires.span(store, days)
        counts = rule_fires.fire_counts(store, start, end)
        pairs = rule_fires.co_hits(store, start, end)
        cd = rule_fires.card_days(store, *rule_fires.span(store, min(days, 7)))
        return assess(counts, pairs, rule_ids, start=start, end=end), cd, min_band


def _active_rules(store) -> tuple[list[str] | None, str]:
    """The active rule set's enabled rule ids and alert band (None, "High" when unknown)."""
    active = rule_sets.active(store)
    if active is None:
        return None, "High"
    try:
        ruleset = parse_rules(active["files"])
    except WorkbenchError:  # a stored set that no longer parses: show what was stored
        log.warning("the active rule set %s does not parse", active["version"], exc_info=True)
        return None, "High"
    return [r.id for r in ruleset.enabled_rules], str(ruleset.alert.min_band)


# -- plots (also the notebooks', through workbench.analysis.rule_health) ------------------


def tradeoff_plots(rec: Recommendation) -> tuple[hv.Overlay, hv.Overlay]:
    """Alerts/day against threshold (budget and choice marked); precision, recall and CP@k
    against threshold (choice marked)."""
    c = rec.curve
    mark = hv.VLine(rec.threshold).opts(color="black", line_dash="dotted")
    budget = hv.HLine(rec.budget).opts(color="red", line_dash="dashed")
    volume = hv.Curve(c, "threshold", "alerts_per_day", label="alerts/day") * budget * mark
    shares = hv.Overlay(
        [
            hv.Curve(c, "threshold", (col, "share"), label=col)
            for col in ("precision", "recall", "cp_at_k")
        ]
    )
    opts = {"responsive": True, "height": 240, "show_grid": True}
    return (
        volume.opts(title=f"Alerts per day ({rec.truth} truth), budget {rec.budget}", **opts),
        (shares * mark).opts(title=f"Precision, recall, CP@{rec.budget}", **opts),
    )


def fire_rate_plot(rates: pd.DataFrame) -> hv.Overlay:
    """One fire-rate curve per rule against bucket time (UTC)."""
    index = pd.DatetimeIndex(rates.index).tz_convert("UTC").tz_localize(None)
    curves = [
        hv.Curve((index, rates[r].to_numpy()), "bucket", ("rate", "fire rate"), label=str(r))
        for r in rates.columns
    ]
    return hv.Overlay(curves).opts(
        title="Fire rate per rule (share of transactions hit)",
        responsive=True,
        height=260,
        show_grid=True,
        legend_position="right",
    )


def overlap_plot(matrix: pd.DataFrame) -> hv.HeatMap:
    """The overlap matrix as a heat map (row rule -> column rule)."""
    long = matrix.stack(future_stack=True).rename("share").reset_index()
    long.columns = ["rule", "also_hit", "share"]
    return hv.HeatMap(long, ["also_hit", "rule"], "share").opts(
        title="Overlap", responsive=True, height=320, colorbar=True, tools=["hover"]
    )
