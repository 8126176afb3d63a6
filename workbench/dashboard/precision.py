"""Per-rule precision from analyst labels: a small read-only table for the Rules page.

For each rule, over a range of **event time** (the transactions' ``ts``, shown in the display
zone; ranges end at the stream's *now*, the newest stored transaction): how many
transactions it hit carry a current label of the chosen source (``analyst`` by default:
dispositions), how many of those are fraud, and precision = fraud / labelled. The figures
come from one storage query (:func:`workbench.storage.labels.precision`), driven from the
labels to their transactions, so a load costs what the labels in range cost, not the history.

Use::

    view = RulePrecisionView(dsn)          # a pn.viewable.Viewer
    await view.load()                      # or the Refresh button; returns the frame shown
    view.frame                             # rule_id, labelled, fraud, legitimate, precision

Everything shown is plain text in a read-only Tabulator or a ``Str`` pane (rule ids come from
rule files): nothing here renders HTML.
"""

from __future__ import annotations

import asyncio

import pandas as pd
import panel as pn

from workbench.dashboard import clock, safe
from workbench.dashboard.parts import read_only_table, schedule
from workbench.errors import WorkbenchError
from workbench.storage import labels, shared_store

__all__ = ["RANGES", "RulePrecisionView", "precision_rows"]

RANGES = {"last 24 h": pd.Timedelta(days=1), "last 7 days": pd.Timedelta(days=7),
          "last 30 days": pd.Timedelta(days=30), "all": None}  # fmt: skip
"""Range label -> how far back from the stream's now (None: everything)."""
COLUMNS = ["rule_id", "labelled", "fraud", "legitimate", "precision"]


class RulePrecisionView(pn.viewable.Viewer):
    """Range and source selectors, Refresh, and the per-rule precision table."""

    def __init__(self, dsn: str, *, label_source: str = labels.ANALYST, **params) -> None:
        super().__init__(**params)
        self.dsn = dsn
        self.label_source = label_source
        self.loaded = False
        self.frame = pd.DataFrame(columns=COLUMNS)
        self.range = pn.widgets.Select(
            label="Event time", options=list(RANGES), value="last 7 days", width=160
        )
        self.refresh = pn.widgets.Button(label="Refresh", width=100)
        self.refresh.on_click(lambda _e: schedule(self.load))
        self.message = safe.preformatted(css_classes=["precision-message"])
        self.table = read_only_table(precision_rows(self.frame), "precision-table", 260)
        self.layout = pn.Column(
            safe.heading(f"Rule precision from {label_source} labels", 4),
            pn.FlexBox(self.range, self.refresh),
            self.message,
            self.table,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self.layout

    async def load(self) -> pd.DataFrame | None:
        """Read and show the table for the selected range; None when the read failed."""
        back = RANGES[self.range.value]
        try:
            frame, start, end = await asyncio.to_thread(self._read, back)
        except WorkbenchError as exc:
            safe.show_text(self.message, f"Cannot read rule precision: {exc}")
            return None
        self.loaded = True
        self.frame = frame
        span = "all stored event time" if start is None else (
            f"event time {clock.stamp(start, clock.MINUTES)} .. "
            f"{clock.stamp(end, clock.MINUTES)} {clock.zone().key}")  # fmt: skip
        labelled = int(frame["labelled"].sum()) if len(frame) else 0
        with pn.io.hold():
            self.table.value = precision_rows(frame)
            safe.show_text(
                self.message,
                f"{len(frame)} rule(s) with labelled hits ({labelled:,} labelled hits), {span}",
            )
        return frame

    def _read(self, back: pd.Timedelta | None):
        store = shared_store(self.dsn)
        start = end = None
        if back is not None:
            now = labels.stream_now(store)
            if now is not None:
                end = now + pd.Timedelta(microseconds=1)
                start = now - back
        frame = labels.precision(store, start, end, label_source=self.label_source)
        return frame, start, end


def precision_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The table as shown: counts as integers, precision as a percentage text."""
    if frame.empty:
        return pd.DataFrame({c: pd.Series([], dtype="str") for c in COLUMNS})
    out = frame[COLUMNS].copy()
    out["precision"] = (out["precision"] * 100).round(1).astype("str") + " %"
    return out.reset_index(drop=True)
