"""Cases: the analysts' unit of work — one per card while not closed — and their queue.

The batch write opens and updates cases (:mod:`workbench.storage.alerting`); this module is
the queue's reads and the analysts' writes. Through a store: ``store.cases.page(Filters())``.

The queue is keyset-paged: a page is ``limit`` rows after (or before) a cursor, the sort
value and id of the last (first) row shown, so page 500 costs what page 1 does and a case
arriving meanwhile never shifts a row onto two pages. Each sort has a partial index over
active cases (revision 0008). Counts per status, band and assignee are bounded (at most
:data:`COUNT_CAP` rows are counted per value: "10,000+"): counting up to 100,000 per value
took 1-3 s at a million active cases (benchmarks/bench_queue.py).

The analysts' writes (claim, release, assign, status, note, close) are in
:mod:`~workbench.storage.case_writes`, re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from workbench import bands
from workbench.errors import StorageError
from workbench.storage import tables
from workbench.storage.case_writes import (
    CaseHeld,
    claim,
    close,
    note,
    release,
    set_assignee,
    set_status,
)
from workbench.storage.frames import Source, execute, fetch

__all__ = [
    "CaseHeld",
    "Filters",
    "Page",
    "alerts",
    "claim",
    "close",
    "counts",
    "events",
    "get",
    "note",
    "page",
    "page_query",
    "release",
    "set_assignee",
    "set_status",
]

_C = tables.cases
ACTIVE = ("open", "investigating")
STATUSES = tables.CASE_STATUSES
COUNT_CAP = 10_000  # counted per value, then "10,000+" (measured: benchmarks/bench_queue.py)
# Sort name -> (column, descending); the id breaks ties in the same direction.
SORTS = {
    "score": ("max_score", True),
    "opened": ("opened_at", False),
    "sla": ("sla_due", False),
    "amount": ("max_amount", True),
}
COLUMNS = (
    "id", "card_id", "status", "assignee", "claimed_at", "opened_at", "updated_at", "closed_at",
    "sla_due", "outcome", "alert_count", "hit_count", "max_score", "band", "max_amount",
    "currency", "rules", "first_ts", "last_ts",
)  # fmt: skip


@dataclass(frozen=True)
class Filters:
    """What the queue shows. Empty values filter nothing; ``assignee`` is a login,
    ``"unassigned"`` or ``"me"`` (``user`` then says who "me" is). ``since``/``until``: the
    case's event-time span overlaps them. ``merchant`` (category) and ``terminal`` match a
    transaction attached to one of the case's alerts."""

    statuses: tuple[str, ...] = ACTIVE
    bands: tuple[str, ...] = ()
    rule: str | None = None
    score_min: float | None = None
    score_max: float | None = None
    amount_min: float | None = None
    amount_max: float | None = None
    card: str | None = None
    merchant: str | None = None
    terminal: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    assignee: str | None = None
    user: str | None = None

    def __post_init__(self) -> None:
        bad = set(self.statuses) - set(STATUSES)
        if bad or not self.statuses:
            raise StorageError(f"unknown case status {sorted(bad)}: use {', '.join(STATUSES)}")

    def where(self, *, skip: str = "") -> list[sa.ColumnElement]:
        """The conditions, without those of dimension ``skip`` (for that dimension's counts)."""
        c, conds = _C.c, []
        if skip != "status":
            if set(self.statuses) <= set(ACTIVE):
                conds.append(c.status != "closed")  # the partial indexes' predicate, verbatim
            if set(self.statuses) != set(STATUSES):
                conds.append(c.status.in_(self.statuses))
        if self.bands and skip != "band":
            conds.append(c.band.in_(self.bands))
        if self.rule:
            conds.append(c.rules.has_key(self.rule))
        for col, low, high in (
            (c.max_score, self.score_min, self.score_max),
            (c.max_amount, self.amount_min, self.amount_max),
        ):
            if low is not None:
                conds.append(col >= low)
            if high is not None:
                conds.append(col <= high)
        if self.card:
            conds.append(c.card_id == self.card)
        if self.since is not None:
            conds.append(c.last_ts >= self.since)
        if self.until is not None:
            conds.append(c.first_ts < self.until)
        if self.assignee and skip != "assignee":
            conds.append(_assignee(self.assignee, self.user))
        if self.merchant or self.terminal:
            conds.append(_attached(self.merchant, self.terminal))
        return conds


def _assignee(assignee: str, user: str | None) -> sa.ColumnElement:
    if assignee == "unassigned":
        return _C.c.assignee.is_(None)
    return _C.c.assignee == (user if assignee == "me" else assignee)


def _attached(merchant: str | None, terminal: str | None) -> sa.ColumnElement:
    """A transaction attached to one of the case's alerts matches (through the card's
    ``(card_id, ts)`` index of transactions)."""
    a, h, t = tables.alerts, tables.alert_hits, tables.transactions
    query = (
        sa.select(sa.literal(1))
        .select_from(a.join(h, h.c.alert_id == a.c.id))
        .join(t, (t.c.card_id == _C.c.card_id) & (t.c.ts == h.c.ts) & (t.c.tx_id == h.c.tx_id))
        .where(a.c.case_id == _C.c.id)
    )
    if merchant:
        query = query.where(t.c.merchant_category == merchant)
    if terminal:
        query = query.where(t.c.terminal_id == terminal)
    return query.exists()


@dataclass
class Page:
    """One page of the queue: its rows, and the cursors of the pages around it (``None``:
    nothing there)."""

    frame: pd.DataFrame
    sort: str
    next: tuple[Any, int] | None = None
    previous: tuple[Any, int] | None = None
    ids: list[int] = field(default_factory=list)


def page(
    source: Source,
    filters: Filters | None = None,
    sort: str = "score",
    *,
    after: tuple[Any, int] | None = None,
    before: tuple[Any, int] | None = None,
    limit: int = 50,
) -> Page:
    """A page of cases matching ``filters`` in ``sort`` order ('score', 'opened', 'sla',
    'amount'), after the cursor ``after`` or before ``before`` (``(sort value, id)`` of a row
    of the page next to it)."""
    query, limit = page_query(filters, sort, after=after, before=before, limit=limit)
    name = SORTS[sort][0]
    backwards = before is not None
    cursor = before if backwards else after
    frame = fetch(source, query, "cannot read the queue")
    more = len(frame) > limit
    frame = frame.iloc[:limit]
    if backwards:
        frame = frame.iloc[::-1]
    frame = frame.reset_index(drop=True)
    result = Page(frame, sort, ids=[int(i) for i in frame["id"]])
    if len(frame):
        first = (frame[name].iloc[0], int(frame["id"].iloc[0]))
        last = (frame[name].iloc[-1], int(frame["id"].iloc[-1]))
        if backwards:
            result.previous = first if more else None
            result.next = last
        else:
            result.next = last if more else None
            result.previous = first if cursor is not None else None
    return result


def page_query(
    filters: Filters | None = None,
    sort: str = "score",
    *,
    after: tuple[Any, int] | None = None,
    before: tuple[Any, int] | None = None,
    limit: int = 50,
) -> tuple[sa.Select, int]:
    """The statement :func:`page` runs (``limit + 1`` rows: one more says whether a page
    follows) and the limit used; for EXPLAIN (benchmarks/bench_queue.py)."""
    if sort not in SORTS:
        raise StorageError(f"unknown sort {sort!r}: use one of {', '.join(SORTS)}")
    filters = filters or Filters()
    name, desc = SORTS[sort]
    col, ident = _C.c[name], _C.c.id
    backwards = before is not None
    cursor = before if backwards else after
    query = sa.select(*(_C.c[c] for c in COLUMNS)).where(*filters.where())
    if cursor is not None:
        key = sa.tuple_(col, ident)
        mark = sa.tuple_(sa.literal(cursor[0], col.type), sa.literal(int(cursor[1])))
        query = query.where(key < mark if desc != backwards else key > mark)
    down = desc != backwards
    order = (col.desc(), ident.desc()) if down else (col.asc(), ident.asc())
    limit = max(1, min(int(limit), 500))
    return query.order_by(*order).limit(limit + 1), limit


def counts(source: Source, filters: Filters | None = None, cap: int = COUNT_CAP) -> dict:
    """``{"status": {...}, "band": {...}, "assignee": {"unassigned": n, "me": n}}``: how many
    cases each value would show with the other filters kept, each counted up to ``cap + 1``
    (more than ``cap`` reads as ``cap + 1``: show it as "cap+"). One statement."""
    filters = filters or Filters()
    columns = []
    dims = [("status", s, _C.c.status == s) for s in STATUSES]
    dims += [("band", b, _C.c.band == b) for b in bands.LABELS]
    dims += [("assignee", "unassigned", _assignee("unassigned", None))]
    if filters.user:
        dims += [("assignee", "me", _assignee("me", filters.user))]
    for dim, value, cond in dims:
        conds = filters.where(skip=dim)
        if dim == "status" and value != "closed":
            conds.append(_C.c.status != "closed")
        capped = sa.select(sa.literal(1)).where(*conds, cond).limit(cap + 1).subquery()
        columns.append(
            sa.select(sa.func.count()).select_from(capped).scalar_subquery().label(f"{dim}:{value}")
        )
    rows, names = execute(source, sa.select(*columns))
    out: dict[str, dict[str, int]] = {"status": {}, "band": {}, "assignee": {}}
    for label, n in zip(names, rows[0], strict=True):
        dim, value = label.split(":", 1)
        out[dim][value] = int(n)
    return out


def get(source: Source, case_id: int) -> dict | None:
    """One case as a dict, or None."""
    query = sa.select(*(_C.c[c] for c in COLUMNS)).where(_C.c.id == int(case_id))
    frame = fetch(source, query, f"cannot read case {case_id}")
    return None if frame.empty else frame.iloc[0].to_dict()


def events(source: Source, case_id: int, limit: int = 500) -> pd.DataFrame:
    """The case's timeline, oldest first (hits, notes, claims, status changes, the close)."""
    e = tables.case_events
    query = (
        sa.select(e.c.id, e.c.at, e.c.kind, e.c.actor, e.c.detail)
        .where(e.c.case_id == int(case_id))
        .order_by(e.c.at, e.c.id)
        .limit(int(limit))
    )
    return fetch(source, query, f"cannot read the timeline of case {case_id}")


def alerts(source: Source, case_id: int) -> pd.DataFrame:
    """The case's alerts, highest score first."""
    a = tables.alerts
    cols = ("id", "status", "disposition", "tx_id", "ts", "card_id", "risk_score", "band")
    query = (
        sa.select(*(a.c[c] for c in cols), a.c.hit_count, a.c.rules, a.c.last_ts)
        .where(a.c.case_id == int(case_id))
        .order_by(a.c.risk_score.desc(), a.c.id)
    )
    return fetch(source, query, f"cannot read the alerts of case {case_id}")
