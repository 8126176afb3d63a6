"""The case actions of :class:`~workbench.dashboard.actions.Actions` (a mixin, so the cases'
methods live apart from the rules' and the audit trail's).

Same contract as every action: checked on the server first (a refusal audited), the change
and its audit row in one transaction, a failure audited with its reason. Who may:

- claim / release / set status / note / close: analyst and above;
- assign: an analyst to themself only; an admin to anyone, and only an admin releases a case
  another analyst holds.

Closing a case closes its open alerts with the outcome as their disposition, in the same
transaction — and labels them through :meth:`_label_dispositions`, the same path a single
alert's disposition takes. A claim of a case someone else holds is refused with the holder's
name (:class:`~workbench.storage.cases.CaseHeld`) and audited as refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import psycopg

from workbench.auth.roles import Action, allowed
from workbench.errors import StorageError, WorkbenchError
from workbench.storage import case_writes, cases, labels
from workbench.storage.connection import storage_errors

__all__ = ["MAX_BULK", "CaseActions"]

MAX_BULK = 500  # cases closed by one bulk close


class CaseActions:
    """Claim, release, assign, status, note, close and bulk close (mixed into ``Actions``)."""

    # Provided by Actions: identity, reader, require, record, _failed.

    def claim_case(self, case_id: int) -> dict:
        """Claim the case for the identity's user; refused (CaseHeld) when another holds it."""
        user = self.identity.user
        return self._case(Action.CASE_CLAIM, case_id, lambda c: cases.claim(c, case_id, user))

    def release_case(self, case_id: int) -> dict:
        """Give the case back; an admin may release another analyst's."""
        anyone = allowed(self.identity.role, Action.CASE_ASSIGN_OTHERS)
        user = self.identity.user
        return self._case(
            Action.CASE_RELEASE,
            case_id,
            lambda c: cases.release(c, case_id, user, anyone=anyone),
        )

    def assign_case(self, case_id: int, assignee: str) -> dict:
        """Give the case to ``assignee``: oneself (analyst), anyone (admin)."""
        assignee = (case_writes.clean_text(assignee, "assignee") or "").strip()
        if not assignee or len(assignee) > 200 or "\n" in assignee:
            raise StorageError("the assignee must be a login name")
        action = Action.CASE_ASSIGN
        if assignee != self.identity.user:
            action = Action.CASE_ASSIGN_OTHERS
        user = self.identity.user
        return self._case(action, case_id, lambda c: cases.set_assignee(c, case_id, assignee, user))

    def set_case_status(self, case_id: int, status: str) -> dict:
        """Move the case to 'investigating' (or back to 'open')."""
        user = self.identity.user
        return self._case(
            Action.CASE_STATUS, case_id, lambda c: cases.set_status(c, case_id, status, user)
        )

    def note_case(self, case_id: int, text: str) -> dict:
        """Add a note (bounded, no control characters) to the case's timeline."""
        user = self.identity.user
        return self._case(Action.CASE_NOTE, case_id, lambda c: cases.note(c, case_id, text, user))

    def close_case(self, case_id: int, outcome: str, comment: str | None = None) -> dict:
        """Close the case with ``outcome`` (confirmed_fraud, false_positive, valuable) and
        its open alerts with that disposition."""
        return self.close_cases([case_id], outcome, comment)[0]

    def close_cases(
        self, case_ids: Iterable[int], outcome: str, comment: str | None = None
    ) -> list[dict]:
        """Close several cases in one transaction (all or none), one audit row per case."""
        ids = sorted({int(i) for i in case_ids})  # sorted: two bulk closes lock in one order
        if not ids:
            return []
        if len(ids) > MAX_BULK:
            raise StorageError(f"close at most {MAX_BULK} cases at once")
        for case_id in ids:
            self.require(Action.CASE_CLOSE, f"case {case_id}")
        user = self.identity.user
        done: list[dict] = []
        try:
            with (
                self.reader.raw() as conn,
                storage_errors("cannot close the cases"),
                conn.transaction(),
            ):
                for case_id in ids:
                    change, alert_ids = cases.close(conn, case_id, outcome, user, comment)
                    labelled = self._label_dispositions(conn, alert_ids, outcome)
                    detail = f"alerts closed: {alert_ids}; {labelled} transaction(s) labelled"
                    self.record(
                        conn,
                        Action.CASE_CLOSE,
                        "ok",
                        object=f"case {case_id}",
                        before=change["before"],
                        after=change["after"],
                        detail=detail[:4000],
                    )
                    done.append({**change["after"], "id": case_id, "alerts": alert_ids})
        except WorkbenchError as exc:
            self._failed(self.reader, Action.CASE_CLOSE, exc, object=f"cases {ids[:20]}")
            raise
        return done

    def _label_dispositions(
        self, conn: psycopg.Connection, alert_ids: list[int], disposition: str
    ) -> int:
        """Label the transactions of the alerts a close disposed of, as a single alert's
        disposition does (in the close's transaction); how many."""
        return labels.from_dispositions(conn, alert_ids, disposition, None, self.identity.user)

    def _case(self, action: Action, case_id: int, change: Callable[[Any], dict]) -> dict:
        """Check, then ``change`` and its audit row in one transaction; the state after."""
        target = f"case {int(case_id)}"
        self.require(action, target)
        try:
            with (
                self.reader.raw() as conn,
                storage_errors(f"cannot change {target}"),
                conn.transaction(),
            ):
                result = change(conn)
                self.record(
                    conn,
                    action,
                    "ok",
                    object=target,
                    before=result["before"],
                    after=result["after"],
                )
        except cases.CaseHeld as exc:
            self.record(self.reader, action, "refused", object=target, detail=str(exc))
            raise
        except WorkbenchError as exc:
            self._failed(self.reader, action, exc, object=target)
            raise
        return result["after"]
