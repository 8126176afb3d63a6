"""The live page's two tables: the newest stored transactions and the alert feed (High).

Rows from the hub are gathered per update and streamed at most every
:data:`TABLE_EVERY_S` (Tabulator's ``stream`` costs milliseconds of server CPU each, the
Bokeh sources' microseconds), each table keeping its newest rows (a rollover). A delta's rows
are formatted once for every session given it (:meth:`~workbench.dashboard.hub.Delta.derived`).
Bands are coloured by formatters, never by ``Tabulator.style`` (which recomputes the whole table).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import panel as pn

from workbench.dashboard import clock, safe
from workbench.dashboard.hub import Delta
from workbench.dashboard.parts import read_only_table
from workbench.storage.notify import HighRow

TABLE_ROWS = 200  # live transaction table rollover
FEED_ROWS = 50  # alert feed rollover
# The two tables are streamed at most this often: a Tabulator stream is the largest part of
# a session's update (Panel converts the rows and the table's whole value each time), and
# at a few hundred rows a second no one reads a table that changes faster.
TABLE_EVERY_S = 2.0
TABLE_HEIGHT = 360

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
            "amount": [number(a.amount) for a in alerts],
            "risk_score": [number(a.risk_score) for a in alerts],
            "rules": [", ".join(a.rules) for a in alerts],
            "tx_id": [a.tx_id or "" for a in alerts],
        },
        columns=list(FEED_DTYPES),
    ).astype(FEED_DTYPES)


def number(value: Any) -> float:
    """A payload number (``None``: not known) as a float for display."""
    return math.nan if value is None else float(value)


def _empty(dtypes: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in dtypes.items()})


class LiveTables(pn.viewable.Viewer):
    """The live transaction table and the alert feed, side by side (stacked when narrow).

    ``table`` makes each table (:func:`~workbench.dashboard.parts.read_only_table`'s
    signature; a notebook passes its own); ``clock`` is the throttle's monotonic clock."""

    def __init__(
        self,
        *,
        table: Callable[..., Any] = read_only_table,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._last_flush = -math.inf
        self._pending_rows: list[pd.DataFrame] = []  # table rows, oldest first
        self._pending_alerts: list[pd.DataFrame] = []  # alert-feed rows, oldest first
        newest_first = [{"field": "time", "dir": "desc"}]
        self.table = table(
            table_rows(pd.DataFrame()), "live-transactions", TABLE_HEIGHT, sorters=newest_first
        )
        self.feed = table(feed_rows([]), "alert-feed", TABLE_HEIGHT, sorters=newest_first)
        self.cards = [
            pn.Column(safe.heading("Live transactions"), self.table),
            pn.Column(safe.heading("Alert feed (High)"), self.feed),
        ]

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(*self.cards, sizing_mode="stretch_width")

    def add(self, delta: Delta) -> None:
        """Hold the rows of one delta until the next :meth:`flush`: those the hub prepared
        (:mod:`~workbench.dashboard.live_rows`), else formatted here once per delta."""
        if delta.rows_prepared:
            self._pending_rows.extend(p["table"] for p in delta.rows_prepared)
        elif not delta.transactions.empty:
            self._pending_rows.append(
                delta.derived("table_rows", lambda: table_rows(delta.transactions.tail(TABLE_ROWS)))
            )
        if delta.alerts_prepared:
            self._pending_alerts.extend(delta.alerts_prepared)
        elif delta.alerts:
            self._pending_alerts.append(
                delta.derived("feed_rows", lambda: feed_rows(delta.alerts[-FEED_ROWS:]))
            )

    def flush(self, *, force: bool = False) -> bool:
        """Stream the rows held since the last flush, at most every :data:`TABLE_EVERY_S`
        unless ``force`` (False: not yet). ``force`` only skips the wait: rows already shown
        stay."""
        now = self._clock()
        if not force and now - self._last_flush < TABLE_EVERY_S:
            return False
        for table, pending, rollover in (
            (self.table, self._pending_rows, TABLE_ROWS),
            (self.feed, self._pending_alerts, FEED_ROWS),
        ):
            if pending:
                rows = pending[0] if len(pending) == 1 else pd.concat(pending, ignore_index=True)
                _add_rows(table, rows.tail(rollover).reset_index(drop=True), rollover)
        self._pending_rows, self._pending_alerts = [], []
        self._last_flush = now
        return True


def _add_rows(table: Any, rows: pd.DataFrame, rollover: int) -> None:
    """Stream ``rows`` into ``table`` keeping the newest ``rollover``. The table is given its
    value instead when it is empty (a table whose browser model does not exist yet, the
    session's first update, does not receive streamed rows in Panel 1.9, and an empty one
    has nothing to keep) or when ``rows`` replace every row it shows (a busy pipeline, at
    every flush): the browser gets the same rows, and the server does a third of the work of
    a Tabulator ``stream``, which converts the table's whole value again besides the rows.
    """
    if table.value is None or table.value.empty or len(rows) >= rollover:
        table.value = rows.tail(rollover).reset_index(drop=True)
    else:
        table.stream(rows, rollover=rollover, follow=False)
