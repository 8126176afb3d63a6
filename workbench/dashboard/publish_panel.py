"""The rule editor's publication panel: Apply (or Roll back), read the diff, then confirm.

**Apply** (admin only, unless the ``editor_apply`` setting is false) first shows the diff from
the active version to the candidate (the rules directory with the current file replaced) and
a **Confirm publish** button. Confirming writes the file atomically (temporary file +
``os.replace``) after the same checks and dry run as the workers' watcher — the dry run with
the lists and snoozes in force — and records the accepted version in ``rule_sets`` with the
login's user as author, only if the diff shown is still the change made: an edit after the
diff was shown, a file edited on disk or another publication in between refuse the
confirmation (:mod:`~workbench.dashboard.publishing`). **Roll back** shows the diff to an
earlier accepted version, then makes it active again on confirmation
(:func:`~workbench.pipeline.reload.rollback`). Every step is checked on the server through
:class:`~workbench.dashboard.actions.Actions`, which audits refusals and changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import panel as pn

from workbench.auth.roles import AccessDenied
from workbench.dashboard import safe
from workbench.dashboard.actions import Actions
from workbench.dashboard.parts import schedule
from workbench.dashboard.publishing import Proposal
from workbench.dashboard.rule_text import RuleText, banner, problems
from workbench.errors import RuleError, RuleSetError, WorkbenchError

__all__ = ["PublishPanel"]

SETTING = safe.html("<code>WORKBENCH_EDITOR_APPLY</code>")
REFUSED = safe.html("<b>Refused:</b> nothing was written; the rules are unchanged.")


class PublishPanel(pn.viewable.Viewer):
    """The change to confirm (its diff) and the actions that propose and carry it out."""

    def __init__(
        self,
        actions: Actions,
        text: RuleText,
        rules_dir: Path,
        *,
        apply_enabled: bool,
        say: Callable[[safe.Html], None],
        reload: Callable[[], Awaitable[None]],
        history: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__()
        self.actions = actions
        self.text = text
        self.rules_dir = rules_dir
        self.apply_enabled = apply_enabled
        self.author = actions.identity.user
        self.say = say
        self.reload = reload  # the editor reloads the active rule set (after a rollback)
        self.history = history  # ... and the history (after a publication)
        self.pending: Proposal | None = None  # the change whose diff is shown, to confirm
        # Its diff as plain text (never Markdown: rule files are outside text), and the
        # button that carries out exactly that change.
        self.review = safe.preformatted(css_classes=["editor-review"], sizing_mode="stretch_width")
        self.confirm_button = pn.widgets.Button(
            label="Confirm publish", color="danger", width=160, disabled=True
        )
        self.cancel_button = pn.widgets.Button(label="Cancel", width=90, disabled=True)
        self.confirm_button.on_click(lambda _e: schedule(self.confirm))
        self.cancel_button.on_click(lambda _e: self.clear())

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.FlexBox(self.confirm_button, self.cancel_button),
            self.review,
            sizing_mode="stretch_width",
        )

    async def apply(self) -> Proposal | None:
        """Show the diff that publishing the current file would make and ask for
        confirmation (:meth:`confirm`); the proposal, or None when refused. Admin only."""
        if not self.apply_enabled:
            self.say(safe.html("<b>Apply is disabled</b> (setting {}).", SETTING))
            return None
        name = self.text.file.value
        if not name:
            return None
        try:
            proposal = await asyncio.to_thread(
                self.actions.propose_publish, self.rules_dir, name, self.text.editor.value
            )
        except AccessDenied as exc:
            self.refused(exc)
            return None
        except (RuleError, RuleSetError) as exc:
            self.text.show_errors(problems(exc))
            self.say(REFUSED)
            return None
        except WorkbenchError as exc:
            self.say(safe.html("<b>Not applied:</b> {}", banner(exc)))
            return None
        self.text.show_errors([])
        self.propose(proposal)
        return proposal

    async def rollback(self, version: str) -> Proposal | None:
        """Show the diff from the active version to the earlier accepted ``version`` and ask
        for confirmation (:meth:`confirm`; every worker then follows). Admin only."""
        if not self.apply_enabled:
            self.say(safe.html("<b>Rollback is disabled</b> (setting {}).", SETTING))
            return None
        try:
            proposal = await asyncio.to_thread(self.actions.propose_rollback, version)
        except AccessDenied as exc:
            self.refused(exc)
            return None
        except WorkbenchError as exc:
            self.say(safe.html("<b>Rollback refused:</b> {}", banner(exc)))
            return None
        self.propose(proposal)
        return proposal

    async def confirm(self) -> str | None:
        """Carry out the change whose diff is shown — only if it is still that change (the
        editor, the rules directory and the active version as they were when it was shown);
        the version made active, or None."""
        proposal = self.pending
        if proposal is None:
            self.say(safe.html("Nothing to confirm: press Apply… or Roll back… first."))
            return None
        if proposal.kind == "publish" and (
            self.text.file.value != proposal.name or self.text.editor.value != proposal.text
        ):
            self.clear()
            self.say(
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
            self.clear()
            self.refused(exc)
            return None
        except (RuleError, RuleSetError) as exc:
            self.clear()
            self.text.show_errors(problems(exc))
            self.say(REFUSED)
            return None
        except WorkbenchError as exc:  # a stale proposal included: nothing was written
            self.clear()
            self.say(safe.html("<b>Not applied:</b> {}", banner(exc)))
            return None
        self.clear()
        if proposal.kind == "rollback":
            await self.reload()
            self.say(
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
        self.text.saved(proposal.name, proposal.text, proposal.version)
        self.say(
            safe.html(
                "Applied: <code>{}</code> written; version <code>{}</code> {} as active by {}. "
                "Workers switch to it between batches.",
                self.rules_dir / Path(proposal.name).name,
                proposal.version,
                "recorded" if recorded else "was recorded already",
                self.author,
            )
        )
        await self.history()
        return proposal.version

    def propose(self, proposal: Proposal) -> None:
        self.pending = proposal
        verb = "publish" if proposal.kind == "publish" else "rollback"
        with pn.io.hold():
            safe.show_text(
                self.review, proposal.diff or "(no change to the active rule set's files)"
            )
            self.confirm_button.label = f"Confirm {verb}"
            self.confirm_button.disabled = False
            self.cancel_button.disabled = False
            self.say(
                safe.html(
                    "Review the {} below: active version <code>{}</code> → <code>{}</code>. "
                    "<b>Confirm {}</b> makes exactly this change live.",
                    verb,
                    proposal.active or "(none)",
                    proposal.version,
                    verb,
                )
            )

    def clear(self) -> None:
        self.pending = None
        with pn.io.hold():
            safe.show_text(self.review, "")
            self.confirm_button.disabled = True
            self.cancel_button.disabled = True

    def edited(self, text: str) -> None:
        """An edit after the diff was shown makes it stale: it can no longer be confirmed
        (the button is a convenience: :meth:`confirm` checks again on the server)."""
        pending = self.pending
        if pending is not None and pending.kind == "publish" and text != pending.text:
            self.clear()
            self.say(safe.html("The editor changed: press Apply… to review the new diff."))

    def refused(self, exc: AccessDenied) -> None:
        self.say(safe.html("<b>Not allowed:</b> {}", str(exc)))
