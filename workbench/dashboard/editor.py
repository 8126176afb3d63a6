"""The rule editor page of one session: edit, validate, what-if, apply; history, diff, rollback.

The page is put together from one part per noun, each a :class:`pn.viewable.Viewer`:

- :mod:`~workbench.dashboard.rule_text` — the files being edited (one at a time in a YAML
  code editor; edits to several files are kept while switching), **Validate**'s checks
  (:func:`~workbench.rules.parse_rules`: every problem listed with file, line, column and
  rule id, and marked in the editor at its line);
- :mod:`~workbench.dashboard.whatif_panel` — **What-if**: the last N stored transactions (or
  a time range) scored with the active rule set and with the candidate, by the stream's own
  evaluation with the maintained lists and snoozes in force
  (:func:`~workbench.scoring.whatif.what_if`): band migration, hits per rule, alert volume,
  precision/recall against the labels, the transactions whose band changed;
- :mod:`~workbench.dashboard.publish_panel` — **Apply** and **Roll back**: the diff to read,
  then a confirmation that carries out exactly that change
  (:mod:`~workbench.dashboard.publishing`);
- :mod:`~workbench.dashboard.rule_history` — the ``rule_sets`` history, a diff between two
  versions, the accepted version to roll back to.

Roles: everyone reads; validate and what-if need rule-author; apply and rollback need admin
(and the ``editor_apply`` setting). The buttons follow the session's role, and every callback
checks it again on the server through :class:`~workbench.dashboard.actions.Actions`, which
audits refusals and changes. Database work and rule compilation run in worker threads
(``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd
import panel as pn

from workbench.auth.roles import AccessDenied, Action, Identity, allowed
from workbench.dashboard import safe
from workbench.dashboard.actions import Actions
from workbench.dashboard.parts import schedule
from workbench.dashboard.publish_panel import SETTING, PublishPanel
from workbench.dashboard.publishing import Proposal, unified_diff, write_atomically
from workbench.dashboard.rule_history import RuleHistory
from workbench.dashboard.rule_text import RuleText, banner, parse_candidate
from workbench.dashboard.whatif_panel import DEFAULT_ROWS, LAST_N, MAX_ROWS, RANGE, WhatIfPanel
from workbench.errors import RuleError, WorkbenchError
from workbench.pipeline.reload import read_directory
from workbench.rules import RuleSet
from workbench.scoring.whatif import WhatIf
from workbench.storage import shared_store

__all__ = [
    "DEFAULT_ROWS",
    "LAST_N",
    "MAX_ROWS",
    "RANGE",
    "EditorView",
    "banner",
    "unified_diff",
    "write_atomically",
]


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
        self.loaded = False
        can_draft = allowed(identity.role, Action.DRAFT_RULES)
        can_publish = apply_enabled and allowed(identity.role, Action.PUBLISH_RULES)
        self.message = safe.pane(css_classes=["editor-message"])
        self.text = RuleText(readonly=not can_draft)
        self.whatif = WhatIfPanel(dsn, self.rules_dir)
        self.history = RuleHistory(dsn, can_publish=can_publish)
        self.publishing = PublishPanel(
            self.actions,
            self.text,
            self.rules_dir,
            apply_enabled=apply_enabled,
            say=self._say,
            reload=self.load,
            history=self.load_history,
        )
        # The parts' widgets, under the names the page has always had.
        self.file, self.editor = self.text.file, self.text.editor
        self.error_table, self.goto = self.text.error_table, self.text.goto
        w = self.whatif
        self.mode, self.rows, self.start, self.end = w.mode, w.rows, w.start, w.end
        self.whatif_message, self.changed = w.message, w.changed
        self.migration, self.summary, self.rule_table = w.migration, w.summary, w.rule_table
        h = self.history
        self.history_table, self.diff, self.diff_button = h.table, h.diff, h.diff_button
        self.diff_from, self.diff_to = h.diff_from, h.diff_to
        self.rollback_to, self.rollback_button = h.rollback_to, h.rollback_button
        p = self.publishing
        self.review, self.confirm_button, self.cancel_button = (
            p.review,
            p.confirm_button,
            p.cancel_button,
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
        self.rollback_button.on_click(lambda _e: schedule(self._rollback_selected))
        self.editor.param.watch(self._on_edit, "value")
        if not apply_enabled:
            note = safe.html("Apply and rollback are disabled here (setting {}).", SETTING)
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
            self.publishing,
            self.text,
            self.whatif,
            self.history,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self.panel

    # -- state kept by the parts --------------------------------------------------------

    @property
    def version(self) -> str | None:
        return self.text.version

    @property
    def files(self) -> dict[str, str]:
        return self.text.files

    @property
    def errors(self) -> list[RuleError]:
        return self.text.errors

    @property
    def pending(self) -> Proposal | None:
        return self.publishing.pending

    @pending.setter
    def pending(self, proposal: Proposal | None) -> None:
        self.publishing.pending = proposal

    @property
    def history_frame(self) -> pd.DataFrame:
        return self.history.frame

    def candidate(self) -> dict[str, str]:
        """The active files with every edit merged in (the current file's text included)."""
        return self.text.candidate()

    # -- actions ------------------------------------------------------------------------

    async def load(self) -> None:
        """Load the active rule set (or the rules directory, when none was accepted yet)
        and the history; drops unsaved edits."""
        try:
            version, files = await asyncio.to_thread(self._read_active)
        except WorkbenchError as exc:
            self._say(safe.html("<b>Cannot load the rules:</b> {}", banner(exc)))
            return
        with pn.io.hold():
            self.text.show(version, files)
            self._say(
                safe.html("Editing active version <code>{}</code>.", version)
                if version
                else safe.html("Editing the rules directory.")
            )
        self.loaded = True
        await self.load_history()

    async def validate(self) -> RuleSet | None:
        """Check the candidate; errors listed and marked in the editor. The rule set or None.
        Needs the rule-author role (checked here, on the server)."""
        if not await self._permitted(self.actions.draft):
            return None
        ruleset, errors = await asyncio.to_thread(parse_candidate, self.candidate())
        with pn.io.hold():  # the verdict and its error lines reach the browser together
            self.text.show_errors(errors)
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
            self._say(verdict)
        return ruleset

    async def run_what_if(self) -> WhatIf | None:
        """The candidate against the active rules over the chosen stored transactions."""
        if not await self._permitted(self.actions.what_if):
            return None
        candidate = await self.validate()
        if candidate is None:
            return None
        self.whatif.say(safe.html("Scoring…"))
        try:
            result = await asyncio.to_thread(self.whatif.compute, self.files, candidate)
        except WorkbenchError as exc:
            self.whatif.say(safe.html("<b>What-if failed:</b> {}", banner(exc)))
            return None
        if result is None:
            self.whatif.say(safe.html("No stored transactions in that selection."))
            return None
        self.whatif.show(result, self.candidate())
        return result

    async def apply(self) -> Proposal | None:
        """Propose publishing the current file (:meth:`PublishPanel.apply`). Admin only."""
        return await self.publishing.apply()

    async def rollback(self, version: str) -> Proposal | None:
        """Propose rolling back to ``version`` (:meth:`PublishPanel.rollback`). Admin only."""
        return await self.publishing.rollback(version)

    async def confirm(self) -> str | None:
        """Carry out the change whose diff is shown (:meth:`PublishPanel.confirm`)."""
        return await self.publishing.confirm()

    async def load_history(self) -> None:
        problem = await self.history.load()
        if problem is not None:
            self._say(safe.html("<b>Cannot read the rule-set history:</b> {}", problem))

    def show_diff(self, from_id: int | None = None, to_id: int | None = None) -> str:
        """Unified diff per file between two ``rule_sets`` rows (default: the selected)."""
        return self.history.show_diff(from_id, to_id)

    async def _rollback_selected(self) -> None:
        if self.rollback_to.value:
            await self.rollback(self.rollback_to.value)

    def _on_edit(self, event) -> None:
        """An edit makes a shown diff unconfirmable and a shown what-if stale."""
        self.publishing.edited(event.new)
        if self.file.value is not None:
            self.whatif.mark_stale(self.text.with_text(event.new))

    async def _permitted(self, check) -> bool:
        try:
            await asyncio.to_thread(check)
        except AccessDenied as exc:
            self.publishing.refused(exc)
            return False
        return True

    def _say(self, message: safe.Html) -> None:
        """The page's message line (escaped already: built with :func:`safe.html`)."""
        safe.show(self.message, message)

    def _read_active(self) -> tuple[str | None, dict[str, str]]:
        store = shared_store(self.dsn)
        active = store.rule_sets.active()
        if active is not None:
            return active["version"], dict(active["files"])
        return None, read_directory(self.rules_dir)
