"""The live page's charts: risk score and transactions per band per second, the band
distribution and the hits per rule.

Raw Bokeh figures fed by ``ColumnDataSource.stream`` with a rollover (≈0.1 ms per update,
against ≈6 ms for a HoloViews ``Buffer``); each figure stretches to the width of its card and
has no minimum width of its own: Panel would add the minimums of the figures side by side
into the row's, which then no longer wraps on a phone (the page's cards set CSS minimums).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import panel as pn
from bokeh.models import ColumnDataSource, FactorRange, NumeralTickFormatter
from bokeh.plotting import figure

from workbench.bands import LABELS
from workbench.dashboard import clock
from workbench.dashboard.hub import SECONDS, Second
from workbench.dashboard.theme import ACCENT, BAND_COLORS

CHART_HEIGHT = 260
RULES_SHOWN = 15


def band_colors() -> list[str]:
    return [BAND_COLORS[b] for b in LABELS]


def live_figure(title: str, *, height: int = CHART_HEIGHT, **options) -> figure:
    """A figure that stretches to the width of its card.

    Its ranges are not synced back to the server: the browser recomputes an automatic range
    after every streamed point (and on every pan or zoom), and would send each new start
    and end to the server, which handles and acknowledges each message for nothing (no
    code reads a live chart's range). That was several messages a second per session."""
    options.setdefault("toolbar_location", None)
    fig = figure(
        title=title,
        height=height,
        sizing_mode="stretch_width",
        **options,
    )
    fig.x_range.syncable = False
    fig.y_range.syncable = False
    return fig


def legend_above(fig: figure) -> None:
    """The legend on one line between the title and the plot: inside the plot it hid the
    newest values of a narrow chart."""
    legend = fig.legend[0]
    legend.orientation = "horizontal"
    legend.location = "top_left"
    legend.margin = 0
    legend.padding = 2
    legend.border_line_alpha = 0
    fig.add_layout(legend, "above")


class Trends(pn.viewable.Viewer):
    """Risk score per second (mean, p95) and transactions per second by band."""

    def __init__(self) -> None:
        super().__init__()
        self.score_source = ColumnDataSource({"t": [], "mean": [], "p95": []})
        self.band_source = ColumnDataSource({"t": [], "Low": [], "Medium": [], "High": []})
        score = _time_figure("Risk score per second (mean, p95)", "score")
        score.y_range.start = 0
        score.line("t", "mean", source=self.score_source, color=ACCENT, legend_label="mean")
        score.line("t", "p95", source=self.score_source, color="#c62828", legend_label="p95")
        # One line per band on a log scale: High is ~1 % of Low, invisible on a linear stack.
        bands = _time_figure("Transactions per second by band (log scale)", "tx/s", log=True)
        for band, color in zip(LABELS, band_colors(), strict=True):
            bands.line("t", band, source=self.band_source, color=color, legend_label=band)
        self.figures = [score, bands]
        for fig in self.figures:
            legend_above(fig)
        self.panes = [pn.pane.Bokeh(f) for f in self.figures]

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(*self.panes, sizing_mode="stretch_width")

    def stream(self, seconds: Sequence[Second]) -> None:
        t = clock.axis_ms([s.t for s in seconds])
        self.score_source.stream(
            {
                "t": t,
                "mean": [s.mean_score for s in seconds],
                "p95": [s.p95_score for s in seconds],
            },
            rollover=SECONDS,
        )
        self.band_source.stream(
            {
                "t": t,
                # a log axis cannot show 0: a second without a band is a gap in its line
                "Low": [s.low or math.nan for s in seconds],
                "Medium": [s.medium or math.nan for s in seconds],
                "High": [s.high or math.nan for s in seconds],
            },
            rollover=SECONDS,
        )


class BandChart(pn.viewable.Viewer):
    """Transactions per band over the hub's share window, a count over each bar."""

    def __init__(self) -> None:
        super().__init__()
        self.source = ColumnDataSource(_band_data([0] * len(LABELS)))
        fig = live_figure("Band distribution (10 min)", x_range=list(LABELS))
        fig.vbar(x="band", top="count", color="color", width=0.7, source=self.source)
        fig.text(
            x="band",
            y="count",
            text="label",
            source=self.source,
            text_align="center",
            text_baseline="bottom",
            text_font_size="11pt",
        )
        fig.y_range.start = 0
        fig.y_range.range_padding = 0.25  # room for the count over the tallest bar
        fig.yaxis.formatter = NumeralTickFormatter(format="0,0")
        self.figure = fig
        self.pane = pn.pane.Bokeh(fig)

    def __panel__(self) -> pn.viewable.Viewable:
        return self.pane

    def update(self, bands: dict[str, int]) -> None:
        counts = [int(bands.get(b, 0)) for b in LABELS]
        if counts != list(self.source.data["count"]):
            self.source.data = _band_data(counts)


class RuleHits(pn.viewable.Viewer):
    """Hits per minute of the :data:`RULES_SHOWN` busiest rules, largest at the top. Every
    rule that hit since the session opened stays, at 0 when it no longer hits (a rule that
    stops matching is news, not noise)."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: dict[str, None] = {}
        self.source = ColumnDataSource({"rule": [], "rate": []})
        fig = live_figure("Hits per minute by rule (5 min)", y_range=FactorRange(factors=[]))
        fig.hbar(y="rule", right="rate", height=0.7, color=ACCENT, source=self.source)
        fig.x_range.start = 0
        fig.xaxis.formatter = NumeralTickFormatter(format="0,0.[0]")
        self.figure = fig
        self.pane = pn.pane.Bokeh(fig)

    def __panel__(self) -> pn.viewable.Viewable:
        return self.pane

    def update(self, rates: dict[str, float]) -> None:
        self._seen.update(dict.fromkeys(rates))
        rates = {r: rates.get(r, 0.0) for r in self._seen}
        ordered = sorted(rates, key=lambda r: (-rates[r], r))
        rules = ordered[:RULES_SHOWN][::-1]  # largest at the top
        data = {"rule": rules, "rate": [round(rates[r], 2) for r in rules]}
        if data != dict(self.source.data):
            self.figure.y_range.factors = rules
            self.source.data = data


def _band_data(counts: list[int]) -> dict[str, list]:
    return {
        "band": list(LABELS),
        "count": counts,
        "color": band_colors(),
        "label": [f"{c:,}" for c in counts],
    }


def _time_figure(title: str, y_label: str, *, log: bool = False) -> figure:
    fig = live_figure(
        title,
        x_axis_type="datetime",
        y_axis_type="log" if log else "linear",
        x_axis_label=clock.label(clock.WALL),  # the second a batch was received
        y_axis_label=y_label,
        tools="pan,xwheel_zoom,reset",
        toolbar_location="right",
    )
    fig.yaxis.formatter = NumeralTickFormatter(format="0,0.[00]")  # never 1e+3
    fig.xaxis.ticker.desired_num_ticks = 4  # "12:34:56" labels do not overlap on a phone
    return fig
