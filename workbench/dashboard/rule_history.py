"""The rule editor's history panel: ``rule_sets`` rows, a diff between two, the rollback choice.

The table lists the newest :data:`HISTORY_ROWS` rows (accepted and rejected); two of them give
a unified diff per file, shown as plain text (a ``<pre>``: a Markdown fence would let a rule
file's line of three backticks end it and render the rest as Markdown/HTML). The accepted
versions fill the rollback selector; the rollback itself (diff, then confirm) is the
publication panel's (:mod:`workbench.dashboard.publish_panel`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd
import panel as pn

from workbench.dashboard import clock, safe
from workbench.dashboard.parts import read_only_table
from workbench.dashboard.publishing import unified_diff
from workbench.dashboard.rule_text import banner
from workbench.errors import WorkbenchError
from workbench.rules.limits import clip
from workbench.storage import shared_store

__all__ = ["HISTORY_COLUMNS", "HISTORY_ROWS", "RuleHistory"]

HISTORY_ROWS = 100
HISTORY_COLUMNS = ["id", "version", "created_at", "author", "status", "error"]


class RuleHistory(pn.viewable.Viewer):
    """Rule-set history, diff and the rollback selector, for one session."""

    def __init__(self, dsn: str, *, can_publish: bool) -> None:
        super().__init__()
        self.dsn = dsn
        self.frame = pd.DataFrame(columns=[*HISTORY_COLUMNS, "files"])
        self.diff_text = ""
        self.table = read_only_table(
            pd.DataFrame(columns=HISTORY_COLUMNS),
            "editor-history",
            260,
            times={"created_at": f"created, {clock.WALL}"},
        )
        self.diff_from = pn.widgets.Select(label="From", options={}, width=330)
        self.diff_to = pn.widgets.Select(label="To", options={}, width=330)
        self.diff_button = pn.widgets.Button(label="Diff", width=90)
        self.diff_button.on_click(lambda _e: self.show_diff())
        self.diff = safe.preformatted(css_classes=["editor-diff"], sizing_mode="stretch_width")
        self.rollback_to = pn.widgets.Select(label="Accepted version", options=[], width=330)
        self.rollback_button = pn.widgets.Button(
            label="Roll back to it…", color="warning", width=140, disabled=not can_publish
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            safe.heading("Rule-set history"),
            self.table,
            pn.FlexBox(self.diff_from, self.diff_to, self.diff_button),
            self.diff,
            pn.FlexBox(self.rollback_to, self.rollback_button),
            sizing_mode="stretch_width",
        )

    async def load(self) -> str | None:
        """Read the history and show it; the error banner text when it cannot be read."""
        try:
            frame = await asyncio.to_thread(self._read)
        except WorkbenchError as exc:
            return banner(exc)
        self.frame = frame
        options = {_label(row): int(row["id"]) for _, row in frame.iterrows()}
        accepted = list(dict.fromkeys(frame.loc[frame["status"] == "accepted", "version"]))
        with pn.io.hold():
            self.table.value = _history_rows(frame)
            self.diff_from.options = options
            self.diff_to.options = options
            if len(frame):
                ids = list(options.values())
                self.diff_to.value = ids[0]
                self.diff_from.value = ids[1] if len(ids) > 1 else ids[0]
            self.rollback_to.options = accepted
            if accepted:
                self.rollback_to.value = accepted[1] if len(accepted) > 1 else accepted[0]
        return None

    def show_diff(self, from_id: int | None = None, to_id: int | None = None) -> str:
        """Unified diff per file between two ``rule_sets`` rows (default: the selected)."""
        a = self._row(from_id if from_id is not None else self.diff_from.value)
        b = self._row(to_id if to_id is not None else self.diff_to.value)
        if a is None or b is None:
            return ""
        self.diff_text = unified_diff(
            a["files"] or {},
            b["files"] or {},
            f"#{a['id']} {a['version']}",
            f"#{b['id']} {b['version']}",
        )
        safe.show_text(self.diff, self.diff_text or "The two versions are identical.")
        return self.diff_text

    def _row(self, row_id) -> dict[str, Any] | None:
        if row_id is None:
            return None
        found = self.frame[self.frame["id"] == int(row_id)]
        return None if found.empty else found.iloc[0].to_dict()

    def _read(self) -> pd.DataFrame:
        return shared_store(self.dsn).rule_sets.history(limit=HISTORY_ROWS)


def _history_rows(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    out = frame[HISTORY_COLUMNS].copy()
    out["created_at"] = clock.stamp(out["created_at"])
    out["error"] = out["error"].fillna("").astype(str).str.split("\n").str[0].map(clip)
    return out.reset_index(drop=True)


def _label(row: pd.Series) -> str:
    when = clock.stamp(row["created_at"], "%m-%d %H:%M:%S")
    return f"#{row['id']} {row['version']} ({row['status']}, {when}, {row['author']})"
