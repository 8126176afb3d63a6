"""``time_since_fraud``: hours since an entity's latest *known* fraud, point-in-time.

A row at time t of entity e gets the hours from the newest fraud transaction of e (its ts)
that is known at t and not older than the feature's ``window`` (default 90 d), or NaN when
there is none. "Known at t" follows the label kind, as for ``fraud_count``:

- simulator / replayed labels (the batch's ``is_fraud``) with label delay D: ``ts <= t - D``
  (``ts < t`` with D = 0) — kept here, in a :class:`FraudLog` of the fraud rows seen;
- stored labels (``labels: analyst``): ``known_at < t`` and not superseded at t by a newer
  verdict — kept by :class:`workbench.features.labels.LabelBook`, which calls
  :func:`hours_since` too.

Both reduce to *events* (entity, ts, lo, hi): an event counts for a row at t when
``lo < t <= hi`` (``hi`` includes the window's end). Events are sorted by (entity, ts
descending), so the compiled :func:`latest` stops at the first event of the row's entity that
counts: usually the first one looked at.

The log takes each batch's fraud rows before answering it (a row never counts itself or a
later row: events need ``ts < t``), so a stream of sorted batches gives what one batch of the
whole history gives. The sorted events are rebuilt only once ``FOLD`` fresh ones (kept apart,
sorted with each batch's and searched apart) have come, which also drops events past every
window: frauds are rare, so that is every few large batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

from workbench.features.spec import FeatureSpec

_NS = 1_000_000_000
FOLD = 1024
"""Fresh fraud events kept apart before they are folded into the sorted ones."""


@njit(cache=True, nogil=True)
def latest(start, ts, lo, hi, code, t, out):  # pragma: no cover - compiled
    """For each query i of entity ``code[i]`` (-1: no event of it), the hours from the newest
    event ``e`` in ``start[c]:start[c + 1]`` (ts descending) with ``lo[e] < t[i] <= hi[e]`` and
    ``ts[e] < t[i]`` to ``t[i]``, into ``out[i]`` when that beats (is below) what it holds."""
    for i in range(len(t)):
        c = code[i]
        if c < 0:
            continue
        ti = t[i]
        for e in range(start[c], start[c + 1]):
            if ts[e] < ti and lo[e] < ti and ti <= hi[e]:
                h = (ti - ts[e]) / 3.6e12
                if not h >= out[i]:  # out is NaN or later
                    out[i] = h
                break


@dataclass
class Events:
    """Events sorted by (entity, ts descending), grouped per entity."""

    entities: np.ndarray  # sorted unique entity hashes (uint64)
    start: np.ndarray  # event range of each entity (len(entities) + 1)
    ts: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def of(cls, entity: np.ndarray, ts: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> Events:
        order = np.lexsort((-ts, entity))
        entity = entity[order]
        entities, first = np.unique(entity, return_index=True)
        start = np.append(first, len(entity)).astype(np.int64)
        return cls(entities, start, ts[order], lo[order], hi[order])


def hours_since(events: Events | None, t: np.ndarray, h: np.ndarray, ok: np.ndarray, out):
    """Lower ``out`` (hours, NaN: none yet) to the hours since the latest counting event of
    each row's entity (``h``: its hash, ``ok``: known)."""
    if events is None or not len(events.entities) or not ok.any():
        return
    code = np.searchsorted(events.entities, h)
    found = ok & (code < len(events.entities))
    found[found] = events.entities[code[found]] == h[found]
    code = np.where(found, code, -1).astype(np.int64)
    latest(events.start, events.ts, events.lo, events.hi, code, t, out)


class FraudLog:
    """The fraud rows (by the batch's ``is_fraud``) that ``time_since_fraud`` features of
    simulator labels read, per ``by`` column."""

    def __init__(self, specs: Sequence[FeatureSpec], lateness_s: float) -> None:
        self.specs = [s for s in specs if s.agg == "time_since_fraud" and s.labels is None]
        self.columns = sorted({s.by for s in self.specs})
        self.horizon_ns = {  # per column: its longest window
            c: round(max(s.window_s for s in self.specs if s.by == c) * _NS) for c in self.columns
        }
        self.lateness_ns = round(lateness_s * _NS)
        self.reset()

    def reset(self) -> None:
        empty = (np.empty(0, np.uint64), np.empty(0, np.int64))
        self.held = dict.fromkeys(self.columns, empty)  # (entity, ts) events, indexed
        self.fresh = dict.fromkeys(self.columns, empty)  # (entity, ts) events added since
        self._index: dict[str, Events] = {}

    @property
    def rows(self) -> int:
        return sum(len(e) for e, _ in (*self.held.values(), *self.fresh.values()))

    def compute(
        self,
        ts: np.ndarray,
        hashes: dict[str, np.ndarray],
        known: dict[str, np.ndarray],
        label: np.ndarray,
        commit: bool,
    ) -> dict[str, np.ndarray]:
        """Each spec's values for a batch (``label``: 1 fraud, 0 not, -1 unknown); with
        ``commit`` the batch's fraud rows are kept for later batches."""
        fraud = label == 1
        recent = {}
        for c in self.columns:
            mine = fraud & known[c]
            entity, at = self.fresh[c]
            recent[c] = (np.concatenate([entity, hashes[c][mine]]), np.concatenate([at, ts[mine]]))
        out = {}
        for s in self.specs:
            values = np.full(len(ts), np.nan)
            if len(self.held[s.by][0]):
                hours_since(self._main(s), ts, hashes[s.by], known[s.by], values)
            if len(recent[s.by][0]):
                events = self._events(s, *recent[s.by])
                hours_since(events, ts, hashes[s.by], known[s.by], values)
            out[s.name] = values
        if commit:
            self.fresh = recent
        return out

    def _events(self, s: FeatureSpec, entity: np.ndarray, at: np.ndarray) -> Events:
        d = round(s.label_delay_s * _NS)
        lo = at + d - 1 if d else at  # lo < t: ts + D <= t, or ts < t with no delay
        return Events.of(entity, at, lo, at + round(s.window_s * _NS))

    def _main(self, s: FeatureSpec) -> Events:
        found = self._index.get(s.name)
        if found is None:
            found = self._index[s.name] = self._events(s, *self.held[s.by])
        return found

    def evict(self, newest_ns: int) -> None:
        """Fold the fresh events into the sorted ones once they are many, dropping the events
        no row at or after ``newest_ns - lateness`` can count."""
        floor = newest_ns - self.lateness_ns
        for c in self.columns:
            if len(self.fresh[c][0]) < FOLD:
                continue
            entity = np.concatenate([self.held[c][0], self.fresh[c][0]])
            at = np.concatenate([self.held[c][1], self.fresh[c][1]])
            keep = at + self.horizon_ns[c] >= floor
            self.held[c] = (entity[keep], at[keep])
            self.fresh[c] = (np.empty(0, np.uint64), np.empty(0, np.int64))
            for s in self.specs:
                if s.by == c:
                    self._index.pop(s.name, None)
