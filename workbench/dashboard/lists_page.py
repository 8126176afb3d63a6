"""The Lists page: maintained allow/block lists and per-entity rule snoozes, edited here.

Every change goes through the session's :class:`~workbench.dashboard.actions.Actions`
(``add_to_list``, ``remove_from_list``, ``snooze``, ``lift_snooze``): checked on the server
(:data:`Action.EDIT_LISTS`, :data:`Action.SNOOZE`; a viewer's buttons are disabled, and a
crafted call is refused and audited all the same), validated before the database, audited in
the same transaction, and announced to the workers, which score with the new lists or
snoozes from their next batch — no restart, no rule publication.

A list is shown a page at a time ordered by value (keyset: **Next** continues after the last
value shown). Snoozes end by *event time*: ``Until`` is compared with the transactions'
``ts``; it is typed in the display zone (:mod:`~workbench.dashboard.clock`). All values are
shown as text: read-only tables, and messages escaped by
:func:`~workbench.dashboard.safe.text` (a ``Str`` pane does not escape what it shows).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd
import panel as pn

from workbench.auth.roles import Action, Identity, allowed
from workbench.dashboard import clock, safe
from workbench.dashboard.actions import Actions
from workbench.dashboard.list_actions import SNOOZE_KINDS
from workbench.dashboard.parts import read_only_table, schedule
from workbench.errors import WorkbenchError
from workbench.rules.lists import CATALOGUE
from workbench.storage import shared_store

__all__ = ["ListsView"]

PAGE_ROWS = 200
ENTRY_COLUMNS = ["value", "kind", "reason", "added_by", "added_at", "expires_at"]
SNOOZE_COLUMNS = ["id", "rule_id", "kind", "value", "until", "reason", "created_by"]


class ListsView(pn.viewable.Viewer):
    """List entries with add/remove, and snoozes with snooze/lift, for one session."""

    def __init__(self, dsn: str, identity: Identity, **params):
        super().__init__(**params)
        self.dsn = dsn
        self.actions = Actions(identity, dsn)
        can_edit = allowed(identity.role, Action.EDIT_LISTS)
        can_snooze = allowed(identity.role, Action.SNOOZE)
        self.loaded = False
        self.entries = pd.DataFrame(columns=ENTRY_COLUMNS)
        # Messages quote what the analyst typed: HTML-escaped here (a ``Str`` pane would not).
        self.message = safe.pane(safe.text(""), css_classes=["lists-message"])
        # -- lists
        self.list_name = pn.widgets.Select(
            label="List", options=sorted(CATALOGUE), value="blocked_cards", width=200
        )
        self.list_name.param.watch(lambda _e: schedule(self.load), "value")
        self.value = pn.widgets.TextInput(label="Value", width=220, disabled=not can_edit)
        self.reason = pn.widgets.TextInput(label="Reason", width=260, disabled=not can_edit)
        self.add_button = pn.widgets.Button(
            label="Add", color="primary", width=100, disabled=not can_edit
        )
        self.remove_button = pn.widgets.Button(
            label="Remove selected", color="danger", width=150, disabled=not can_edit
        )
        self.next_button = pn.widgets.Button(label="Next page", width=110, disabled=True)
        self.add_button.on_click(lambda _e: schedule(self.add))
        self.remove_button.on_click(lambda _e: schedule(self.remove))
        self.next_button.on_click(lambda _e: schedule(self.load_next))
        self.table = read_only_table(
            pd.DataFrame(columns=ENTRY_COLUMNS),
            "list-entries",
            300,
            selectable=1,
            times={"added_at": f"added, {clock.WALL}", "expires_at": f"expires, {clock.WALL}"},
        )
        # -- snoozes
        self.rule_id = pn.widgets.TextInput(label="Rule id", width=180, disabled=not can_snooze)
        self.kind = pn.widgets.Select(
            label="Entity", options=list(SNOOZE_KINDS), width=120, disabled=not can_snooze
        )
        self.entity = pn.widgets.TextInput(label="Entity value", width=200, disabled=not can_snooze)
        self.until = pn.widgets.DatetimeInput(
            label=clock.label("Until, event time"), width=200, disabled=not can_snooze
        )
        self.snooze_reason = pn.widgets.TextInput(
            label="Snooze reason", width=240, disabled=not can_snooze
        )
        self.snooze_button = pn.widgets.Button(
            label="Snooze", color="warning", width=100, disabled=not can_snooze
        )
        self.lift_button = pn.widgets.Button(
            label="Lift selected", width=120, disabled=not can_snooze
        )
        self.snooze_button.on_click(lambda _e: schedule(self.snooze))
        self.lift_button.on_click(lambda _e: schedule(self.lift))
        self.snoozes = read_only_table(
            pd.DataFrame(columns=SNOOZE_COLUMNS),
            "rule-snoozes",
            240,
            selectable=1,
            times={"until": f"until, {clock.EVENT}"},
        )
        self.layout = pn.Column(
            self.message,
            safe.heading(
                'Allow / block lists (used in rules as: card_id in list("blocked_cards"))', 4
            ),
            pn.FlexBox(self.list_name, self.value, self.reason, self.add_button),
            self.table,
            pn.FlexBox(self.remove_button, self.next_button),
            safe.heading(
                "Rule snoozes: the rule's points do not count for that entity until then", 4
            ),
            pn.FlexBox(self.rule_id, self.kind, self.entity, self.until, self.snooze_reason),
            pn.FlexBox(self.snooze_button, self.lift_button),
            self.snoozes,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self.layout

    # -- loading ------------------------------------------------------------------------

    async def load(self, after_value: str | None = None) -> None:
        """The first page of the chosen list (or the page after ``after_value``), and the
        active snoozes."""
        name = self.list_name.value
        try:
            entries, snoozes = await asyncio.to_thread(self._read, name, after_value)
        except WorkbenchError as exc:
            self._say(f"Cannot read the lists: {exc}")
            return
        self.loaded = True
        with pn.io.hold():
            self.entries = entries
            self.table.value = _texts(entries, ENTRY_COLUMNS)
            self.next_button.disabled = len(entries) < PAGE_ROWS
            self.snoozes.value = _texts(snoozes, SNOOZE_COLUMNS)

    async def load_next(self) -> None:
        if len(self.entries):
            await self.load(after_value=str(self.entries["value"].iloc[-1]))

    def _read(self, name: str, after_value: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
        store = shared_store(self.dsn)
        entries = store.lists.entries(name, limit=PAGE_ROWS, after_value=after_value)
        return entries, store.snoozes.page(PAGE_ROWS)

    # -- edits (each through Actions, in a worker thread) ---------------------------------

    async def add(self) -> None:
        name, value = self.list_name.value, self.value.value
        done = await self._act(self.actions.add_to_list, name, value, self.reason.value)
        if done is not _FAILED:
            self._say(f"{value.strip()} added to {name}" if done else f"already in {name}")
            self.value.value = ""
            await self.load()

    async def remove(self) -> None:
        chosen = self.table.selection
        if not chosen or chosen[0] >= len(self.entries):
            self._say("Select an entry to remove.")
            return
        value = str(self.entries["value"].iloc[chosen[0]])
        done = await self._act(self.actions.remove_from_list, self.list_name.value, value)
        if done is not _FAILED:
            self._say(f"{value} removed from {self.list_name.value}")
            await self.load()

    async def snooze(self) -> None:
        until = self.until.value
        if until is None:
            self._say(f"Choose until when ({clock.label()}).")
            return
        until = clock.from_input(until)
        args = (self.rule_id.value.strip(), self.kind.value, self.entity.value, until)
        done = await self._act(self.actions.snooze, *args, self.snooze_reason.value)
        if done is not _FAILED:
            self._say(
                f"rule {args[0]} snoozed for {args[1]} {done['value']} until "
                f"{clock.stamp(done['until'])} ({clock.label()})"
            )
            await self.load()

    async def lift(self) -> None:
        chosen = self.snoozes.selection
        frame = self.snoozes.value
        if not chosen or chosen[0] >= len(frame):
            self._say("Select a snooze to lift.")
            return
        snooze_id = int(frame["id"].iloc[chosen[0]])
        done = await self._act(self.actions.lift_snooze, snooze_id)
        if done is not _FAILED:
            self._say(
                f"snooze {snooze_id} lifted" if done else f"snooze {snooze_id} was not active"
            )
            await self.load()

    async def _act(self, method, *args) -> Any:
        try:
            return await asyncio.to_thread(method, *args)
        except WorkbenchError as exc:  # AccessDenied, invalid input, the database
            self._say(f"Not done: {exc}")
            return _FAILED

    def _say(self, message: str) -> None:
        """The page's message line, escaped (it may quote a hostile value back)."""
        safe.show(self.message, safe.text(message))


_FAILED = object()


def _texts(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame`` as the page shows it: the columns, times as text in the display zone,
    missing as ''."""
    if frame.empty:
        return pd.DataFrame(columns=columns)
    out = frame[columns].copy()
    for name in columns:
        if pd.api.types.is_datetime64_any_dtype(out[name]):
            out[name] = clock.stamp(out[name]).fillna("")
        elif name != "id":
            out[name] = out[name].astype(object).where(out[name].notna(), "").astype(str)
    return out.reset_index(drop=True)
