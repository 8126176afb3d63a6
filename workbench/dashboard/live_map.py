"""The live page's map: where the newest transactions were made, coloured by band.

A scatter of longitude/latitude fed by ``ColumnDataSource.stream`` with a rollover of
:data:`MAP_POINTS`, streamed with the live tables (at most every
:data:`~workbench.dashboard.live_tables.TABLE_EVERY_S`: its hundreds of points are the
largest part of an update sent to the browser); transactions without a location are not
drawn. A delta's points are
computed once for every session given it (:meth:`~workbench.dashboard.hub.Delta.derived`).

The points are NumPy arrays, so that Bokeh sends them to each session without looking at
every value: numbers as binary buffers, text (a fixed-width ``str`` array) as one
``tolist``. A list, or an array of objects, is encoded value by value in Python, once per
session and update: at 500 points every flush that was the largest part of a session's
server CPU. The colour of a point is not sent at all: the browser maps its band to it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models import CategoricalColorMapper, ColumnDataSource, HoverTool

from workbench.bands import LABELS
from workbench.dashboard.hub import Delta
from workbench.dashboard.live_charts import legend_above, live_figure
from workbench.dashboard.theme import ACCENT, BAND_COLORS

MAP_POINTS = 500  # map rollover
MAP_HEIGHT = 360


class TransactionMap(pn.viewable.Viewer):
    """The newest :data:`MAP_POINTS` located transactions; hover shows card, amount, band."""

    def __init__(self) -> None:
        super().__init__()
        self.source = ColumnDataSource(_no_points())
        fig = live_figure(
            "Recent transactions (colour: band)",
            height=MAP_HEIGHT,
            x_axis_label="longitude",
            y_axis_label="latitude",
            match_aspect=True,
            tools="pan,wheel_zoom,reset",
            toolbar_location="right",
        )
        colors = CategoricalColorMapper(
            factors=list(LABELS), palette=[BAND_COLORS[b] for b in LABELS], nan_color=ACCENT
        )
        fig.scatter(
            "lon",
            "lat",
            color={"field": "band", "transform": colors},
            size=6,
            alpha=0.7,
            source=self.source,
        )
        # A static legend: one renderer per band holding a single point that is never drawn
        # (NaN). legend_field would index the streamed source, whose rollover leaves the
        # legend reading past its end (a RangeError in BokehJS); a renderer without any row
        # draws no marker in its legend entry.
        for band in LABELS:
            fig.scatter([math.nan], [math.nan], color=BAND_COLORS[band], size=6, legend_label=band)
        legend_above(fig)
        # Bokeh escapes @field values (only a "{safe}" format in our template would not). The
        # amount (a float for display only, rounded to cents) is shown as 1,234.50: left to
        # Bokeh's default it reads 1.235e+3.
        tooltips = [
            ("card", "@card_id"),
            ("amount", "@amount{0,0.00}"),
            ("band", "@band"),
        ]
        fig.add_tools(HoverTool(tooltips=tooltips))
        self.figure = fig
        self.pane = pn.pane.Bokeh(fig)
        self._pending: list[dict[str, np.ndarray]] = []

    def __panel__(self) -> pn.viewable.Viewable:
        return self.pane

    def add(self, delta: Delta) -> None:
        """Hold the delta's located rows until :meth:`flush`: the points the hub prepared,
        else computed once per delta."""
        if delta.rows_prepared:
            pages = [p["map"] for p in delta.rows_prepared if p["map"] is not None]
        elif not delta.transactions.empty:
            pages = [delta.derived("map_points", lambda: map_points(delta.transactions))]
        else:
            return
        self._pending.extend(p for p in pages if p is not None)
        if len(self._pending) > 1 and sum(len(p["lon"]) for p in self._pending) > MAP_POINTS:
            self._pending = [_joined(self._pending)]  # bounded however long between flushes

    def flush(self) -> None:
        """Stream the points held since the last flush."""
        if self._pending:
            points = self._pending[0] if len(self._pending) == 1 else _joined(self._pending)
            self._pending = []
            self.source.stream(points, rollover=MAP_POINTS)


def _joined(pages: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Points of several pages (oldest first) as one stream, the newest MAP_POINTS."""
    return {key: np.concatenate([page[key] for page in pages])[-MAP_POINTS:] for key in pages[0]}


def _no_points() -> dict[str, np.ndarray]:
    """The map's empty columns, of the types :func:`map_points` streams into them."""
    text = np.array([], dtype=str)
    number = np.array([], dtype=np.float64)
    return {"lon": number, "lat": number, "band": text, "card_id": text, "amount": number}


def map_points(frame: pd.DataFrame) -> dict[str, np.ndarray] | None:
    """The newest :data:`MAP_POINTS` located rows of ``frame`` as map source columns (None:
    no row has a location): float64 numbers, fixed-width ``str`` text (see the module's
    docstring). The amount is a float rounded to cents, for display only."""
    located = frame.dropna(subset=["lat", "lon"]).tail(MAP_POINTS)
    if located.empty:
        return None
    return {
        "lon": located["lon"].to_numpy(dtype=np.float64),
        "lat": located["lat"].to_numpy(dtype=np.float64),
        "band": located["band"].astype(str).to_numpy(dtype=str),
        "card_id": located["card_id"].astype(str).to_numpy(dtype=str),
        "amount": located["amount"].astype(float).round(2).to_numpy(dtype=np.float64),
    }
