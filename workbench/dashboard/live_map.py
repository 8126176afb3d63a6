"""The live page's map: where the newest transactions were made, coloured by band.

A scatter of longitude/latitude fed by ``ColumnDataSource.stream`` with a rollover of
:data:`MAP_POINTS`, streamed with the live tables (at most every
:data:`~workbench.dashboard.live_tables.TABLE_EVERY_S`: its hundreds of points are the
largest part of an update sent to the browser); transactions without a location are not
drawn. A delta's points are
computed once for every session given it (:meth:`~workbench.dashboard.hub.Delta.derived`).
"""

from __future__ import annotations

import math

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, HoverTool

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
        self.source = ColumnDataSource(
            {"lon": [], "lat": [], "color": [], "band": [], "card_id": [], "amount": []}
        )
        fig = live_figure(
            "Recent transactions (colour: band)",
            height=MAP_HEIGHT,
            x_axis_label="longitude",
            y_axis_label="latitude",
            match_aspect=True,
            tools="pan,wheel_zoom,reset",
            toolbar_location="right",
        )
        fig.scatter("lon", "lat", color="color", size=6, alpha=0.7, source=self.source)
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
        self._pending: list[dict[str, list]] = []

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


def _joined(pages: list[dict[str, list]]) -> dict[str, list]:
    """Points of several pages (oldest first) as one stream, the newest MAP_POINTS."""
    return {key: [v for page in pages for v in page[key]][-MAP_POINTS:] for key in pages[0]}


def map_points(frame: pd.DataFrame) -> dict[str, list] | None:
    """The newest :data:`MAP_POINTS` located rows of ``frame`` as map source columns (None:
    no row has a location)."""
    located = frame.dropna(subset=["lat", "lon"]).tail(MAP_POINTS)
    if located.empty:
        return None
    return {
        "lon": located["lon"].tolist(),
        "lat": located["lat"].tolist(),
        "color": located["band"].astype(str).map(BAND_COLORS).fillna(ACCENT).tolist(),
        "band": located["band"].astype(str).tolist(),
        "card_id": located["card_id"].astype(str).tolist(),
        "amount": located["amount"].round(2).tolist(),
    }
