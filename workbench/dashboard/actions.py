"""Every state-changing dashboard action, checked on the server and audited: one place.

A page never changes the database itself: it asks the session's :class:`Actions`, bound to
the session's :class:`~workbench.auth.roles.Identity` (from the login). Each method first
calls :func:`~workbench.auth.roles.check` — a disabled button in the browser is only a
convenience, a crafted websocket message reaches the callback all the same — and:

- refused: one ``audit_log`` row with outcome ``refused``, then
  :class:`~workbench.auth.roles.AccessDenied` is raised (the page shows it);
- done: the change and its audit row (``before`` / ``after``, the object, who, with which
  role, from where) are written in the **same** database transaction, so neither is ever
  stored without the other;
- failed (the database refused, the rules did not pass their checks, a stale diff): one
  row with outcome ``failed`` and the reason, and the error is raised.

Read-only checks (validate, what-if) are checked and their refusals audited, but a
permitted draft writes nothing. Rule publication and rollback use ``publisher_dsn`` (the
rule publisher's database role), everything else the reader's ``dsn``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.auth.roles import AccessDenied, Action, Identity, check
from workbench.dashboard import publishing
from workbench.dashboard.case_actions import CaseActions
from workbench.dashboard.list_actions import ListActions
from workbench.dashboard.publishing import Proposal
from workbench.errors import WorkbenchError
from workbench.storage import Store, alerts, audit, labels, shadow, shared_store
from workbench.storage.connection import storage_errors

log = logging.getLogger(__name__)

__all__ = ["Actions"]


class Actions(CaseActions, ListActions):
    """What one session's identity may do, done through one audited path. The case
    actions (claim, assign, note, close, ...) are in :mod:`.case_actions`, list and snooze
    edits in :mod:`.list_actions`."""

    def __init__(self, identity: Identity, dsn: str, publisher_dsn: str | None = None) -> None:
        self.identity = identity
        self.dsn = dsn
        self.publisher_dsn = publisher_dsn or dsn

    @property
    def reader(self) -> Store:
        return shared_store(self.dsn)

    @property
    def publisher(self) -> Store:
        return shared_store(self.publisher_dsn)

    # -- the check ----------------------------------------------------------------------

    def require(self, action: Action, object: str | None = None) -> None:
        """Raise AccessDenied (and audit the refusal) unless the identity may ``action``."""
        try:
            check(self.identity, action)
        except AccessDenied as exc:
            try:
                self.record(self.reader, action, "refused", object=object, detail=str(exc))
            except WorkbenchError:  # the refusal stands even when it cannot be written
                log.exception("cannot audit a refused %s by %s", action.code, self.identity)
            raise

    def record(self, source: Any, action: Action, outcome: str, **fields: Any) -> int:
        """One audit row by this identity (on ``source``: a store or a transaction's conn)."""
        who = self.identity
        return audit.record(
            source,
            actor=who.user,
            role=who.role.label,
            provider=who.provider,
            address=who.address,
            action=action.code,
            outcome=outcome,
            **fields,
        )

    def _failed(self, source: Store, action: Action, exc: BaseException, **fields: Any) -> None:
        try:
            self.record(source, action, "failed", detail=str(exc), **fields)
        except WorkbenchError:
            log.exception("cannot audit a failed %s by %s", action.code, self.identity)

    # -- alerts -------------------------------------------------------------------------

    def dispose(self, alert_id: int, disposition: str, notes: str | None = None) -> dict:
        """Close alert ``alert_id`` with ``disposition``; the assignee is the identity's user.
        Every transaction attached to the alert gets the disposition's label (source
        ``analyst``, known at the stream's event-time now: :mod:`workbench.storage.labels`),
        in the same transaction as the close and its audit row (whose detail says how many).
        The alert's state after the change, with ``labels``: how many were written."""
        target = f"alert {int(alert_id)}"
        self.require(Action.DISPOSE, target)
        try:
            with (
                self.reader.raw() as conn,
                storage_errors(f"cannot close {target}"),  # the commit included
                conn.transaction(),
            ):
                change = alerts.set_disposition(
                    conn, alert_id, disposition, self.identity.user, notes
                )
                written = labels.from_dispositions(
                    conn, [alert_id], disposition, None, self.identity.user
                )
                self.record(
                    conn,
                    Action.DISPOSE,
                    "ok",
                    object=target,
                    before=change["before"],
                    after=change["after"],
                    detail=f"{written} transaction(s) labelled {labels.label_of(disposition)}",
                )
        except WorkbenchError as exc:
            self._failed(self.reader, Action.DISPOSE, exc, object=target)
            raise
        return {**change["after"], "labels": written}

    # -- the audit trail ----------------------------------------------------------------

    def read_audit(self, limit: int, **filters: Any) -> pd.DataFrame:
        """A page of the audit trail (``audit.recent`` filters: actor, action prefix,
        outcome, since, before_id): admin only, a refusal is itself audited."""
        self.require(Action.READ_AUDIT, "audit_log")
        return audit.recent(self.reader, limit, **filters)

    # -- rules --------------------------------------------------------------------------

    def draft(self) -> None:
        """Validating an edit (writes nothing): rule-author and above."""
        self.require(Action.DRAFT_RULES)

    def what_if(self) -> None:
        """Re-scoring stored history with an edit (writes nothing): rule-author and above."""
        self.require(Action.WHAT_IF)

    def propose_publish(self, rules_dir: Path, name: str, text: str) -> Proposal:
        """The diff that publishing ``name`` as ``text`` would make (changes nothing)."""
        self.require(Action.PUBLISH_RULES, f"rules file {Path(name).name}")
        return publishing.propose_publish(self.reader, Path(rules_dir), name, text)

    def propose_rollback(self, version: str) -> Proposal:
        """The diff that rolling back to ``version`` would make (changes nothing)."""
        self.require(Action.ROLLBACK_RULES, f"rule_set {version}")
        return publishing.propose_rollback(self.reader, version)

    def publish(self, proposal: Proposal) -> bool:
        """Carry out a publish proposal exactly as shown (see :mod:`.publishing`); True when
        a rule-set row was recorded. The author recorded is the identity's user."""
        return self._publication(Action.PUBLISH_RULES, proposal)

    def rollback(self, proposal: Proposal) -> bool:
        """Carry out a rollback proposal exactly as shown; False when it was active already."""
        return self._publication(Action.ROLLBACK_RULES, proposal)

    def _publication(self, action: Action, proposal: Proposal) -> bool:
        target = f"rule_set {proposal.version}"
        self.require(action, target)
        before = {"version": proposal.active}
        after = {"version": proposal.version, "files": proposal.files}
        if proposal.name is not None:
            after["file"] = Path(proposal.name).name

        def on_record(conn, row_id: int) -> None:
            detail = f"rule_sets row {row_id}"
            self.record(
                conn, action, "ok", object=target, before=before, after=after, detail=detail
            )

        user = self.identity.user
        try:
            if action is Action.PUBLISH_RULES:
                recorded = publishing.publish(
                    proposal, self.reader, self.publisher, author=user, on_record=on_record
                )
            else:
                recorded = publishing.rollback(
                    proposal, self.publisher_dsn, author=user, on_record=on_record
                )
        except WorkbenchError as exc:
            self._failed(self.publisher, action, exc, object=target, before=before, after=after)
            raise
        if not recorded:  # nothing new in rule_sets: still say who did what
            detail = f"version {proposal.version} was active already; no rule_sets row"
            self.record(
                self.publisher,
                action,
                "ok",
                object=target,
                before=before,
                after=after,
                detail=detail,
            )
        return recorded

    def set_shadow_rollout(self, rollout: int, expected: str | None = None) -> dict:
        """Let the challenger decide for ``rollout`` percent of the cards (0..100; 0: shadow
        only), audited in the same transaction (on ``publisher_dsn``): rule-author and above,
        like promotion (a rollout decides, and alerts, for real). The challenger as it was;
        ConfigError for a bad percent, when there is no challenger, or when ``expected`` is
        no longer the challenger."""
        action = Action.SHADOW_ROLLOUT
        self.require(action, "shadow rule set")

        def on_record(conn, row_id: int, before: dict) -> None:
            self.record(
                conn,
                action,
                "ok",
                object=f"rule_set {before['version']}",
                before={"version": before["version"], "rollout": before["rollout"]},
                after={"version": before["version"], "rollout": int(rollout)},
                detail=f"shadow_rule_sets row {row_id}",
            )

        try:
            return shadow.set_rollout(
                self.publisher, rollout, self.identity.user, on_record=on_record, expected=expected
            )
        except WorkbenchError as exc:
            self._failed(self.publisher, action, exc, object="shadow rule set")
            raise

    def promote_shadow(self, expected: str | None = None) -> dict:
        """Make the shadow (challenger) rule set the active one and clear the shadow, with
        its audit row in the same transaction (on ``publisher_dsn``): rule-author and above.
        The challenger promoted (version, files, ...); ConfigError when there is none, or
        when ``expected`` (the version the user reviewed) is no longer the challenger."""
        action = Action.PROMOTE_SHADOW
        self.require(action, "shadow rule set")

        def on_record(conn, challenger: dict, replaced: dict | None) -> None:
            self.record(
                conn,
                action,
                "ok",
                object=f"rule_set {challenger['version']}",
                before={"version": None if replaced is None else replaced["version"]},
                after={"version": challenger["version"], "files": sorted(challenger["files"])},
                detail="shadow rule set promoted to active; shadow cleared",
            )

        try:
            return shadow.promote(
                self.publisher, self.identity.user, on_record=on_record, expected=expected
            )
        except WorkbenchError as exc:
            self._failed(self.publisher, action, exc, object="shadow rule set")
            raise
