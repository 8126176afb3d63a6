"""The live page of one browser session: KPIs, trends, live table, alert feed, map, health.

:class:`LiveView` composes the page's parts, each a module of its own:

- :mod:`~workbench.dashboard.live_kpis`    the KPI row;
- :mod:`~workbench.dashboard.live_charts`  score and band trends, band distribution, rule hits;
- :mod:`~workbench.dashboard.live_map`     where the newest transactions were made;
- :mod:`~workbench.dashboard.live_tables`  the live transaction table and the alert feed;
- :mod:`~workbench.dashboard.live_health`  the status line and the pipeline-health panel;
- :mod:`~workbench.dashboard.live_toasts`  High-risk toasts and their per-session mute.

The parts own their widgets and Bokeh sources (never shared between sessions) and change them
only in :meth:`LiveView.update`, from a hub :class:`~workbench.dashboard.hub.Delta`. Every
streaming view has a rollover, so a session open for days holds a bounded amount.

Cards sit side by side on a wide screen and wrap, one per line, on a narrow one: each has a
minimum width (:data:`CARD_MIN_WIDTH`) and stretches to its share of the line, so a 390 px
phone shows every chart at the full width of the screen and the page never scrolls sideways.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import panel as pn

from workbench.dashboard import safe
from workbench.dashboard.hub import Delta
from workbench.dashboard.live_charts import BandChart, RuleHits, Trends
from workbench.dashboard.live_health import (
    STALLED_AFTER_S,
    STATUS_EVERY_S,
    HealthPanel,
    StatusLine,
    status_html,
)
from workbench.dashboard.live_kpis import KpiRow
from workbench.dashboard.live_map import MAP_POINTS, TransactionMap
from workbench.dashboard.live_tables import (
    FEED_ROWS,
    TABLE_DTYPES,
    TABLE_EVERY_S,
    TABLE_ROWS,
    LiveTables,
    feed_rows,
    table_rows,
)
from workbench.dashboard.live_toasts import TOAST_EVERY_S, Toasts
from workbench.dashboard.parts import read_only_table

__all__ = [
    "CARD_MIN_WIDTH",
    "FEED_ROWS",
    "MAP_POINTS",
    "RULES_EVERY_S",
    "STALLED_AFTER_S",
    "STATUS_EVERY_S",
    "TABLE_DTYPES",
    "TABLE_EVERY_S",
    "TABLE_ROWS",
    "TOAST_EVERY_S",
    "LiveView",
    "feed_rows",
    "status_html",
    "table_rows",
]

RULES_EVERY_S = 5.0  # the hits-per-rule chart is redrawn at most this often
CARD_MIN_WIDTH = 420  # two of these do not fit 720 px: a tablet or phone shows one per line

# Panel's Row is a CSS flex row that never wraps: this stylesheet wraps it. (A Panel FlexBox,
# which wraps, drew its Bokeh figures blank in the full app.)
_MIN = f"min({CARD_MIN_WIDTH}px, 100%)"
_WRAP = ":host { flex-wrap: wrap !important; row-gap: 8px; }"


class LiveView(pn.viewable.Viewer):
    """The live page of one session. ``notify`` shows a toast (None: no toasts); it is given
    :class:`~workbench.dashboard.safe.Html` (card ids and rule ids escaped). ``table`` makes
    the two tables (``read_only_table``'s signature; a notebook passes its own); ``clock``
    (monotonic seconds) paces the throttled parts: tables, rule chart, toasts."""

    def __init__(
        self,
        notify: Callable[[safe.Html], None] | None = None,
        *,
        table: Callable[..., Any] = read_only_table,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._last_rules = -math.inf
        self._last_status = -math.inf
        self._health_key: tuple = ()
        self.updates = 0
        self.status = StatusLine()
        self.toasts = Toasts(notify, clock=clock)
        self.kpis = KpiRow()
        self.trends = Trends()
        self.bands = BandChart()
        self.rules = RuleHits()
        self.map = TransactionMap()
        self.health = HealthPanel()
        self.tables = LiveTables(table=table, clock=clock)
        self.panel = self._layout()

    def __panel__(self) -> pn.viewable.Viewable:
        return self.panel

    def update(self, delta: Delta, *, first: bool = False, toasts: bool = True) -> None:
        """Apply one delta; ``first``: the session's first, whose alerts are history;
        ``toasts=False``: its alerts were toasted already (a page catching up)."""
        if delta.seconds:
            self.trends.stream(delta.seconds)
        self.map.add(delta)
        self.tables.add(delta)
        if toasts and not first:
            self.toasts.add(delta.alerts)
        self.flush_tables(force=first)
        self.bands.update(delta.bands)
        now = self._clock()
        if first or now - self._last_rules >= RULES_EVERY_S:  # a 5-minute rate moves slowly
            self.rules.update(delta.rule_rates)
            self._last_rules = now
        # The health panel and the status line change by the second (ages, worker rows):
        # redrawn once a second, or at once when the database or the rules change.
        stale = now - self._last_status >= STATUS_EVERY_S
        if first or stale or _health_key(delta) != self._health_key:
            self.update_status(delta)
        else:
            self.kpis.update(delta.kpis)
        self.updates += 1

    def update_status(self, delta: Delta) -> None:
        """The KPIs, the health panel and the live/stalled status: called by every update and,
        while no batch arrives, every :data:`STATUS_EVERY_S` by the session, so a stopped
        worker's rate decays to 0 and its status turns "stalled" within seconds."""
        self.kpis.update(delta.kpis)
        self.health.update(delta)
        self.status.update(delta)
        self._health_key = _health_key(delta)
        self._last_status = self._clock()

    def flush_tables(self, *, force: bool = False) -> None:
        """Stream the table rows and map points held back by the throttle (see
        :meth:`~workbench.dashboard.live_tables.LiveTables.flush`)."""
        if self.tables.flush(force=force):
            self.map.flush()

    def _layout(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.FlexBox(self.status, self.toasts, align_items="center"),
            self.kpis,
            _cards(*self.trends.panes),
            _cards(self.bands.pane, self.rules.pane, self.health.card),
            _cards(*self.tables.cards),
            _cards(self.map.pane),
            sizing_mode="stretch_width",
        )


def _health_key(delta: Delta) -> tuple:
    """What of the health is shown at once when it changes."""
    h = delta.health
    return h.database, h.rule_set_version, h.reload_status, h.reload_version, h.reload_error


def _cards(*cards: pn.viewable.Viewable) -> pn.Row:
    """Cards side by side, each stretching to its share of the width and at least
    :data:`CARD_MIN_WIDTH` wide (or the width of the screen, if narrower): those that do not
    fit wrap onto the next line."""
    for card in cards:
        card.param.update(
            sizing_mode="stretch_width",
            styles={
                "flex": f"1 1 {CARD_MIN_WIDTH}px",
                "min-width": _MIN,
            },
        )
    return pn.Row(*cards, sizing_mode="stretch_width", stylesheets=[_WRAP])
