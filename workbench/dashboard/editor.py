"""The rule editor page of one session: edit, validate, what-if, apply; history, diff, rollback.

- **Edit** one file of the active rule set at a time (a YAML code editor; edits to several
  files are kept while switching between them).
- **Validate** parses the candidate — the active files with the edits merged in — with every
  load-time check (:func:`~workbench.rules.parse_rules`); each problem is listed with file,
  line, column and rule id and marked in the editor at its line.
- **What-if** scores the last N stored transactions (or a time range) with the active rule
  set and with the candidate, using the stream's code
  (:func:`~workbench.scoring.whatif.what_if`): band migration, hits per rule, alert volume,
  precision/recall against the labels.
- **Apply** (unless the ``editor_apply`` setting is false) writes the file into the rules
  directory atomically (temporary file + ``os.replace``) after the same checks and dry run as
  the workers' watcher, and records the accepted version in ``rule_sets`` with the editor's
  user as author. The row is written and the file replaced under the publication lock
  (:func:`~workbench.storage.rule_sets.publish`), so a worker's watcher that sees the
  new file finds the version recorded already and adds nothing: the author stays the editor's.
  Until the workbench has authentication the user is the dashboard process's OS user, or
  ``anonymous``.
- **History** lists ``rule_sets``; two versions give a unified diff per file; Rollback makes
  an earlier accepted version active again (:func:`~workbench.pipeline.reload.rollback`).

Database work and rule compilation run in worker threads (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import panel as pn

from workbench.dashboard import safe
from workbench.dashboard.parts import read_only_table, schedule
from workbench.errors import ConfigError, RuleError, RuleSetError, WorkbenchError
from workbench.pipeline.reload import author_name, dry_run, read_directory, rollback
from workbench.rules import RuleSet, parse_rules
from workbench.rules.limits import clip
from workbench.scoring.whatif import WhatIf, what_if
from workbench.storage import rule_sets, shared_store

DEFAULT_ROWS = 20_000
MAX_ROWS = 1_000_000
WARMUP_ROWS = 20_000  # older rows that fill the feature windows before the last-N rows
WARMUP_S = 86_400.0  # ... and the event time before a chosen range
HISTORY_ROWS = 100
ERROR_COLUMNS = ["file", "line", "col", "rule_id", "message"]
HISTORY_COLUMNS = ["id", "version", "created_at", "author", "status", "error"]
LAST_N, RANGE = "Last N transactions", "Time range"
_SETTING = safe.html("<code>WORKBENCH_EDITOR_APPLY</code>")


class EditorView:
    """Editor, checks, what-if, apply and rule-set history for one session."""

    def __init__(
        self,
        dsn: str,
        rules_dir: str | Path,
        *,
        apply_enabled: bool = True,
        user: str | None = None,
    ) -> None:
        self.dsn = dsn
        self.rules_dir = Path(rules_dir)
        self.apply_enabled = apply_enabled
        self.author = user or pn.state.user or author_name()
        self.version: str | None = None  # the active version the editor started from
        self.files: dict[str, str] = {}  # its files (display name -> text)
        self.edits: dict[str, str] = {}  # edited texts, by display name
        self.errors: list[RuleError] = []
        self.result: WhatIf | None = None
        self.history_frame = pd.DataFrame(columns=[*HISTORY_COLUMNS, "files"])
        self.diff_text = ""
        self.loaded = False

        self.file = pn.widgets.Select(label="Rule file", options=[], width=260)
        self.file.param.watch(self._on_file, "value")
        self.editor = pn.widgets.CodeEditor(
            value="",
            language="yaml",
            theme="chrome",
            height=460,
            sizing_mode="stretch_width",
            css_classes=["rule-editor"],
        )
        self.validate_button = pn.widgets.Button(label="Validate", color="primary", width=110)
        self.whatif_button = pn.widgets.Button(label="What-if", width=110)
        self.apply_button = pn.widgets.Button(
            label="Apply", color="danger", width=110, disabled=not apply_enabled
        )
        self.revert_button = pn.widgets.Button(label="Reload active", color="light", width=130)
        self.validate_button.on_click(lambda _e: schedule(self.validate))
        self.whatif_button.on_click(lambda _e: schedule(self.run_what_if))
        self.apply_button.on_click(lambda _e: schedule(self.apply))
        self.revert_button.on_click(lambda _e: schedule(self.load))
        self.message = safe.pane(css_classes=["editor-message"])
        self.error_table = read_only_table(
            pd.DataFrame(columns=ERROR_COLUMNS), "editor-errors", 160
        )

        self.mode = pn.widgets.RadioButtonGroup(options=[LAST_N, RANGE], value=LAST_N)
        self.rows = pn.widgets.IntInput(
            label="N", value=DEFAULT_ROWS, start=1, end=MAX_ROWS, step=1000, width=140
        )
        self.start = pn.widgets.DatetimeInput(label="From (UTC)", width=200)
        self.end = pn.widgets.DatetimeInput(label="To (UTC)", width=200)
        self.whatif_message = safe.pane(css_classes=["whatif-message"])
        self.migration = read_only_table(pd.DataFrame(), "whatif-migration", 140)
        self.summary = read_only_table(pd.DataFrame(), "whatif-summary", 110)
        self.rule_table = read_only_table(pd.DataFrame(), "whatif-rules", 260)

        self.history_table = read_only_table(
            pd.DataFrame(columns=HISTORY_COLUMNS), "editor-history", 260
        )
        self.diff_from = pn.widgets.Select(label="From", options={}, width=330)
        self.diff_to = pn.widgets.Select(label="To", options={}, width=330)
        self.diff_button = pn.widgets.Button(label="Diff", width=90)
        self.diff_button.on_click(lambda _e: self.show_diff())
        # the diff is text shown as is (a <pre>): a Markdown fence would let a rule file's
        # line of three backticks end it and render the rest as Markdown/HTML
        self.diff = safe.preformatted(css_classes=["editor-diff"], sizing_mode="stretch_width")
        self.rollback_to = pn.widgets.Select(label="Accepted version", options=[], width=330)
        self.rollback_button = pn.widgets.Button(
            label="Roll back to it", color="warning", width=140, disabled=not apply_enabled
        )
        self.rollback_button.on_click(lambda _e: schedule(self._rollback_selected))
        note = (
            safe.html("Changes are recorded as <b>{}</b>.", self.author)
            if apply_enabled
            else safe.html("Apply and rollback are disabled here (setting {}).", _SETTING)
        )
        self.panel = pn.Column(
            pn.Row(
                self.file,
                self.validate_button,
                self.whatif_button,
                self.apply_button,
                self.revert_button,
            ),
            safe.pane(note, css_classes=["editor-note"]),
            self.message,
            self.editor,
            self.error_table,
            safe.heading("What-if: active rules → edited rules"),
            pn.Row(self.mode, self.rows, self.start, self.end),
            self.whatif_message,
            pn.Row(
                pn.Column(
                    safe.heading("Band migration (rows: before, columns: after)", 4),
                    self.migration,
                ),
                pn.Column(safe.heading("Volume and quality", 4), self.summary),
            ),
            safe.heading("Hits per rule", 4),
            self.rule_table,
            safe.heading("Rule-set history"),
            self.history_table,
            pn.Row(self.diff_from, self.diff_to, self.diff_button),
            self.diff,
            pn.Row(self.rollback_to, self.rollback_button),
            sizing_mode="stretch_width",
        )

    # -- the candidate ------------------------------------------------------------------

    def candidate(self) -> dict[str, str]:
        """The active files with every edit merged in (the current file's text included)."""
        if self.file.value:
            self._keep_edit()
        return {**self.files, **self.edits}

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

    # -- actions ------------------------------------------------------------------------

    async def load(self) -> None:
        """Load the active rule set (or the rules directory, when none was accepted yet)
        and the history; drops unsaved edits."""
        try:
            version, files = await asyncio.to_thread(self._read_active)
        except WorkbenchError as exc:
            safe.show(self.message, safe.html("<b>Cannot load the rules:</b> {}", banner(exc)))
            return
        self.version, self.files, self.edits = version, files, {}
        names = sorted(files)
        with pn.io.hold():
            self._show_errors([])
            current = self.file.value if self.file.value in files else names[0] if names else None
            self.file.options = names
            self.file.value = current
            self.editor.value = files.get(current, "") if current else ""
            safe.show(
                self.message,
                safe.html("Editing active version <code>{}</code>.", version)
                if version
                else safe.html("Editing the rules directory."),
            )
        self.loaded = True
        await self.load_history()

    async def validate(self) -> RuleSet | None:
        """Check the candidate; errors listed and marked in the editor. The rule set or None."""
        texts = self.candidate()
        ruleset, errors = await asyncio.to_thread(_parse, texts)
        with pn.io.hold():  # the verdict and its error lines reach the browser together
            self._show_errors(errors)
            if ruleset is not None:
                verdict = safe.html(
                    "Valid: version <code>{}</code>, {} rules ({} enabled).",
                    ruleset.version,
                    len(ruleset.rules),
                    len(ruleset.enabled_rules),
                )
            else:
                verdict = safe.html(
                    "<b>Refused:</b> {} problem(s); the rules are unchanged.", len(errors)
                )
            safe.show(self.message, verdict)
        return ruleset

    async def run_what_if(self) -> WhatIf | None:
        """The candidate against the active rules over the chosen stored transactions."""
        candidate = await self.validate()
        if candidate is None:
            return None
        safe.show(self.whatif_message, safe.html("Scoring…"))
        try:
            result = await asyncio.to_thread(self._what_if, candidate)
        except WorkbenchError as exc:
            safe.show(self.whatif_message, safe.html("<b>What-if failed:</b> {}", banner(exc)))
            return None
        if result is None:
            safe.show(self.whatif_message, safe.html("No stored transactions in that selection."))
            return None
        self.result = result
        s = result.summary
        with pn.io.hold():
            self.migration.value = result.migration.reset_index()
            self.summary.value = s.round(4).reset_index(names="rules")
            self.rule_table.value = result.rules.round(4).reset_index()
            safe.show(
                self.whatif_message,
                safe.text(
                    f"{result.rows:,} transactions re-scored. Alerts "
                    f"{int(s.loc['before', 'alerts']):,} → {int(s.loc['after', 'alerts']):,} "
                    f"({result.alert_change:+,}); High {int(s.loc['before', 'high']):,} → "
                    f"{int(s.loc['after', 'high']):,}; precision "
                    f"{_pct(s.loc['before', 'precision'])} → {_pct(s.loc['after', 'precision'])}, "
                    f"recall {_pct(s.loc['before', 'recall'])} → {_pct(s.loc['after', 'recall'])}."
                ),
            )
        return result

    async def apply(self) -> str | None:
        """Write the current file into the rules directory and record the version; the
        recorded version, or None when refused."""
        if not self.apply_enabled:
            safe.show(
                self.message,
                safe.html("<b>Apply is disabled</b> (setting {}).", _SETTING),
            )
            return None
        name = self.file.value
        if not name:
            return None
        text = self.editor.value
        try:
            outcome = await asyncio.to_thread(self._apply, name, text)
        except (RuleError, RuleSetError) as exc:
            self._show_errors(_problems(exc))
            safe.show(
                self.message,
                safe.html("<b>Refused:</b> nothing was written; the rules are unchanged."),
            )
            return None
        except WorkbenchError as exc:
            safe.show(self.message, safe.html("<b>Not applied:</b> {}", banner(exc)))
            return None
        version, recorded = outcome
        self._show_errors([])
        self.files[name] = text
        self.edits.pop(name, None)
        self.version = version
        safe.show(
            self.message,
            safe.html(
                "Applied: <code>{}</code> written; version <code>{}</code> {} as active by {}. "
                "Workers switch to it between batches.",
                self.rules_dir / Path(name).name,
                version,
                "recorded" if recorded else "was recorded already",
                self.author,
            ),
        )
        await self.load_history()
        return version

    async def load_history(self) -> None:
        try:
            frame = await asyncio.to_thread(self._read_history)
        except WorkbenchError as exc:
            safe.show(
                self.message, safe.html("<b>Cannot read the rule-set history:</b> {}", banner(exc))
            )
            return
        self.history_frame = frame
        options = {_label(row): int(row["id"]) for _, row in frame.iterrows()}
        accepted = list(dict.fromkeys(frame.loc[frame["status"] == "accepted", "version"]))
        with pn.io.hold():
            self.history_table.value = _history_rows(frame)
            self.diff_from.options = options
            self.diff_to.options = options
            if len(frame):
                ids = list(options.values())
                self.diff_to.value = ids[0]
                self.diff_from.value = ids[1] if len(ids) > 1 else ids[0]
            self.rollback_to.options = accepted
            if accepted:
                self.rollback_to.value = accepted[1] if len(accepted) > 1 else accepted[0]

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

    async def rollback(self, version: str) -> bool:
        """Make the earlier accepted ``version`` active again (every worker follows)."""
        if not self.apply_enabled:
            safe.show(
                self.message,
                safe.html("<b>Rollback is disabled</b> (setting {}).", _SETTING),
            )
            return False
        try:
            await asyncio.to_thread(rollback, self.dsn, version, author=self.author)
        except WorkbenchError as exc:
            safe.show(self.message, safe.html("<b>Rollback refused:</b> {}", banner(exc)))
            return False
        await self.load()
        safe.show(
            self.message,
            safe.html(
                "Rolled back to version <code>{}</code> by {}; the rules directory is not "
                "rewritten (a worker restart keeps this version until the directory is edited).",
                version,
                self.author,
            ),
        )
        return True

    async def _rollback_selected(self) -> None:
        if self.rollback_to.value:
            await self.rollback(self.rollback_to.value)

    # -- display ------------------------------------------------------------------------

    def _show_errors(self, errors: list[RuleError]) -> None:
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

    def _row(self, row_id) -> dict[str, Any] | None:
        if row_id is None:
            return None
        found = self.history_frame[self.history_frame["id"] == int(row_id)]
        return None if found.empty else found.iloc[0].to_dict()

    # -- database and files (worker threads) ------------------------------------------------

    def _read_active(self) -> tuple[str | None, dict[str, str]]:
        store = shared_store(self.dsn)
        active = store.rule_sets.active()
        if active is not None:
            return active["version"], dict(active["files"])
        return None, read_directory(self.rules_dir)

    def _read_history(self) -> pd.DataFrame:
        return shared_store(self.dsn).rule_sets.history(limit=HISTORY_ROWS)

    def _what_if(self, candidate: RuleSet) -> WhatIf | None:
        active = parse_rules(self.files)
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
        return what_if(active, candidate, history, warmup=warmup)

    def _apply(self, name: str, text: str) -> tuple[str, bool]:
        """Check the directory with ``name`` replaced by ``text``; record it as accepted
        and replace the file, both under the publication lock. (version, recorded now)."""
        path = self.rules_dir / Path(name).name
        base = read_directory(self.rules_dir) if self.rules_dir.is_dir() else None
        if base is None:
            raise RuleError(
                f"rules directory not found: '{self.rules_dir}'", file=str(self.rules_dir)
            )
        texts = {**base, f"{self.rules_dir.name}/{path.name}": text}
        ruleset = parse_rules(texts)
        written = False

        def write_if_unchanged() -> bool:
            nonlocal written
            if read_directory(self.rules_dir) != base:  # edited meanwhile: the watcher's turn
                return False
            write_atomically(path, text)
            written = True
            return True

        # One pooled session for the dry run and the publication (its advisory lock).
        with shared_store(self.dsn).raw() as conn:
            try:
                dry_run(ruleset, conn)
            except WorkbenchError:
                raise
            except Exception as exc:  # the candidate cannot score real data
                raise RuleError(
                    f"dry run on recent transactions failed: {type(exc).__name__}: {clip(exc)}",
                    file=name,
                ) from exc
            recorded = rule_sets.publish(
                conn,
                ruleset.version,
                texts,
                self.author,
                "accepted",
                still_current=write_if_unchanged,
            )
        if recorded is None and not written:
            # Already the newest accepted version (e.g. after a rollback to it): only the
            # file is missing; the watcher then finds nothing new to record.
            if read_directory(self.rules_dir) != base:
                raise WorkbenchError(
                    "the rules directory changed while applying: reload and try again"
                )
            write_atomically(path, text)
        return ruleset.version, recorded is not None


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step: a hidden temporary file in the same
    directory (ignored by the watcher), flushed to disk, then ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def unified_diff(before: dict[str, str], after: dict[str, str], a: str, b: str) -> str:
    """Unified diff of two rule sets' files, file by file (added and removed files too)."""
    out: list[str] = []
    for name in sorted(set(before) | set(after)):
        out.extend(
            difflib.unified_diff(
                before.get(name, "").splitlines(keepends=True),
                after.get(name, "").splitlines(keepends=True),
                fromfile=f"{a}: {name}",
                tofile=f"{b}: {name}",
            )
        )
    return "".join(line if line.endswith("\n") else line + "\n" for line in out).rstrip("\n")


def _parse(texts: dict[str, str]) -> tuple[RuleSet | None, list[RuleError]]:
    try:
        return parse_rules(texts), []
    except (RuleError, RuleSetError) as exc:
        return None, _problems(exc)


def banner(exc: BaseException) -> str:
    """An error as a banner shows it: its first line, bounded, and how many more there are
    (the error table lists a rule set's problems; a banner never holds a file's content)."""
    lines = str(exc).splitlines() or [type(exc).__name__]
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    return clip(lines[0]) + more


def _problems(exc: RuleError) -> list[RuleError]:
    return list(exc.errors) if isinstance(exc, RuleSetError) else [exc]


def _history_rows(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    out = frame[HISTORY_COLUMNS].copy()
    out["created_at"] = pd.to_datetime(out["created_at"], utc=True).dt.strftime("%Y-%m-%d %H:%M:%S")
    out["error"] = out["error"].fillna("").astype(str).str.split("\n").str[0].map(clip)
    return out.reset_index(drop=True)


def _label(row: pd.Series) -> str:
    when = pd.Timestamp(row["created_at"]).strftime("%m-%d %H:%M:%S")
    return f"#{row['id']} {row['version']} ({row['status']}, {when}, {row['author']})"


def _pct(value: float) -> str:
    return "—" if pd.isna(value) else f"{100 * float(value):.1f} %"


def _utc(value: datetime) -> datetime:
    ts = pd.Timestamp(value)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()
