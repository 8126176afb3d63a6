"""The case queue: filters, a keyset-paged table, bounded counts, bulk close, keyboard keys.

The queue reads one page at a time from PostgreSQL (:func:`workbench.storage.cases.page`):
the browser never holds more than a page, however many cases are open. Next/Previous move by
keyset cursor; changing a filter or the sort goes back to the first page. After an action
the *same* page is read again (same cursor) and the row at the same position selected: a
closed case leaves the active view, so the next one takes its place and is selected — the
page does not jump to the top.

Keys (outside text fields): ``j``/``↓`` next case, ``k``/``↑`` previous, ``]``/``[`` next
and previous page, ``c`` claim, ``f`` / ``n`` / ``v`` close the selected case as confirmed
fraud / false positive (not fraud) / valuable. :class:`KeyListener` sends the key name only,
and only while the queue is shown (a key on another tab does nothing).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pandas as pd
import panel as pn

from workbench import bands
from workbench.dashboard import clock, safe
from workbench.dashboard.keys import KeyListener
from workbench.dashboard.parts import read_only_table, schedule
from workbench.errors import WorkbenchError
from workbench.storage import cases, shared_store

log = logging.getLogger(__name__)

PAGE_ROWS = 50
COLUMNS = ["id", "status", "band", "score", "card_id", "alerts", "hits", "amount", "currency",
           "assignee", "opened", "sla_due", "rules"]  # fmt: skip


class CaseQueue(pn.viewable.Viewer):
    """The filter bar, the page of cases, paging, counts and bulk close."""

    def __init__(self, dsn: str, user: str, can_close: bool, **params: Any) -> None:
        super().__init__(**params)
        self.dsn, self.user = dsn, user
        self.current: int | None = None  # the selected case's id
        self.on_current: Callable[[int | None], Awaitable[None]] | None = None
        self.on_key: Callable[[str], Awaitable[None]] | None = None
        self.on_bulk_close: Callable[[list[int], str], Awaitable[None]] | None = None
        self.cursor: tuple[str, tuple[Any, int]] | None = None  # ("after"|"before", key)
        self.page: cases.Page | None = None
        self._counted: tuple[cases.Filters, dict] | None = None  # counts of these filters
        w = pn.widgets
        self.status = w.CheckButtonGroup(
            label="Status", options=list(cases.STATUSES), value=list(cases.ACTIVE)
        )
        self.band = w.CheckButtonGroup(label="Band", options=list(bands.LABELS), value=[])
        self.assignee = w.Select(
            label="Assignee", options=["anyone", "unassigned", "me"], value="anyone", width=120
        )
        self.sort = w.Select(label="Sort", options=list(cases.SORTS), value="score", width=110)
        self.rule = w.TextInput(label="Rule id", width=130)
        self.card = w.TextInput(label="Card id", width=130)
        self.merchant = w.TextInput(label="Merchant category", width=130)
        self.terminal = w.TextInput(label="Terminal", width=130)
        self.score = w.RangeSlider(label="Score", start=0, end=100, value=(0, 100), step=1)
        self.amount_min = w.FloatInput(label="Amount ≥", value=None, width=110)
        self.amount_max = w.FloatInput(label="Amount ≤", value=None, width=110)
        self.since = w.DatetimeInput(label=clock.label("Events since"), value=None, width=170)
        self.until = w.DatetimeInput(label=clock.label("Events until"), value=None, width=170)
        for widget in (self.status, self.band, self.assignee, self.sort, self.rule, self.card,
                       self.merchant, self.terminal, self.score, self.amount_min,
                       self.amount_max, self.since, self.until):  # fmt: skip
            widget.param.watch(self._on_filter, "value")
        self.previous = w.Button(label="◀ Previous", disabled=True, width=110)
        self.next = w.Button(label="Next ▶", disabled=True, width=110)
        self.previous.on_click(lambda _e: schedule(self.previous_page))
        self.next.on_click(lambda _e: schedule(self.next_page))
        self.counts = safe.pane(css_classes=["case-counts"])
        self.message = safe.pane(css_classes=["queue-message"])
        self.table = read_only_table(
            pd.DataFrame(columns=COLUMNS),
            "case-queue",
            520,
            selectable="checkbox",
            times={"opened": "opened", "sla_due": "due"},  # wall clock, in the display zone
        )
        self.table.param.watch(self._on_selection, "selection")
        self.bulk = w.Select(
            label="Close the ticked cases as",
            options=["confirmed_fraud", "false_positive", "valuable"],
            value="false_positive",
            width=170,
            disabled=not can_close,
        )
        self.bulk_button = w.Button(label="Close ticked", color="warning", width=130)
        self.bulk_button.disabled = not can_close
        self.bulk_button.on_click(lambda _e: schedule(self.close_ticked))
        self.keys = KeyListener()
        self.keys.param.watch(self._on_key, "presses")
        wrap = functools.partial(pn.FlexBox, flex_wrap="wrap", sizing_mode="stretch_width")
        self._layout = pn.Column(
            wrap(self.status, self.band, self.assignee, self.sort),
            wrap(self.rule, self.card, self.merchant, self.terminal),
            wrap(self.score, self.amount_min, self.amount_max, self.since, self.until),
            self.counts,
            wrap(self.previous, self.next, self.bulk, self.bulk_button),
            self.message,
            self.table,
            self.keys,
            sizing_mode="stretch_width",
            css_classes=["case-queue-page"],
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # -- reading ------------------------------------------------------------------------

    def filters(self) -> cases.Filters:
        """The filter widgets as :class:`~workbench.storage.cases.Filters` (bounded text)."""
        low, high = self.score.value
        assignee = None if self.assignee.value == "anyone" else self.assignee.value
        return cases.Filters(
            statuses=tuple(self.status.value) or cases.ACTIVE,
            bands=tuple(self.band.value),
            rule=_text(self.rule.value),
            card=_text(self.card.value),
            merchant=_text(self.merchant.value),
            terminal=_text(self.terminal.value),
            score_min=None if low <= 0 else float(low),
            score_max=None if high >= 100 else float(high),
            amount_min=self.amount_min.value,
            amount_max=self.amount_max.value,
            since=clock.from_input(self.since.value),
            until=clock.from_input(self.until.value),
            assignee=assignee,
            user=self.user,
        )

    async def refresh(self, *, keep_position: bool = True, recount: bool = True) -> None:
        """Read the current page again (same cursor) and select the row at the position
        selected before (the next case once the selected one has left the view). Counts
        are read again unless ``recount`` is false and the filters are unchanged (paging)."""
        position = self._position() if keep_position else 0
        filters, sort = self.filters(), self.sort.value
        where, key = self.cursor or ("after", None)
        known = self._counted[1] if self._counted and self._counted[0] == filters else None
        try:
            page, counted = await asyncio.to_thread(
                self._read, filters, sort, where, key, None if recount else known
            )
        except WorkbenchError as exc:
            safe.show(self.message, safe.html("<b>Cannot load the queue:</b> {}", exc))
            return
        self.page, self._counted = page, (filters, counted)
        rows = _rows(page.frame)
        with pn.io.hold():
            self.table.value = rows
            self.table.selection = []
            self.previous.disabled = page.previous is None
            self.next.disabled = page.next is None
            safe.show(self.counts, _counts_html(counted))
            safe.show(self.message, safe.EMPTY)
        chosen = min(position, len(rows) - 1) if len(rows) else None
        await self.choose(None if chosen is None else int(rows.iloc[chosen]["id"]))

    async def choose(self, case_id: int | None) -> None:
        """Make ``case_id`` the selected case and show it."""
        self.current = case_id
        if self.on_current is not None:
            await self.on_current(case_id)

    def _read(self, filters, sort, where, key, counted):
        store = shared_store(self.dsn)
        args = {where: key} if key is not None else {}
        page = store.cases.page(filters, sort, limit=PAGE_ROWS, **args)
        return page, counted if counted is not None else store.cases.counts(filters)

    def _position(self) -> int:
        if self.page is None or self.current is None or self.current not in self.page.ids:
            return 0
        return self.page.ids.index(self.current)

    async def next_page(self) -> None:
        if self.page is not None and self.page.next is not None:
            self.cursor = ("after", self.page.next)
            await self.refresh(keep_position=False, recount=False)

    async def previous_page(self) -> None:
        if self.page is not None and self.page.previous is not None:
            self.cursor = ("before", self.page.previous)
            await self.refresh(keep_position=False, recount=False)

    async def step(self, delta: int) -> None:
        """Select the next (+1) or previous (-1) case, turning the page at its ends."""
        if self.page is None or not self.page.ids:
            return
        position = self._position() + delta
        if position >= len(self.page.ids):
            await self.next_page()
        elif position < 0:
            if self.page.previous is not None:
                await self.previous_page()
                await self.choose(self.page.ids[-1] if self.page.ids else None)
        else:
            await self.choose(self.page.ids[position])

    async def close_ticked(self) -> None:
        ticked = self.ticked()
        if not ticked:
            safe.show(self.message, safe.html("Tick the cases to close first."))
            return
        if self.on_bulk_close is not None:
            await self.on_bulk_close(ticked, self.bulk.value)

    def ticked(self) -> list[int]:
        frame = self.table.value
        return [int(frame.iloc[i]["id"]) for i in self.table.selection if i < len(frame)]

    # -- callbacks ----------------------------------------------------------------------

    def _on_filter(self, _event) -> None:
        self.cursor = None  # a new filter or sort starts at the first page
        schedule(functools.partial(self.refresh, keep_position=False))

    def _on_selection(self, event) -> None:
        rows, frame = event.new, self.table.value
        if rows and rows[-1] < len(frame):  # the last ticked row is the one shown
            case_id = int(frame.iloc[rows[-1]]["id"])
            if case_id != self.current:
                schedule(functools.partial(self.choose, case_id))

    def _on_key(self, _event) -> None:
        key = self.keys.key
        if key in ("j", "ArrowDown"):
            schedule(functools.partial(self.step, 1))
        elif key in ("k", "ArrowUp"):
            schedule(functools.partial(self.step, -1))
        elif key == "]":
            schedule(self.next_page)
        elif key == "[":
            schedule(self.previous_page)
        elif self.on_key is not None:
            schedule(functools.partial(self.on_key, key))


def _text(value: str | None) -> str | None:
    value = (value or "").strip()
    return value[:200] or None


def _rows(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    return pd.DataFrame(
        {
            "id": frame["id"].astype("int64"),
            "status": frame["status"],
            "band": frame["band"],
            "score": frame["max_score"].round(1),
            "card_id": frame["card_id"],
            "alerts": frame["alert_count"].astype("int64"),
            "hits": frame["hit_count"].astype("int64"),
            "amount": frame["max_amount"].astype("float64"),
            "currency": frame["currency"].fillna("").astype(str),
            "assignee": frame["assignee"].fillna(""),
            "opened": clock.stamp(frame["opened_at"], clock.MINUTES),
            "sla_due": clock.stamp(frame["sla_due"], clock.MINUTES),
            "rules": [", ".join(sorted(r or {})) for r in frame["rules"]],
        }
    )


def _count(n: int) -> str:
    return f"{cases.COUNT_CAP:,}+" if n > cases.COUNT_CAP else f"{n:,}"


def _counts_html(counted: dict[str, dict[str, int]]) -> safe.Html:
    parts = []
    for dim in ("status", "band", "assignee"):
        values = ", ".join(f"{k} {_count(n)}" for k, n in counted[dim].items())
        parts.append(safe.html("<span><b>{}</b>: {}</span>", dim, values))
    return safe.join(parts, safe.html(" &nbsp;·&nbsp; "))
