"""The rule editor's what-if panel: the active rules against the edited ones, side by side.

The last N stored transactions (or a time range) are scored with the active rule set and
with the candidate by :func:`~workbench.scoring.whatif.what_if` — the stream's feature and
scoring code, with older rows filling the feature windows first — and with the maintained
lists and snoozes in force, read as a worker reads them (the database's entries and unlifted
snoozes, and the files of ``<rules dir>/lists``:
:func:`~workbench.pipeline.lists.build_overlay`); a snooze hides its rule's hits on its entity
for the transactions before its end (event time). Shown: band migration, volume and quality,
hits per rule and the transactions whose band changed. Once the rules are edited again the
tables are greyed out and marked stale.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import panel as pn

from workbench.dashboard import clock, safe
from workbench.dashboard.parts import read_only_table
from workbench.errors import ConfigError
from workbench.pipeline.lists import LISTS_DIR, build_overlay
from workbench.rules import RuleSet, parse_rules
from workbench.scoring.whatif import WhatIf, what_if
from workbench.storage import shared_store

__all__ = ["DEFAULT_ROWS", "LAST_N", "MAX_ROWS", "RANGE", "WhatIfPanel"]

DEFAULT_ROWS = 20_000
MAX_ROWS = 1_000_000
WARMUP_ROWS = 20_000  # older rows that fill the feature windows before the last-N rows
WARMUP_S = 86_400.0  # ... and the event time before a chosen range
LAST_N, RANGE = "Last N transactions", "Time range"


class WhatIfPanel(pn.viewable.Viewer):
    """What the candidate would change, over the stored transactions chosen, for one session."""

    def __init__(self, dsn: str, rules_dir: Path) -> None:
        super().__init__()
        self.dsn = dsn
        self.rules_dir = rules_dir
        self.result: WhatIf | None = None
        self.texts: dict[str, str] | None = None  # the candidate the what-if scored
        self.mode = pn.widgets.RadioButtonGroup(options=[LAST_N, RANGE], value=LAST_N)
        self.rows = pn.widgets.IntInput(
            label="N", value=DEFAULT_ROWS, start=1, end=MAX_ROWS, step=1000, width=140
        )
        self.start = pn.widgets.DatetimeInput(label=f"From, {clock.label()}", width=200)
        self.end = pn.widgets.DatetimeInput(label=f"To, {clock.label()}", width=200)
        self.message = safe.pane(css_classes=["whatif-message"])
        self.migration = read_only_table(pd.DataFrame(), "whatif-migration", 140)
        self.summary = read_only_table(pd.DataFrame(), "whatif-summary", 110)
        self.rule_table = read_only_table(pd.DataFrame(), "whatif-rules", 260)
        self.changed = read_only_table(pd.DataFrame(), "whatif-changed", 260)

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            safe.heading("What-if: active rules → edited rules"),
            pn.FlexBox(self.mode, self.rows, self.start, self.end),
            self.message,
            pn.FlexBox(
                pn.Column(
                    safe.heading("Band migration (rows: before, columns: after)", 4),
                    self.migration,
                ),
                pn.Column(safe.heading("Volume and quality", 4), self.summary),
            ),
            safe.heading("Hits per rule", 4),
            self.rule_table,
            safe.heading("Transactions whose band changed (largest score change first)", 4),
            self.changed,
            sizing_mode="stretch_width",
        )

    def compute(self, active_files: dict[str, str], candidate: RuleSet) -> WhatIf | None:
        """The what-if of ``candidate`` against the rule set of ``active_files`` over the
        chosen stored transactions (None when there are none). Worker thread."""
        active = parse_rules(active_files)
        store = shared_store(self.dsn)
        if self.mode.value == LAST_N:
            n = max(1, min(int(self.rows.value or DEFAULT_ROWS), MAX_ROWS))
            rows = store.transactions.recent_batch(limit=n + WARMUP_ROWS)
            warmup, history = rows.iloc[: max(len(rows) - n, 0)], rows.iloc[-n:]
        else:
            if self.start.value is None or self.end.value is None:
                raise ConfigError("choose a time range (From and To)")
            start, end = _utc(self.start.value), _utc(self.end.value)
            history = store.transactions.load(start, end)
            warmup = store.transactions.load(start - timedelta(seconds=WARMUP_S), start)
        if history.empty:
            return None
        with store.raw() as conn:
            overlay = build_overlay(conn, self.rules_dir / LISTS_DIR)
        return what_if(active, candidate, history, warmup=warmup, overlay=overlay)

    def say(self, message: safe.Html) -> None:
        safe.show(self.message, message)

    def show(self, result: WhatIf, texts: dict[str, str]) -> None:
        """Show ``result``, the what-if of the candidate ``texts``."""
        self.result, self.texts = result, texts
        s = result.summary
        with pn.io.hold():
            self.changed.value = result.changed
            for table in self._tables():
                table.styles = {"opacity": "1"}
            self.migration.value = result.migration.reset_index()
            self.summary.value = s.round(4).reset_index(names="rules")
            self.rule_table.value = result.rules.round(4).reset_index()
            safe.show(
                self.message,
                safe.text(
                    f"{result.rows:,} transactions re-scored. Alerts "
                    f"{int(s.loc['before', 'alerts']):,} → {int(s.loc['after', 'alerts']):,} "
                    f"({result.alert_change:+,}); High {int(s.loc['before', 'high']):,} → "
                    f"{int(s.loc['after', 'high']):,}; precision "
                    f"{_pct(s.loc['before', 'precision'])} → {_pct(s.loc['after', 'precision'])}, "
                    f"recall {_pct(s.loc['before', 'recall'])} → {_pct(s.loc['after', 'recall'])}. "
                    f"{result.changed_total:,} changed band"
                    + (f" ({len(result.changed):,} listed)." if result.changed_total else ".")
                ),
            )

    def mark_stale(self, texts: dict[str, str]) -> None:
        """The what-if shown scored other rules once the candidate (now ``texts``) differs:
        say so and grey its tables out."""
        if self.texts is None or texts == self.texts:
            return
        self.texts = None
        with pn.io.hold():
            for table in self._tables():
                table.styles = {"opacity": "0.4"}
            safe.show(
                self.message,
                safe.html(
                    "<b>Stale:</b> the rules changed since this what-if ran; press What-if "
                    "to score the edited rules."
                ),
            )

    def _tables(self) -> tuple[pn.widgets.Tabulator, ...]:
        return (self.migration, self.summary, self.rule_table, self.changed)


def _pct(value: float) -> str:
    return "—" if pd.isna(value) else f"{100 * float(value):.1f} %"


def _utc(value: datetime) -> datetime:
    """A From/To input's value (the display zone's wall time) as UTC."""
    return clock.from_input(value)
