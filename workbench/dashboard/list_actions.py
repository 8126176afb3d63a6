"""List and snooze edits of the dashboard, checked on the server and audited.

A mixin of :class:`~workbench.dashboard.actions.Actions` (kept apart so that module stays
small): each method validates its input *before* the database
(:func:`~workbench.rules.lists.clean_value`, a known rule id, a future ``until``), checks the
identity's role (:data:`Action.EDIT_LISTS`, :data:`Action.SNOOZE`; a refusal is audited and
raised), then writes the change, its audit row and the ``NOTIFY workbench_lists`` that makes
the workers rebuild their lookup in **one** transaction. Invalid input is a ``failed`` audit
row and a :class:`~workbench.errors.ConfigError` with a one-line reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from workbench.auth.roles import Action
from workbench.errors import ConfigError, WorkbenchError
from workbench.rules.lists import KIND_COLUMNS, clean_reason, clean_value, kind_of
from workbench.rules.loader import RULE_ID
from workbench.storage import lists, snoozes
from workbench.storage.connection import storage_errors

SNOOZE_KINDS = ("card", "merchant", "terminal")


class ListActions:
    """Add/remove list values, snooze and lift snoozes (mixed into ``Actions``)."""

    def _validated(self, action: Action, target: str, build) -> Any:
        """``build()``'s value, or a ``failed`` audit row and ConfigError for bad input."""
        try:
            return build()
        except ValueError as exc:
            error = ConfigError(str(exc))
            self._failed(self.reader, action, error, object=target[:200])
            raise error from None

    def add_to_list(
        self, list_name: str, value: str, reason: str = "", expires_at: datetime | None = None
    ) -> dict | None:
        """Add ``value`` to maintained list ``list_name``; the new entry (None: already in)."""
        target = f"list {str(list_name)[:64]}"
        self.require(Action.EDIT_LISTS, target)

        def build():
            kind = kind_of(list_name)
            cleaned = clean_value(kind, value)
            if expires_at is not None and expires_at <= datetime.now(UTC):
                raise ValueError("the expiry must be in the future")
            return kind, cleaned, clean_reason(reason)

        kind, cleaned, why = self._validated(Action.EDIT_LISTS, target, build)
        return self._list_change(
            target,
            lambda conn: lists.add(
                conn,
                list_name,
                kind,
                cleaned,
                added_by=self.identity.user,
                reason=why,
                expires_at=expires_at,
            ),
            change="add",
        )

    def remove_from_list(self, list_name: str, value: str) -> dict | None:
        """Remove ``value`` from ``list_name``; the removed entry (None: it was not there)."""
        target = f"list {str(list_name)[:64]}"
        self.require(Action.EDIT_LISTS, target)
        _kind, cleaned = self._validated(
            Action.EDIT_LISTS,
            target,
            lambda: (kind_of(list_name), clean_value(kind_of(list_name), value)),
        )
        return self._list_change(
            target, lambda conn: lists.remove(conn, list_name, cleaned), change="remove"
        )

    def _list_change(self, target: str, write, *, change: str) -> dict | None:
        try:
            with (
                self.reader.raw() as conn,
                storage_errors(f"cannot change {target}"),
                conn.transaction(),
            ):
                row = write(conn)
                self.record(
                    conn,
                    Action.EDIT_LISTS,
                    "ok",
                    object=target,
                    before=row if change == "remove" else None,
                    after=row if change == "add" else None,
                    detail=f"{change}" + ("" if row is not None else " (no change)"),
                )
        except WorkbenchError as exc:
            self._failed(self.reader, Action.EDIT_LISTS, exc, object=target)
            raise
        return row

    def snooze(self, rule_id: str, kind: str, value: str, until: datetime, reason: str) -> dict:
        """Stop ``rule_id``'s points counting for one card / merchant / terminal until
        ``until`` (event time); a reason is required. The new snooze."""
        target = f"rule {str(rule_id)[:64]}"
        self.require(Action.SNOOZE, target)

        def build():
            if not RULE_ID.match(str(rule_id)):
                raise ValueError("a rule id matches [A-Za-z][A-Za-z0-9_]* (at most 64 characters)")
            if kind not in SNOOZE_KINDS:
                raise ValueError(f"a snooze is for one {', '.join(SNOOZE_KINDS)}")
            if until.tzinfo is None:
                raise ValueError("the end of a snooze needs a time zone")
            why = clean_reason(reason)
            if not why:
                raise ValueError("a snooze needs a reason")
            return clean_value(kind, value), why

        cleaned, why = self._validated(Action.SNOOZE, target, build)
        try:
            with (
                self.reader.raw() as conn,
                storage_errors(f"cannot snooze {target}"),
                conn.transaction(),
            ):
                row = snoozes.add(
                    conn, rule_id, kind, cleaned, until, reason=why, created_by=self.identity.user
                )
                self.record(
                    conn,
                    Action.SNOOZE,
                    "ok",
                    object=target,
                    after=row,
                    detail=f"{KIND_COLUMNS[kind]} = {cleaned}",
                )
        except WorkbenchError as exc:
            self._failed(self.reader, Action.SNOOZE, exc, object=target)
            raise
        return row

    def lift_snooze(self, snooze_id: int) -> dict | None:
        """End snooze ``snooze_id`` now; the snooze as it was (None: none such unlifted)."""
        target = f"snooze {int(snooze_id)}"
        self.require(Action.SNOOZE, target)
        try:
            with (
                self.reader.raw() as conn,
                storage_errors(f"cannot lift {target}"),
                conn.transaction(),
            ):
                row = snoozes.lift(conn, snooze_id, lifted_by=self.identity.user)
                self.record(
                    conn,
                    Action.SNOOZE,
                    "ok",
                    object=target,
                    before=row,
                    detail="lift" + ("" if row is not None else " (no such active snooze)"),
                )
        except WorkbenchError as exc:
            self._failed(self.reader, Action.SNOOZE, exc, object=target)
            raise
        return row
