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
- **Apply** (admin only, unless the ``editor_apply`` setting is false) first shows the diff
  from the active version to the candidate (the rules directory with the current file
  replaced) and a **Confirm publish** button. Confirming writes the file atomically
  (temporary file + ``os.replace``) after the same checks and dry run as the workers'
  watcher, and records the accepted version in ``rule_sets`` with the login's user as author
  — only if the diff shown is still the change made: an edit after the diff was shown, a
  file edited on disk or another publication in between refuse the confirmation
  (:mod:`~workbench.dashboard.publishing`). The row, its audit row and the file are written
  under the publication lock (:func:`~workbench.storage.rule_sets.publish`), so a worker's
  watcher that sees the new file finds the version recorded already and adds nothing.
- **History** lists ``rule_sets``; two versions give a unified diff per file; Rollback (admin)
  shows the diff to an earlier accepted version, then makes it active again on confirmation
  (:func:`~workbench.pipeline.reload.rollback`).

Roles: everyone reads; validate and what-if need rule-author; apply and rollback need admin.
The buttons follow the session's role, and every callback checks it again on the server
through :class:`~workbench.dashboard.actions.Actions`, which audits refusals and changes.

Database work and rule compilation run in worker threads (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import panel as pn

from workbench.auth.roles import AccessDenied, Action, Identity, allowed
from workbench.dashboard import clock, safe
from workbench.dashboard.actions import Actions
from workbench.dashboard.goto_line import GotoLine
from workbench.dashboard.parts import read_only_table, schedule
from workbench.dashboard.publishing import Proposal, unified_diff, write_atomically
from workbench.errors import ConfigError, RuleError, RuleSetError, WorkbenchError
from workbench.pipeline.reload import read_directory
from workbench.rules import RuleSet, parse_rules
from workbench.rules.limits import clip
from workbench.scoring.whatif import WhatIf, what_if
from workbench.storage import shared_store

__all__ = ["EditorView", "banner", "unified_diff", "write_atomically"]

DEFAULT_ROWS = 20_000
MAX_ROWS = 1_000_000
WARMUP_ROWS = 20_000  # older rows that fill the feature windows before the last-N rows
WARMUP_S = 86_400.0  # ... and the event time before a chosen range
HISTORY_ROWS = 100
ERROR_COLUMNS = ["file", "line", "col", "rule_id", "message"]
HISTORY_COLUMNS = ["id", "version", "created_at", "author", "status", "error"]
LAST_N, RANGE = "Last N transactions", "Time range"
_SETTING = safe.html("<code>WORKBENCH_EDITOR_APPLY</code>")


class EditorView(pn.viewable.Viewer):
    """Editor, checks, what-if, apply and rule-set history for one session."""

    def __init__(
        self,
        dsn: str,
        rules_dir: str | Path,
        *,
        identity: Identity,
        publisher_dsn: str | None = None,
        apply_enabled: bool = True,
    ) -> None:
        super().__init__()
        self.dsn = dsn
        self.rules_dir = Path(rules_dir)
        self.apply_enabled = apply_enabled
        self.identity = identity
        self.actions = Actions(identity, dsn, publisher_dsn)
        self.author = identity.user
        self.pending: Proposal | None = None  # the change whose diff is shown, to confirm
        can_draft = allowed(identity.role, Action.DRAFT_RULES)
        can_publish = apply_enabled and allowed(identity.role, Action.PUBLISH_RULES)
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
            readonly=not can_draft,
        )
        self.validate_button = pn.widgets.Button(
            label="Validate", color="primary", width=110, disabled=not can_draft
        )
        self.whatif_button = pn.widgets.Button(label="What-if", width=110, disabled=not can_draft)
        self.apply_button = pn.widgets.Button(
            label="Apply…", color="danger", width=110, disabled=not can_publish
        )
        self.revert_button = pn.widgets.Button(label="Reload active", color="light", width=130)
        self.validate_button.on_click(lambda _e: schedule(self.validate))
        self.whatif_button.on_click(lambda _e: schedule(self.run_what_if))
        self.apply_button.on_click(lambda _e: schedule(self.apply))
        self.revert_button.on_click(lambda _e: schedule(self.load))
        self.message = safe.pane(css_classes=["editor-message"])
        # The change to confirm: its diff as plain text (never Markdown: rule files are
        # outside text), and the button that carries out exactly that change.
        self.review = safe.preformatted(css_classes=["editor-review"], sizing_mode="stretch_width")
        self.confirm_button = pn.widgets.Button(
            label="Confirm publish", color="danger", width=160, disabled=True
        )
        self.cancel_button = pn.widgets.Button(label="Cancel", width=90, disabled=True)
        self.confirm_button.on_click(lambda _e: schedule(self.confirm))
        self.cancel_button.on_click(lambda _e: self._clear_pending())
        self.editor.param.watch(self._on_edit, "value")
        # a click on an error row moves the editor's cursor to its line (and file)
        self.error_table = read_only_table(
            pd.DataFrame(columns=ERROR_COLUMNS), "editor-errors", 160, selectable=1
        )
        self.goto = GotoLine()
        self.error_table.param.watch(self._on_error_row, "selection")
        self._whatif_texts: dict[str, str] | None = None  # the candidate the what-if scored
        self.changed = read_only_table(pd.DataFrame(), "whatif-changed", 260)

        self.mode = pn.widgets.RadioButtonGroup(options=[LAST_N, RANGE], value=LAST_N)
        self.rows = pn.widgets.IntInput(
            label="N", value=DEFAULT_ROWS, start=1, end=MAX_ROWS, step=1000, width=140
        )
        self.start = pn.widgets.DatetimeInput(label=f"From, {clock.label()}", width=200)
        self.end = pn.widgets.DatetimeInput(label=f"To, {clock.label()}", width=200)
        self.whatif_message = safe.pane(css_classes=["whatif-message"])
        self.migration = read_only_table(pd.DataFrame(), "whatif-migration", 140)
        self.summary = read_only_table(pd.DataFrame(), "whatif-summary", 110)
        self.rule_table = read_only_table(pd.DataFrame(), "whatif-rules", 260)

        self.history_table = read_only_table(
            pd.DataFrame(columns=HISTORY_COLUMNS),
            "editor-history",
            260,
            times={"created_at": f"created, {clock.WALL}"},
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
            label="Roll back to it…", color="warning", width=140, disabled=not can_publish
        )
        self.rollback_button.on_click(lambda _e: schedule(self._rollback_selected))
        if not apply_enabled:
            note = safe.html("Apply and rollback are disabled here (setting {}).", _SETTING)
        elif not can_publish:
            note = safe.html(
                "Signed in as <b>{}</b>: {}",
                identity,
                "you may validate and run what-if; publishing needs the admin role."
                if can_draft
                else "read only; editing rules needs the rule-author role.",
            )
        else:
            note = safe.html("Changes are recorded as <b>{}</b>.", self.author)
        self.panel = pn.Column(
            pn.FlexBox(
                self.file,
                self.validate_button,
                self.whatif_button,
                self.apply_button,
                self.revert_button,
            ),
            safe.pane(note, css_classes=["editor-note"]),
            self.message,
            pn.FlexBox(self.confirm_button, self.cancel_button),
            self.review,
            self.editor,
            self.goto,
            self.error_table,
            safe.heading("What-if: active rules → edited rules"),
            pn.FlexBox(self.mode, self.rows, self.start, self.end),
            self.whatif_message,
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
            safe.heading("Rule-set history"),
            self.history_table,
            pn.FlexBox(self.diff_from, self.diff_to, self.diff_button),
            self.diff,
            pn.FlexBox(self.rollback_to, self.rollback_button),
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

    def __panel__(self) -> pn.viewable.Viewable:
        return self.panel

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
        """Check the candidate; errors listed and marked in the editor. The rule set or None.
        Needs the rule-author role (checked here, on the server)."""
        if not await self._permitted(self.actions.draft):
            return None
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
        if not await self._permitted(self.actions.what_if):
            return None
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
        self._whatif_texts = self.candidate()
        s = result.summary
        with pn.io.hold():
            self.changed.value = result.changed
            for table in (self.migration, self.summary, self.rule_table, self.changed):
                table.styles = {"opacity": "1"}
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
                    f"recall {_pct(s.loc['before', 'recall'])} → {_pct(s.loc['after', 'recall'])}. "
                    f"{result.changed_total:,} changed band"
                    + (f" ({len(result.changed):,} listed)." if result.changed_total else ".")
                ),
            )
        return result

    async def apply(self) -> Proposal | None:
        """Show the diff that publishing the current file would make and ask for
        confirmation (:meth:`confirm`); the proposal, or None when refused. Admin only."""
        if not self.apply_enabled:
            self._say(safe.html("<b>Apply is disabled</b> (setting {}).", _SETTING))
            return None
        name = self.file.value
        if not name:
            return None
        text = self.editor.value
        try:
            proposal = await asyncio.to_thread(
                self.actions.propose_publish, self.rules_dir, name, text
            )
        except AccessDenied as exc:
            self._refused(exc)
            return None
        except (RuleError, RuleSetError) as exc:
            self._show_errors(_problems(exc))
            self._say(safe.html("<b>Refused:</b> nothing was written; the rules are unchanged."))
            return None
        except WorkbenchError as exc:
            self._say(safe.html("<b>Not applied:</b> {}", banner(exc)))
            return None
        self._show_errors([])
        self._propose(proposal)
        return proposal

    async def confirm(self) -> str | None:
        """Carry out the change whose diff is shown — only if it is still that change (the
        editor, the rules directory and the active version as they were when it was shown);
        the version made active, or None."""
        proposal = self.pending
        if proposal is None:
            self._say(safe.html("Nothing to confirm: press Apply… or Roll back… first."))
            return None
        if proposal.kind == "publish" and (
            self.file.value != proposal.name or self.editor.value != proposal.text
        ):
            self._clear_pending()
            self._say(
                safe.html(
                    "<b>Not published:</b> the editor changed after the diff was shown; press "
                    "Apply… to review the new diff."
                )
            )
            return None
        act = self.actions.publish if proposal.kind == "publish" else self.actions.rollback
        try:
            recorded = await asyncio.to_thread(act, proposal)
        except AccessDenied as exc:
            self._clear_pending()
            self._refused(exc)
            return None
        except (RuleError, RuleSetError) as exc:
            self._clear_pending()
            self._show_errors(_problems(exc))
            self._say(safe.html("<b>Refused:</b> nothing was written; the rules are unchanged."))
            return None
        except WorkbenchError as exc:  # a stale proposal included: nothing was written
            self._clear_pending()
            self._say(safe.html("<b>Not applied:</b> {}", banner(exc)))
            return None
        self._clear_pending()
        if proposal.kind == "rollback":
            await self.load()
            self._say(
                safe.html(
                    "Rolled back to version <code>{}</code> by {}; the rules directory is not "
                    "rewritten (a worker restart keeps this version until the directory is "
                    "edited).",
                    proposal.version,
                    self.author,
                )
            )
            return proposal.version
        assert proposal.name is not None and proposal.text is not None
        self.files[proposal.name] = proposal.text
        self.edits.pop(proposal.name, None)
        self.version = proposal.version
        self._say(
            safe.html(
                "Applied: <code>{}</code> written; version <code>{}</code> {} as active by {}. "
                "Workers switch to it between batches.",
                self.rules_dir / Path(proposal.name).name,
                proposal.version,
                "recorded" if recorded else "was recorded already",
                self.author,
            )
        )
        await self.load_history()
        return proposal.version

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

    async def rollback(self, version: str) -> Proposal | None:
        """Show the diff from the active version to the earlier accepted ``version`` and ask
        for confirmation (:meth:`confirm`; every worker then follows). Admin only."""
        if not self.apply_enabled:
            self._say(safe.html("<b>Rollback is disabled</b> (setting {}).", _SETTING))
            return None
        try:
            proposal = await asyncio.to_thread(self.actions.propose_rollback, version)
        except AccessDenied as exc:
            self._refused(exc)
            return None
        except WorkbenchError as exc:
            self._say(safe.html("<b>Rollback refused:</b> {}", banner(exc)))
            return None
        self._propose(proposal)
        return proposal

    async def _rollback_selected(self) -> None:
        if self.rollback_to.value:
            await self.rollback(self.rollback_to.value)

    # -- the change to confirm ----------------------------------------------------------

    def _propose(self, proposal: Proposal) -> None:
        self.pending = proposal
        verb = "publish" if proposal.kind == "publish" else "rollback"
        with pn.io.hold():
            self._show_review(proposal.diff or "(no change to the active rule set's files)")
            self.confirm_button.label = f"Confirm {verb}"
            self.confirm_button.disabled = False
            self.cancel_button.disabled = False
            self._say(
                safe.html(
                    "Review the {} below: active version <code>{}</code> → <code>{}</code>. "
                    "<b>Confirm {}</b> makes exactly this change live.",
                    verb,
                    proposal.active or "(none)",
                    proposal.version,
                    verb,
                )
            )

    def _clear_pending(self) -> None:
        self.pending = None
        with pn.io.hold():
            self._show_review("")
            self.confirm_button.disabled = True
            self.cancel_button.disabled = True

    def _on_edit(self, event) -> None:
        """An edit after the diff was shown makes it stale: it can no longer be confirmed
        (the button is a convenience: :meth:`confirm` checks again on the server)."""
        pending = self.pending
        if pending is not None and pending.kind == "publish" and event.new != pending.text:
            self._clear_pending()
            self._say(safe.html("The editor changed: press Apply… to review the new diff."))
        self._mark_whatif_stale(event.new)

    def _mark_whatif_stale(self, text: str) -> None:
        """The what-if shown scored other rules once the candidate differs: say so and grey
        its tables out (switching files is not a change: the candidate stays the same)."""
        if self._whatif_texts is None or self.file.value is None:
            return
        if {**self.files, **self.edits, self.file.value: text} == self._whatif_texts:
            return
        self._whatif_texts = None
        with pn.io.hold():
            for table in (self.migration, self.summary, self.rule_table, self.changed):
                table.styles = {"opacity": "0.4"}
            safe.show(
                self.whatif_message,
                safe.html(
                    "<b>Stale:</b> the rules changed since this what-if ran; press What-if "
                    "to score the edited rules."
                ),
            )

    def _on_error_row(self, event) -> None:
        """Jump to the clicked error: its file first (when another), then its line."""
        if not event.new or event.new[0] >= len(self.errors):
            return
        error = self.errors[event.new[0]]
        if error.file and error.file != self.file.value and error.file in self.file.options:
            self.file.value = error.file
        if error.line:
            self.goto.go(error.line, error.col)

    async def _permitted(self, check) -> bool:
        try:
            await asyncio.to_thread(check)
        except AccessDenied as exc:
            self._refused(exc)
            return False
        return True

    def _refused(self, exc: AccessDenied) -> None:
        self._say(safe.html("<b>Not allowed:</b> {}", str(exc)))

    def _say(self, message: safe.Html) -> None:
        """The page's message line (escaped already: built with :func:`safe.html`)."""
        safe.show(self.message, message)

    def _show_review(self, diff: str) -> None:
        """The diff to confirm, as text (an escaped ``<pre>``: shown as is, never as markup)."""
        safe.show_text(self.review, diff)

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
    out["created_at"] = clock.stamp(out["created_at"])
    out["error"] = out["error"].fillna("").astype(str).str.split("\n").str[0].map(clip)
    return out.reset_index(drop=True)


def _label(row: pd.Series) -> str:
    when = clock.stamp(row["created_at"], "%m-%d %H:%M:%S")
    return f"#{row['id']} {row['version']} ({row['status']}, {when}, {row['author']})"


def _pct(value: float) -> str:
    return "—" if pd.isna(value) else f"{100 * float(value):.1f} %"


def _utc(value: datetime) -> datetime:
    """A From/To input's value (the display zone's wall time) as UTC."""
    return clock.from_input(value)
