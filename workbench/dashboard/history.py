"""The history page of one session: a time range, bucketed plots computed in SQL, drill-down.

Counts, band mix, score percentiles, alerts and labelled fraud per bucket come from one
``GROUP BY`` in PostgreSQL (:func:`workbench.storage.transactions.bucketed`), so a day or a
month costs the same to draw. The transaction scatter loads the rows of the range by COPY and is
rasterized by datashader when the range holds more than :data:`RAW_POINTS` of them; beyond
:data:`MAX_POINTS` it asks for a shorter range instead of loading everything. Ranges are in
event time and relative to the newest stored transaction (the simulator's clock may run
faster than the wall clock).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import holoviews as hv
import hvplot.pandas  # noqa: F401  (registers .hvplot on DataFrames)
import pandas as pd
import panel as pn

from workbench.dashboard import clock, safe
from workbench.dashboard.parts import read_only_table, schedule
from workbench.dashboard.theme import BAND_COLORS
from workbench.errors import WorkbenchError
from workbench.storage import shared_store

PRESETS = {
    "Last 15 minutes": 900,
    "Last hour": 3600,
    "Last 6 hours": 6 * 3600,
    "Last day": 86400,
    "Last 7 days": 7 * 86400,
    "Last 30 days": 30 * 86400,
}
BUCKETS = 240  # about this many buckets per plot, whatever the range
RAW_POINTS = 50_000  # up to this many transactions are drawn as points; more are rasterized
MAX_POINTS = 5_000_000
CARD_ROWS = 200


def bucket_for(start: datetime, end: datetime, buckets: int = BUCKETS) -> timedelta:
    """A round bucket width giving about ``buckets`` buckets over ``[start, end)``."""
    seconds = max((end - start).total_seconds() / buckets, 1.0)
    for step in (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 86400):
        if seconds <= step:
            return timedelta(seconds=step)
    return timedelta(days=max(1, round(seconds / 86400)))


class HistoryView(pn.viewable.Viewer):
    """Range inputs, plots and a card drill-down for one session."""

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.dsn = dsn
        self.preset = pn.widgets.Select(
            label="Range", options=list(PRESETS), value="Last hour", width=180
        )
        self.start = pn.widgets.DatetimeInput(label=f"From, {clock.label()}", width=200)
        self.end = pn.widgets.DatetimeInput(label=f"To, {clock.label()}", width=200)
        self.show = pn.widgets.Button(label="Show", color="primary", width=100)
        self.show.on_click(lambda _e: schedule(self.load))
        self.preset.param.watch(lambda _e: schedule(self.load_preset), "value")
        self.message = safe.pane(css_classes=["history-message"])
        self.plots = pn.Column(sizing_mode="stretch_width", css_classes=["history-plots"])
        self.card_input = pn.widgets.TextInput(label="Card", placeholder="card id", width=200)
        self.card_button = pn.widgets.Button(label="Drill down", width=100)
        self.card_button.on_click(lambda _e: schedule(self.load_card))
        self.card_plot = pn.Column(sizing_mode="stretch_width")
        self.card_table = read_only_table(pd.DataFrame(), "history-card", 300)
        self.panel = pn.Column(
            pn.FlexBox(self.preset, self.start, self.end, self.show),
            self.message,
            self.plots,
            safe.heading("Drill down to a card"),
            pn.FlexBox(self.card_input, self.card_button),
            self.card_plot,
            self.card_table,
            sizing_mode="stretch_width",
        )
        self.loaded = False

    def __panel__(self) -> pn.viewable.Viewable:
        return self.panel

    async def load_preset(self) -> None:
        """Set the range to the chosen preset, ending at the newest stored transaction."""
        try:
            bounds = await asyncio.to_thread(self._bounds)
        except WorkbenchError as exc:
            safe.show(self.message, safe.html("<b>Cannot read the database:</b> {}", exc))
            return
        if bounds is None:
            safe.show(self.message, safe.html("No transactions stored yet."))
            return
        end = bounds[1] + timedelta(seconds=1)
        start = max(bounds[0], end - timedelta(seconds=PRESETS[self.preset.value]))
        self.start.value, self.end.value = clock.naive(start), clock.naive(end)
        await self.load()

    async def load(self) -> None:
        if self.start.value is None or self.end.value is None:
            await self.load_preset()
            return
        start, end = clock.from_input(self.start.value), clock.from_input(self.end.value)
        if end <= start:
            safe.show(
                self.message, safe.html("<b>The range is empty:</b> 'To' must be after 'From'.")
            )
            return
        safe.show(self.message, safe.html("Loading…"))
        try:
            result = await asyncio.to_thread(self._read, start, end)
        except WorkbenchError as exc:
            safe.show(self.message, safe.html("<b>Cannot load the range:</b> {}", exc))
            return
        self.plots.objects = list(_plots(result))
        safe.show(self.message, safe.text(result["note"]))
        self.loaded = True

    async def show_card_at(self, card: str, at: datetime, around_s: float = 3600.0) -> None:
        """The drill-down for ``card`` with the range centred on ``at`` (event time):
        where the alert detail's "Open in History" and ``?card=...&at=...`` land."""
        moment = pd.Timestamp(clock.to_display(at))
        self.card_input.value = card
        self.start.value = clock.naive(moment - timedelta(seconds=around_s))
        self.end.value = clock.naive(moment + timedelta(seconds=around_s))
        await self.load()
        await self.load_card()

    async def load_card(self) -> None:
        card = self.card_input.value.strip()
        if not card:
            return
        try:
            frame = await asyncio.to_thread(self._card, card)
        except WorkbenchError as exc:
            safe.show(self.message, safe.html("<b>Cannot load card {}:</b> {}", card, exc))
            return
        if frame.empty:
            self.card_plot.objects = [
                safe.pane(safe.html("No transactions of card <code>{}</code>.", card))
            ]
            # No rows, the same columns: the table keeps its header instead of collapsing to a
            # table without columns.
            self.card_table.value = self.card_table.value.iloc[0:0]
            return
        table = frame[["ts", "amount", "merchant_category", "country", "channel", "risk_score"]]
        table = table.assign(
            band=frame["band"], rules=[", ".join(sorted(h or {})) for h in frame["rule_hits"]]
        )
        table["ts"] = clock.stamp(table["ts"])
        self.card_table.value = table.reset_index(drop=True)
        self.card_plot.objects = [
            pn.pane.HoloViews(
                _points(frame, f"Card {_literal(card)}: amount over time"),
                sizing_mode="stretch_width",
            )
        ]

    # -- database (worker threads) --------------------------------------------------------

    def _bounds(self):
        return shared_store(self.dsn).transactions.time_bounds()

    def _read(self, start: datetime, end: datetime) -> dict[str, Any]:
        step = bucket_for(start, end)
        store = shared_store(self.dsn)
        buckets = store.transactions.bucketed(start, end, step)
        total = int(buckets["transactions"].sum())
        points = store.transactions.load(start, end) if 0 < total <= MAX_POINTS else None
        note = f"{total:,} transactions in buckets of {_duration(step)}."
        if total > MAX_POINTS:
            note += f" More than {MAX_POINTS:,}: choose a shorter range to see single transactions."
        elif total > RAW_POINTS:
            note += " Transactions are rasterized (datashader)."
        return {"buckets": buckets, "points": points, "note": note, "step": step}

    def _card(self, card: str) -> pd.DataFrame:
        return shared_store(self.dsn).transactions.card_history(card, limit=CARD_ROWS)


def _plots(result: dict[str, Any]):
    """The bucket plots. Each has its own y axis (``shared_axes=False``: HoloViews otherwise
    links every plot whose value dimension is called the same, and scores 0-100 squeezed
    alert counts flat) and a legend naming its series."""
    b = result["buckets"]
    b = b.assign(bucket=clock.naive(b["bucket"])).rename(
        columns={
            "low": "Low",
            "medium": "Medium",
            "high": "High",
            "mean_score": "mean score",
            "p95_score": "p95 score",
            "alerts": "alerts opened",
            "fraud": "labelled fraud",
        }
    )
    opts = {
        "responsive": True,
        "height": 260,
        "shared_axes": False,
        "xlabel": clock.label(),
    }
    bands = b.hvplot.area(
        x="bucket",
        y=["Low", "Medium", "High"],
        stacked=True,
        color=[BAND_COLORS["Low"], BAND_COLORS["Medium"], BAND_COLORS["High"]],
        title="Transactions per bucket by band",
        ylabel="transactions",
        group_label="band",
        yformatter="%d",
        **opts,
    )
    scores = b.hvplot.line(
        x="bucket",
        y=["mean score", "p95 score"],
        title="Risk score (mean, p95)",
        ylabel="score",
        group_label="score",
        **opts,
    )
    alerts = b.hvplot.line(
        x="bucket",
        y=["alerts opened", "labelled fraud"],
        title="Alerts opened and labelled fraud",
        ylabel="count",
        group_label="series",
        **opts,
    )
    yield pn.pane.HoloViews(bands, sizing_mode="stretch_width")
    # one under the other: side by side, two plots with their legends overflow a phone
    yield pn.pane.HoloViews(scores, sizing_mode="stretch_width")
    yield pn.pane.HoloViews(alerts, sizing_mode="stretch_width")
    if result["points"] is not None and not result["points"].empty:
        yield pn.pane.HoloViews(
            _points(result["points"], "Transactions: amount over time"), sizing_mode="stretch_width"
        )


def _points(frame: pd.DataFrame, title: str) -> hv.Element:
    # shared_axes=False: the card drill-down must not take over the range scatter's x axis
    opts = {
        "responsive": True,
        "height": 300,
        "title": title,
        "logy": False,
        "shared_axes": False,
        "xlabel": clock.label(),
        "yformatter": "%.2f",
    }
    frame = frame.assign(ts=clock.naive(frame["ts"]))  # Bokeh draws datetimes as UTC
    if len(frame) > RAW_POINTS:
        return frame.hvplot.points(
            x="ts", y="amount", rasterize=True, cnorm="eq_hist", cmap="viridis", **opts
        )
    return frame.hvplot.scatter(
        x="ts",
        y="amount",
        c="band",
        cmap=BAND_COLORS,
        hover_cols=["tx_id", "card_id", "risk_score"],
        size=12,
        **opts,
    )


def _literal(text: str) -> str:
    """``text`` for a HoloViews title, which is a format string (``title.format(label=...)``):
    braces doubled, so a card id such as ``{label.__class__}`` is shown, not evaluated."""
    return text.replace("{", "{{").replace("}", "}}")


def _duration(step: timedelta) -> str:
    s = int(step.total_seconds())
    if s % 86400 == 0:
        return f"{s // 86400} d"
    if s % 3600 == 0:
        return f"{s // 3600} h"
    if s % 60 == 0:
        return f"{s // 60} min"
    return f"{s} s"
