"""The rule editor's text: the files of the rule set being edited, the edits, and the checks.

One file is on screen at a time (a YAML code editor); edits to several files are kept while
switching between them, and :meth:`RuleText.candidate` is the active files with every edit
merged in. :func:`parse_candidate` runs every load-time check
(:func:`~workbench.rules.parse_rules`); :meth:`RuleText.show_errors` lists each problem with
file, line, column and rule id and marks it in the editor at its line, and a click on an
error row moves the cursor there (its file first, when another).
"""

from __future__ import annotations

import pandas as pd
import panel as pn

from workbench.dashboard.goto_line import GotoLine
from workbench.dashboard.parts import read_only_table
from workbench.errors import RuleError, RuleSetError
from workbench.rules import RuleSet, parse_rules
from workbench.rules.limits import clip

__all__ = ["ERROR_COLUMNS", "RuleText", "banner", "parse_candidate", "problems"]

ERROR_COLUMNS = ["file", "line", "col", "rule_id", "message"]


class RuleText(pn.viewable.Viewer):
    """The file selector, the code editor and its error table, for one session."""

    def __init__(self, *, readonly: bool) -> None:
        super().__init__()
        self.version: str | None = None  # the active version the editor started from
        self.files: dict[str, str] = {}  # its files (display name -> text)
        self.edits: dict[str, str] = {}  # edited texts, by display name
        self.errors: list[RuleError] = []
        self.file = pn.widgets.Select(label="Rule file", options=[], width=260)
        self.file.param.watch(self._on_file, "value")
        self.editor = pn.widgets.CodeEditor(
            value="",
            language="yaml",
            theme="chrome",
            height=460,
            sizing_mode="stretch_width",
            css_classes=["rule-editor"],
            readonly=readonly,
        )
        # a click on an error row moves the editor's cursor to its line (and file)
        self.error_table = read_only_table(
            pd.DataFrame(columns=ERROR_COLUMNS), "editor-errors", 160, selectable=1
        )
        self.goto = GotoLine()
        self.error_table.param.watch(self._on_error_row, "selection")

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.editor, self.goto, self.error_table, sizing_mode="stretch_width")

    def candidate(self) -> dict[str, str]:
        """The active files with every edit merged in (the current file's text included)."""
        if self.file.value:
            self._keep_edit()
        return {**self.files, **self.edits}

    def with_text(self, text: str) -> dict[str, str]:
        """The candidate if the file on screen held ``text`` (switching files changes none)."""
        return {**self.files, **self.edits, self.file.value: text}

    def show(self, version: str | None, files: dict[str, str]) -> None:
        """Start editing ``files`` (version ``version``): unsaved edits are dropped."""
        self.version, self.files, self.edits = version, files, {}
        names = sorted(files)
        self.show_errors([])
        current = self.file.value if self.file.value in files else names[0] if names else None
        self.file.options = names
        self.file.value = current
        self.editor.value = files.get(current, "") if current else ""

    def saved(self, name: str, text: str, version: str) -> None:
        """File ``name`` now holds ``text`` in the active version ``version``."""
        self.files[name] = text
        self.edits.pop(name, None)
        self.version = version

    def show_errors(self, errors: list[RuleError]) -> None:
        self.errors = errors
        self.error_table.value = pd.DataFrame(
            [
                {
                    "file": e.file or "",
                    "line": e.line,
                    "col": e.col,
                    "rule_id": e.rule_id or "",
                    "message": clip(
                        e.message + (f" — did you mean '{e.suggestion}'?" if e.suggestion else "")
                    ),
                }
                for e in errors
            ],
            columns=ERROR_COLUMNS,
        )
        self._annotate()

    def _keep_edit(self) -> None:
        name = self.file.value
        if name and self.editor.value != self.files.get(name):
            self.edits[name] = self.editor.value
        elif name:
            self.edits.pop(name, None)

    def _on_file(self, event) -> None:
        if event.old:
            text = self.editor.value
            if text != self.files.get(event.old):
                self.edits[event.old] = text
        self.editor.value = self.edits.get(event.new, self.files.get(event.new, ""))
        self._annotate()

    def _annotate(self) -> None:
        """Errors of the file on screen as editor annotations at their line (0-based rows)."""
        self.editor.annotations = [
            {
                "row": max(e.line - 1, 0),
                "column": max((e.col or 1) - 1, 0),
                "text": clip((f"rule {e.rule_id}: " if e.rule_id else "") + e.message),
                "type": "error",
            }
            for e in self.errors
            if e.file == self.file.value and e.line is not None
        ]

    def _on_error_row(self, event) -> None:
        """Jump to the clicked error: its file first (when another), then its line."""
        if not event.new or event.new[0] >= len(self.errors):
            return
        error = self.errors[event.new[0]]
        if error.file and error.file != self.file.value and error.file in self.file.options:
            self.file.value = error.file
        if error.line:
            self.goto.go(error.line, error.col)


def parse_candidate(texts: dict[str, str]) -> tuple[RuleSet | None, list[RuleError]]:
    """The rule set ``texts`` make, or None and every problem found."""
    try:
        return parse_rules(texts), []
    except (RuleError, RuleSetError) as exc:
        return None, problems(exc)


def problems(exc: RuleError) -> list[RuleError]:
    return list(exc.errors) if isinstance(exc, RuleSetError) else [exc]


def banner(exc: BaseException) -> str:
    """An error as a banner shows it: its first line, bounded, and how many more there are
    (the error table lists a rule set's problems; a banner never holds a file's content)."""
    lines = str(exc).splitlines() or [type(exc).__name__]
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    return clip(lines[0]) + more
