"""The six fraud scenarios, each a vectorized rewrite of some rows of a batch in progress.

A batch starts as ``n`` genuine rows (:class:`Rows`, one array per field, sorted by time).
Scenarios then act in this order; a row belongs to at most one scenario:

1. ``large_amount``, ``account_takeover``: rewrite randomly chosen genuine rows in place.
2. ``impossible_travel``, ``card_testing``: *new* rows of the card of an anchor row (for
   impossible travel, the card's real previous transaction). They overwrite randomly chosen
   other genuine rows ("victims"), so the batch keeps ``n`` rows, each new row with its own
   timestamp. Card-testing rows due after the batch's end wait in :class:`Pending`.
3. ``leaked_card``, ``compromised_terminal``: time windows drawn once per simulated day
   (:class:`Windows`); genuine rows of a card/terminal inside a window are labelled.

Genuine online payments only go to the customer's favourite webshops; takeovers and card
testing take the card's next webshops on its :class:`ShopWalk`, so they are new to the card.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from workbench.sources.simulator.clock import DAY
from workbench.sources.simulator.population import (
    CONTINENT,
    ECOM,
    POS,
    USUAL_START,
    USUAL_WIDTH,
    Population,
    haversine_km,
)

SCENARIOS = (
    "",
    "large_amount",
    "compromised_terminal",
    "leaked_card",
    "card_testing",
    "impossible_travel",
    "account_takeover",
)
GENUINE, LARGE, COMPROMISED, LEAKED, TESTING, TRAVEL, TAKEOVER = range(7)
UNKNOWN_DEVICE = -1  # device number of card-present rows
# First and end country of each continent (continents are contiguous blocks of countries).
_CONTINENT_FIRST = np.searchsorted(CONTINENT, np.arange(CONTINENT.max() + 1), side="left")
_CONTINENT_END = np.searchsorted(CONTINENT, np.arange(CONTINENT.max() + 1), side="right")


@dataclass
class Rows:
    """Rows of a batch in progress, one array per field (``dev`` is a device number)."""

    t: np.ndarray
    cust: np.ndarray
    card: np.ndarray
    term: np.ndarray
    dev: np.ndarray
    amount: np.ndarray
    scen: np.ndarray

    def __len__(self) -> int:
        return len(self.t)

    def take(self, idx: np.ndarray) -> Rows:
        return Rows(*(getattr(self, name)[idx] for name in _FIELDS))

    def put(self, idx: np.ndarray, other: Rows) -> None:
        for name in _FIELDS:
            getattr(self, name)[idx] = getattr(other, name)

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        return Rows(*(np.concatenate([getattr(p, name) for p in parts]) for name in _FIELDS))

    @staticmethod
    def empty() -> Rows:
        f, i = np.empty(0, np.float64), np.empty(0, np.int64)
        return Rows(f, i, i, i, i, f, np.empty(0, np.int8))


_FIELDS = tuple(f.name for f in fields(Rows))


class Windows:
    """Per-entity fraud windows (compromised terminals, leaked cards), drawn day by day.

    Each entity holds its current window and the one before: a batch never spans a whole
    window, so two are enough to label any batch exactly. Every draw is logged.
    """

    def __init__(self, n: int, prob: float, days: float) -> None:
        self.prob, self.length = prob, days * DAY
        self.start = np.full(n, -np.inf)
        self.end = np.full(n, -np.inf)
        self.prev_start = self.start.copy()
        self.prev_end = self.end.copy()
        self.log_entity: list[np.ndarray] = []
        self.log_start: list[np.ndarray] = []
        # Entities with a window ending after ``_since``: the only ones active at t >= _since.
        self._live: np.ndarray | None = None
        self._since = np.inf

    def draw_day(self, rng: np.random.Generator, day_start: float) -> None:
        """Each entity starts a window this day with probability ``prob``, at a random time."""
        if self.prob <= 0.0:
            return
        idx = rng.choice(len(self.start), rng.binomial(len(self.start), self.prob), replace=False)
        begin = day_start + rng.random(len(idx)) * DAY
        fresh = self.end[idx] <= begin  # else: still compromised, the window is extended
        new = idx[fresh]
        self.prev_start[new], self.prev_end[new] = self.start[new], self.end[new]
        self.start[new] = begin[fresh]
        self.end[idx] = begin + self.length
        self.log_entity.append(idx)
        self.log_start.append(begin)
        self._live = None

    def active(self, entity: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Whether each ``(entity, t)`` lies inside one of the entity's windows.

        Few entities have a window that has not ended yet, so only their rows are tested.
        The set of them is kept until the next draw, or a call with an earlier ``t``.
        """
        out = np.zeros(len(entity), bool)
        if len(out) == 0:
            return out
        since = t.min()
        if self._live is None or not since >= self._since:  # (a NaN never reuses the set)
            self._live = np.maximum(self.end, self.prev_end) > since
            self._since = since
        rows = np.flatnonzero(self._live.take(entity))
        entity, t = entity[rows], t[rows]
        out[rows] = ((self.start[entity] <= t) & (t < self.end[entity])) | (
            (self.prev_start[entity] <= t) & (t < self.prev_end[entity])
        )
        return out

    def events(self) -> tuple[np.ndarray, np.ndarray]:
        """All draws so far: entity numbers and window start times (seconds)."""
        if not self.log_entity:
            return np.empty(0, np.int64), np.empty(0)
        return np.concatenate(self.log_entity), np.concatenate(self.log_start)


class Pending:
    """Card-testing rows already decided but due after the current batch's end."""

    def __init__(self) -> None:
        self.rows = Rows.empty()

    def add(self, rows: Rows) -> None:
        self.rows = Rows.concat([self.rows, rows])

    def pop_due(self, t_end: float) -> Rows:
        due = self.rows.t < t_end
        out, self.rows = self.rows.take(due), self.rows.take(~due)
        return out


class ShopWalk:
    """Which webshops a card uses off its favourites: never one it used before.

    Each card walks a fixed random order of all webshops from its own random offset; card
    testing and takeovers take the card's next positions. So a card never meets the same
    webshop twice this way, until it has walked past all of them (as many positions as there
    are webshops: about 20 card-testing bursts at the default 2000 terminals).
    """

    def __init__(self, rng: np.random.Generator, pop: Population) -> None:
        self.shops = pop.kind_start[ECOM] + pop.ecom_order
        self.next = rng.integers(0, max(1, len(self.shops)), pop.n_cards)
        self.favourites = pop.usual[:, USUAL_START[ECOM] :]

    def take(self, card: np.ndarray, width: np.ndarray) -> np.ndarray:
        """``width[i]`` consecutive webshops for each ``card[i]`` (cards may repeat), flat."""
        if len(self.shops) == 0:
            return np.empty(0, np.int64)
        order = np.argsort(card, kind="stable")
        # Items of the same card take consecutive stretches: offset by the earlier items' widths.
        before = np.cumsum(width[order]) - width[order]
        group_start = np.r_[True, card[order][1:] != card[order][:-1]]
        base = np.maximum.accumulate(np.where(group_start, before, 0))
        start = np.empty(len(card), np.int64)
        start[order] = self.next[card[order]] + before - base
        np.add.at(self.next, card, width)
        pos = np.repeat(start, width) + _ranks(width)
        return self.shops[pos % len(self.shops)]

    def favourite(self, cust: np.ndarray, term: np.ndarray) -> np.ndarray:
        """Whether each ``term`` is one of customer ``cust``'s favourite webshops."""
        return (self.favourites[cust] == term[:, None]).any(axis=1)


def _ranks(size: np.ndarray) -> np.ndarray:
    """0, 1, .. size[i]-1 for each group, concatenated."""
    return np.arange(size.sum()) - np.repeat(np.cumsum(size) - size, size)


def large_amount(rng: np.random.Generator, rows: Rows, pop: Population, p: float) -> None:
    """(a) A share ``p`` of genuine rows get 10-50x the customer's typical amount, over 1000."""
    hit = np.flatnonzero((rows.scen == GENUINE) & (rng.random(len(rows)) < p))
    typical = pop.cust_amount[rows.cust[hit]]
    rows.amount[hit] = np.maximum(
        typical * rng.uniform(10, 50, len(hit)), rng.uniform(1050, 3000, len(hit))
    )
    rows.scen[hit] = LARGE


def account_takeover(
    rng: np.random.Generator,
    rows: Rows,
    pop: Population,
    p: float,
    next_device: int,
    walk: ShopWalk,
) -> int:
    """(f) New device + online merchant in a foreign country + high amount. Returns devices used.

    The merchant is the first foreign one among the card's next 8 webshops (see
    :class:`ShopWalk`); a row without one (a tiny world) stays genuine.
    """
    hit = np.flatnonzero((rows.scen == GENUINE) & (rng.random(len(rows)) < p))
    width = 8
    term, cust = walk.take(rows.card[hit], np.full(len(hit), width)), rows.cust[hit]
    if len(term) == 0:
        return 0
    term = term.reshape(len(hit), width)
    foreign = pop.term_country[term] != pop.cust_country[cust][:, None]
    foreign &= ~walk.favourite(np.repeat(cust, width), term.ravel()).reshape(term.shape)
    ok = foreign.any(axis=1)
    hit, term = hit[ok], term[ok, foreign[ok].argmax(axis=1)]
    typical = pop.cust_amount[rows.cust[hit]]
    rows.term[hit] = term
    rows.dev[hit] = next_device + np.arange(len(hit))
    rows.amount[hit] = np.maximum(
        typical * rng.uniform(8, 25, len(hit)), rng.uniform(400, 1500, len(hit))
    )
    rows.scen[hit] = TAKEOVER
    return len(hit)


def impossible_travel(
    rng: np.random.Generator, rows: Rows, pop: Population, p: float, t_end: float
) -> tuple[Rows, np.ndarray]:
    """(e) A card-present row on another continent shortly after the card's anchor row.

    The anchor is a card-present row (an online merchant's address says nothing about where
    the card is), and the new row comes before the card's next row in the batch, so the anchor
    is the card's real previous transaction. The delay is at most ``distance / 1500`` hours
    (and an hour), so the implied speed is over 1500 km/h; squeezing the row in before the
    next one or the batch end only makes it faster. Returns the new rows and the anchors.
    """
    order = _by_card_then_time(rows.card, rows.t, len(pop.card_customer))
    card, time = rows.card[order], rows.t[order]  # in (card, t) order: next row, same card?
    following = np.empty(len(rows))
    following[order] = np.append(np.where(card[1:] == card[:-1], time[1:], t_end), t_end)
    room = following - rows.t
    eligible = (rows.scen == GENUINE) & (room > 1e-2) & (pop.term_kind[rows.term] != ECOM)
    # The share is per transaction of the batch: draw among the eligible rows at a higher rate.
    p_eligible = min(1.0, p * len(rows) / max(1, eligible.sum()))
    anchors = np.flatnonzero(eligible & (rng.random(len(rows)) < p_eligible))
    cont = CONTINENT[pop.cust_country[rows.cust[anchors]]]
    lo = pop.kind_country_start[POS][_CONTINENT_FIRST[cont]]
    hi = pop.kind_country_start[POS][_CONTINENT_END[cont]]
    term, ok = _outside(rng, pop.kind_start[POS], pop.kind_start[POS + 1], lo, hi)
    anchors, term = anchors[ok], term[ok]
    a_term = rows.term[anchors]
    km = haversine_km(
        pop.term_lat[a_term], pop.term_lon[a_term], pop.term_lat[term], pop.term_lon[term]
    )
    delay = np.minimum(3600.0, km / 1500.0 * 3600.0) * rng.uniform(0.05, 1.0, len(anchors))
    t = rows.t[anchors] + np.minimum(delay, room[anchors] * rng.uniform(0.2, 0.9, len(anchors)))
    cust = rows.cust[anchors]
    new = Rows(
        t,
        cust,
        rows.card[anchors],
        term,
        np.full(len(t), UNKNOWN_DEVICE),
        pop.cust_amount[cust] * rng.uniform(1.0, 4.0, len(t)),
        np.full(len(t), TRAVEL, np.int8),
    )
    return new, anchors


def card_testing(
    rng: np.random.Generator,
    rows: Rows,
    pop: Population,
    p: float,
    next_device: int,
    walk: ShopWalk,
) -> tuple[Rows, np.ndarray]:
    """(d) Bursts of 5-15 tiny online payments at merchants new to the card, within minutes.

    A burst starts after an anchor row. Its merchants are the card's next webshops in its
    :class:`ShopWalk`, skipping the owner's favourites (the only webshops genuine rows use):
    ``size + 5`` are taken, at most 5 can be favourites. One new device per burst.
    Returns the new rows and the anchor row numbers.
    """
    anchors = np.flatnonzero((rows.scen == GENUINE) & (rng.random(len(rows)) < p))
    size = rng.integers(5, 16, len(anchors))
    width = size + USUAL_WIDTH[ECOM]
    term = walk.take(rows.card[anchors], width)
    if len(term) == 0:
        return Rows.empty(), np.empty(0, np.int64)
    burst = np.repeat(np.arange(len(anchors)), width)
    keep = ~walk.favourite(rows.cust[anchors][burst], term)
    keep &= _cumsum_by_group(keep.astype(np.float64), width) <= np.repeat(size, width)
    burst, term = burst[keep], term[keep]
    first = np.concatenate([[True], burst[1:] != burst[:-1]])
    gaps = np.where(first, rng.uniform(5.0, 120.0, len(burst)), rng.uniform(3.0, 30.0, len(burst)))
    new = Rows(
        rows.t[anchors][burst] + _cumsum_by_group(gaps, np.bincount(burst, minlength=len(size))),
        rows.cust[anchors][burst],
        rows.card[anchors][burst],
        term,
        next_device + burst,
        np.round(rng.uniform(0.5, 2.0, len(burst)), 2),
        np.full(len(burst), TESTING, np.int8),
    )
    return new, anchors


def _by_card_then_time(card: np.ndarray, t: np.ndarray, n_cards: int) -> np.ndarray:
    """``np.lexsort((t, card))``. Rows usually come in time order, and then a stable sort by
    card alone is the same order; with up to 65536 cards that is a radix sort (10x faster)."""
    if len(t) < 2 or not (t[1:] >= t[:-1]).all():
        return np.lexsort((t, card))
    return np.argsort(card.astype(np.uint16) if n_cards <= 1 << 16 else card, kind="stable")


def _cumsum_by_group(values: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Cumulative sums restarting at each group (groups are consecutive, of ``size`` each)."""
    total = np.concatenate([[0.0], np.cumsum(values)])
    return total[1:] - np.repeat(total[np.cumsum(size) - size], size)


def _outside(
    rng: np.random.Generator, start: int, stop: int, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A uniform terminal in ``[start, stop)`` outside each ``[lo, hi)``; ``ok`` where any."""
    others = (stop - start) - (hi - lo)
    ok = others > 0
    k = (rng.random(len(lo)) * np.maximum(others, 1)).astype(np.int64)
    term = start + k + np.where(start + k >= lo, hi - lo, 0)
    return term, ok
