"""One case (:class:`CaseView`) and the Alerts page as the case queue (:class:`CasesPage`).

The case view shows who holds the case and its SLA, the buttons an analyst works it with
(claim, release, investigating, close as confirmed fraud / false positive / valuable, a
note), its timeline (hits, notes, claims, the close) and its alerts — an
:class:`~workbench.dashboard.alerts_page.AlertsView` scoped to the case, whose ``detail``
explains the selected alert (why it fired, attached transactions, the card's history).

Every button goes through the session's :class:`~workbench.dashboard.actions.Actions`
(checked and audited on the server; the buttons' disabled state is a convenience). Stored
text — notes, names, card ids — reaches the page through :mod:`.safe` only.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

import pandas as pd
import panel as pn

from workbench.auth.roles import AccessDenied, Action, Identity, allowed
from workbench.dashboard import clock, safe
from workbench.dashboard.actions import Actions
from workbench.dashboard.alerts_page import DISPOSITIONS, AlertsView
from workbench.dashboard.parts import read_only_table, schedule
from workbench.dashboard.queue import CaseQueue
from workbench.dashboard.theme import fmt_money
from workbench.errors import WorkbenchError
from workbench.storage import shared_store

KEY_OUTCOMES = {"f": "confirmed_fraud", "n": "false_positive", "v": "valuable"}
# The case's close buttons (not the alert's "Confirmed fraud" / "False positive" wording).
CLOSE_LABELS = {
    "confirmed_fraud": "Close case: fraud",
    "false_positive": "Close case: not fraud",
    "valuable": "Close case: valuable",
}
TIMELINE_COLUMNS = ["at", "kind", "actor", "detail"]


class CaseView(pn.viewable.Viewer):
    """The selected case: header, actions, timeline and its alerts explained."""

    def __init__(self, dsn: str, identity: Identity, actions: Actions, **params: Any) -> None:
        super().__init__(**params)
        self.dsn, self.identity, self.actions = dsn, identity, actions
        self.case: dict[str, Any] | None = None
        self.on_changed = None  # async callable: the queue reloads after a change
        can_work = allowed(identity.role, Action.CASE_CLAIM)
        self.can_work = can_work
        w = pn.widgets
        self.header = safe.pane(
            safe.html("<p>Select a case in the queue.</p>"), css_classes=["case-header"]
        )
        self.message = safe.pane(css_classes=["case-message"])
        self.claim_button = w.Button(label="Claim", color="primary", width=100)
        self.release_button = w.Button(label="Release", width=100)
        self.investigate_button = w.Button(label="Investigating", width=120)
        self.claim_button.on_click(lambda _e: schedule(self.claim))
        self.release_button.on_click(lambda _e: schedule(self.release))
        self.investigate_button.on_click(lambda _e: schedule(self.investigate))
        self.close_buttons = {}
        for outcome, (_label, kind) in DISPOSITIONS.items():
            button = w.Button(label=CLOSE_LABELS[outcome], color=kind, width=180)
            button.on_click(functools.partial(self._on_close, outcome))
            self.close_buttons[outcome] = button
        self.note = w.TextAreaInput(label="Note", height=60, min_width=240, max_length=2000)
        self.note_button = w.Button(label="Add note", width=100)
        self.note_button.on_click(lambda _e: schedule(self.add_note))
        self.timeline = read_only_table(
            pd.DataFrame(columns=TIMELINE_COLUMNS),
            "case-timeline",
            160,
            times={"at": clock.WALL},
        )
        self.alerts = AlertsView(dsn, identity)
        self.alerts.queue.height = 150  # a case has few alerts
        self._enable(False)
        wrap = functools.partial(pn.FlexBox, flex_wrap="wrap", sizing_mode="stretch_width")
        self._layout = pn.Column(
            self.header,
            wrap(self.claim_button, self.release_button, self.investigate_button),
            wrap(*self.close_buttons.values()),
            wrap(self.note, self.note_button),
            self.message,
            safe.heading("Timeline", 4),
            self.timeline,
            safe.heading("Alerts of this case", 4),
            self.alerts.queue,
            self.alerts.detail,
            sizing_mode="stretch_width",
            css_classes=["case-view"],
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def _enable(self, active: bool) -> None:
        for button in (self.claim_button, self.release_button, self.investigate_button,
                       self.note_button, *self.close_buttons.values()):  # fmt: skip
            button.disabled = not (active and self.can_work)

    async def show(self, case_id: int | None, *, keep_message: bool = False) -> None:
        """Load case ``case_id`` (None: nothing selected)."""
        if case_id is None:
            self.case = None
            safe.show(self.header, safe.html("<p>No case selected.</p>"))
            self._enable(False)
            return
        try:
            case, events = await asyncio.to_thread(self._read, int(case_id))
        except WorkbenchError as exc:
            safe.show(self.message, safe.html("<b>Cannot load case {}:</b> {}", case_id, exc))
            return
        if case is None:
            safe.show(self.message, safe.html("Case {} no longer exists.", case_id))
            return
        self.case = case
        with pn.io.hold():
            safe.show(self.header, _header_html(case))
            self.timeline.value = _timeline_rows(events)
            self._enable(case["status"] != "closed")
            if not keep_message:
                safe.show(self.message, safe.EMPTY)
        await self.alerts.show_case(int(case_id))

    def _read(self, case_id: int):
        store = shared_store(self.dsn)
        return store.cases.get(case_id), store.cases.events(case_id)

    # -- actions ------------------------------------------------------------------------

    async def claim(self) -> None:
        await self._act(self.actions.claim_case, "Claimed case {} for {}.")

    async def release(self) -> None:
        await self._act(self.actions.release_case, "Released case {} ({}).")

    async def investigate(self) -> None:
        await self._act(
            lambda i: self.actions.set_case_status(i, "investigating"),
            "Case {} is being investigated ({}).",
        )

    async def add_note(self) -> None:
        text = self.note.value
        done = await self._act(lambda i: self.actions.note_case(i, text), "Note added to {} ({}).")
        if done:
            self.note.value = ""

    async def close(self, outcome: str) -> None:
        label = DISPOSITIONS[outcome][0]
        comment = self.note.value or None
        done = await self._act(
            lambda i: self.actions.close_case(i, outcome, comment),
            "Case {} closed as " + label + " by {}.",
            reload_queue=True,
        )
        if done:
            self.note.value = ""

    async def _act(self, call, said: str, *, reload_queue: bool = False) -> bool:
        if self.case is None:
            return False
        case_id = int(self.case["id"])
        try:
            await asyncio.to_thread(call, case_id)
        except AccessDenied as exc:
            safe.show(self.message, safe.html("<b>Not allowed:</b> {}", str(exc)))
            return False
        except WorkbenchError as exc:
            safe.show(self.message, safe.html("<b>Not done:</b> {}", str(exc)))
            return False
        message = safe.text(said.format(case_id, self.identity.user))
        if self.on_changed is not None and reload_queue:
            await self.on_changed(message)
        else:
            await self.show(case_id)
            safe.show(self.message, message)
        return True

    def _on_close(self, outcome: str, _event) -> None:
        schedule(functools.partial(self.close, outcome))


class CasesPage(pn.viewable.Viewer):
    """The Alerts tab: the case queue beside the selected case."""

    def __init__(self, dsn: str, identity: Identity, **params: Any) -> None:
        super().__init__(**params)
        self.identity = identity
        self.actions = Actions(identity, dsn)
        can_close = allowed(identity.role, Action.CASE_CLOSE)
        self.queue = CaseQueue(dsn, identity.user, can_close)
        self.case = CaseView(dsn, identity, self.actions)
        self.case.on_changed = self._after_close
        self.queue.on_key = self._on_key
        self.queue.on_bulk_close = self._bulk_close
        self.queue.on_current = self.case.show
        self._open_count: int | None = None
        # Side by side on a wide screen, one above the other on a narrow one.
        self.panel = pn.FlexBox(
            pn.Column(self.queue, sizing_mode="stretch_width", styles={"flex": "1 1 640px"}),
            pn.Column(self.case, sizing_mode="stretch_width", styles={"flex": "1 1 520px"}),
            flex_wrap="wrap",
            sizing_mode="stretch_width",
            css_classes=["cases-page"],
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self.panel

    async def refresh(self) -> None:
        await self.queue.refresh()  # shows the selected case

    def note_open_alerts(self, count: int) -> None:
        """Called by the live pull: the queue is not reloaded under the analyst's mouse."""
        self._open_count = count

    async def _after_close(self, message: safe.Html) -> None:
        await self.queue.refresh()  # the same page; the next case takes the closed one's row
        safe.show(self.case.message, message)

    async def _on_key(self, key: str) -> None:
        if key == "c":
            await self.case.claim()
        elif key in KEY_OUTCOMES:
            await self.case.close(KEY_OUTCOMES[key])

    async def _bulk_close(self, ids: list[int], outcome: str) -> None:
        try:
            done = await asyncio.to_thread(self.actions.close_cases, ids, outcome)
        except AccessDenied as exc:
            safe.show(self.queue.message, safe.html("<b>Not allowed:</b> {}", str(exc)))
            return
        except WorkbenchError as exc:
            safe.show(self.queue.message, safe.html("<b>Nothing closed:</b> {}", str(exc)))
            return
        await self.queue.refresh()
        safe.show(self.queue.message, safe.html("Closed {} case(s) as {}.", len(done), outcome))


def _header_html(case: dict[str, Any]) -> safe.Html:
    holder = case.get("assignee") if isinstance(case.get("assignee"), str) else None
    outcome = case.get("outcome") if isinstance(case.get("outcome"), str) else None
    currency = case.get("currency") if isinstance(case.get("currency"), str) else None
    return safe.join(
        [
            safe.html(
                "<h3>Case {} — {}{}</h3>",
                int(case["id"]),
                case["status"],
                safe.html(" ({})", outcome) if outcome else safe.EMPTY,
            ),
            safe.html(
                "<p>Card <b>{}</b>, max score <b>{:.1f}</b> ({}), {} alert(s), {} hit(s), "
                "largest amount {}. Held by <b>{}</b>. Opened {}, due {} ({}).</p>",
                case["card_id"],
                float(case["max_score"]),
                case["band"],
                int(case["alert_count"]),
                int(case["hit_count"]),
                fmt_money(float(case["max_amount"]), currency),
                holder or "nobody",
                clock.stamp(case["opened_at"], clock.MINUTES),
                clock.stamp(case["sla_due"], clock.MINUTES),
                clock.zone().key,
            ),
        ]
    )


def _timeline_rows(events: pd.DataFrame) -> pd.DataFrame:
    if events.empty:
        return pd.DataFrame(columns=TIMELINE_COLUMNS)
    details = []
    for d in events["detail"]:
        value = json.loads(d) if isinstance(d, str) else (d or {})
        details.append(value.get("text") or json.dumps(value, default=str)[:300])
    return pd.DataFrame(
        {
            "at": clock.stamp(events["at"]),
            "kind": events["kind"],
            "actor": events["actor"],
            "detail": details,
        }
    )
