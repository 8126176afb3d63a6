"""Features from stored labels (analysts', chargebacks'), point-in-time by their known_at.

A ``{agg: fraud_rate, by: terminal_id, window: 28d, labels: analyst}`` feature of a row at
time t for entity e counts the labels of source ``analyst`` whose transaction belongs to e,
whose ``known_at < t`` (known strictly before the row) and whose transaction's
``t - window <= ts`` (inside the window, as every window of :mod:`.engine`);
``fraud_count`` = the fraud ones, ``fraud_rate`` = fraud / counted (NaN when none). With
``ending: E`` the transaction must be inside the lagged window, ``t - E - window <= ts <= t -
E``. ``time_since_fraud`` takes the newest fraud label counting at t (:mod:`.since`).

Labels are kept with their history (:mod:`workbench.storage.labels`): when a newer row for
the same (tx_id, source) arrives, the older one stops counting at the newer one's
``known_at`` — so a row scored between the two sees the old verdict, in the stream and in a
backtest alike. Each label is thus an interval of row times ``known_at < t <= min(ts +
window, superseded_at)``; the count for a row is (#intervals opened before t) − (#closed
before t) over its entity, answered with two ``searchsorted`` over (entity, time) keys —
vectorized over the batch, no per-row Python.

The book is fed label rows as they appear (:meth:`LabelBook.add`, in id order: the
pipeline reads new rows by id, a backtest all of them up front) and forgets labels no
future row can count (:meth:`LabelBook.evict`), so memory stays bounded by the labels of
the longest window. Values never depend on when labels were added, as long as each label
was added before the first row that may count it (a label whose known_at is t0 before every
row with ts > t0); that is what makes stream and backtest agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workbench.features.since import Events, hours_since
from workbench.features.spec import FeatureSpec

_NS = 1_000_000_000
_NEVER = np.iinfo(np.int64).max


class LabelBook:
    """The stored labels the ``labels:`` features of one engine need, with their history."""

    def __init__(self, specs: Sequence[FeatureSpec], lateness_s: float) -> None:
        self.specs = [s for s in specs if s.labels is not None]
        self.sources = sorted({s.labels for s in self.specs})
        self.columns = sorted({s.by for s in self.specs})
        self.horizon_ns = round(max((s.horizon_s for s in self.specs), default=0) * _NS)
        self.lateness_ns = round(lateness_s * _NS)
        self.reset()

    def reset(self) -> None:
        self.id = np.empty(0, np.int64)
        self.key = np.empty(0, np.uint64)  # hash of (tx_id, source): versions share it
        self.source = np.empty(0, np.int64)  # index into self.sources
        self.ts = np.empty(0, np.int64)
        self.known = np.empty(0, np.int64)
        self.until = np.empty(0, np.int64)  # superseded at (the next version's known_at)
        self.fraud = np.empty(0, np.bool_)
        self.entity = {c: np.empty(0, np.uint64) for c in self.columns}
        self.has = {c: np.empty(0, np.bool_) for c in self.columns}
        self.last_id = 0
        self._cache: dict[str, _Index | Events | None] = {}
        self._kept = 0  # labels held after the last eviction

    @property
    def rows(self) -> int:
        return len(self.id)

    def add(
        self,
        ids: np.ndarray,
        key: np.ndarray,
        source: np.ndarray,
        ts: np.ndarray,
        known: np.ndarray,
        fraud: np.ndarray,
        entity: dict[str, tuple[np.ndarray, np.ndarray]],
    ) -> None:
        """Add label rows (arrays of one length, ids increasing): ``source`` as text,
        ``ts``/``known`` int64 ns, ``entity[col] = (hash, known mask)``. Rows of sources no
        spec reads are dropped; a row already held (same id) is ignored."""
        source = np.asarray(source, dtype=object)
        wanted = np.isin(source, self.sources) & (np.asarray(ids) > self.last_id)
        if len(ids):
            self.last_id = max(self.last_id, int(np.max(ids)))
        if not wanted.any():
            return
        code = np.searchsorted(np.asarray(self.sources, dtype=object), source[wanted])
        self.id = np.concatenate([self.id, ids[wanted]])
        self.key = np.concatenate([self.key, key[wanted]])
        self.source = np.concatenate([self.source, code.astype(np.int64)])
        self.ts = np.concatenate([self.ts, ts[wanted]])
        self.known = np.concatenate([self.known, known[wanted]])
        self.until = np.concatenate([self.until, np.full(int(wanted.sum()), _NEVER)])
        self.fraud = np.concatenate([self.fraud, fraud[wanted]])
        for c in self.columns:
            h, k = entity[c]
            self.entity[c] = np.concatenate([self.entity[c], h[wanted]])
            self.has[c] = np.concatenate([self.has[c], k[wanted]])
        self._supersede(key[wanted])
        self._cache.clear()

    def _supersede(self, new_keys: np.ndarray) -> None:
        """Each version ends where the next version (by id) of its (tx_id, source) starts;
        only the (tx_id, source) pairs of the new rows can change."""
        touched = np.flatnonzero(np.isin(self.key, new_keys))
        order = touched[np.lexsort((self.id[touched], self.key[touched]))]
        same = self.key[order[1:]] == self.key[order[:-1]]
        older, newer = order[:-1][same], order[1:][same]
        self.until[older] = np.minimum(self.until[older], self.known[newer])

    def evict(self, newest_ns: int, force: bool = False) -> int:
        """Forget labels no row at or after ``newest_ns - lateness`` can count; how many.
        Such labels change no value, so this runs only once the book has doubled since the
        last eviction (or with ``force``): the sorted keys are not rebuilt every batch."""
        if not force and self.rows < max(2 * self._kept, 1024):
            return 0
        floor = newest_ns - self.lateness_ns
        keep = np.minimum(self.ts + self.horizon_ns, self.until) >= floor
        dropped = int(len(keep) - keep.sum())
        if dropped:
            self.id, self.key, self.source = self.id[keep], self.key[keep], self.source[keep]
            self.ts, self.known, self.until = self.ts[keep], self.known[keep], self.until[keep]
            self.fraud = self.fraud[keep]
            for c in self.columns:
                self.entity[c], self.has[c] = self.entity[c][keep], self.has[c][keep]
            self._cache.clear()
        self._kept = self.rows
        return dropped

    def compute(
        self, t: np.ndarray, hashes: dict[str, np.ndarray], known: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Each spec's values for rows at times ``t`` (int64 ns) with entity hashes."""
        out = {}
        for s in self.specs:
            if s.agg == "time_since_fraud":
                out[s.name] = np.full(len(t), np.nan)
                hours_since(self._events(s), t, hashes[s.by], known[s.by], out[s.name])
                continue
            n_all, n_fraud = self._count(s, t, hashes[s.by], known[s.by])
            if s.agg == "fraud_count":
                out[s.name] = n_fraud.astype(np.float64)
            else:
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[s.name] = np.where(n_all > 0, n_fraud / np.maximum(n_all, 1), np.nan)
        return out

    def _intervals(self, s: FeatureSpec, fraud_only: bool = False):
        """The spec's labels as the row times each counts for, ``lo < t <= hi`` (and their
        mask over the labels held)."""
        w, e = round(s.window_s * _NS), round(s.ending_s * _NS)
        mine = (self.source == self.sources.index(s.labels)) & self.has[s.by]
        if fraud_only:
            mine &= self.fraud
        lo = self.known[mine]
        if e:  # the lagged window starts counting a transaction E after it: t >= ts + E
            lo = np.maximum(lo, self.ts[mine] + e - 1)
        hi = np.minimum(self.ts[mine] + e + w, self.until[mine])
        return mine, lo, hi

    def _events(self, s: FeatureSpec) -> Events | None:
        """The spec's fraud labels as :mod:`.since` events, built once per change of them."""
        if s.name not in self._cache:
            mine, lo, hi = self._intervals(s, fraud_only=True)
            live = hi > lo
            self._cache[s.name] = (
                Events.of(self.entity[s.by][mine][live], self.ts[mine][live], lo[live], hi[live])
                if live.any()
                else None
            )
        return self._cache[s.name]

    def _index(self, s: FeatureSpec) -> _Index | None:
        """The spec's sorted keys over the labels held, built once per change of them."""
        found = self._cache.get(s.name)
        if found is not None:
            return found
        mine, lo, hi = self._intervals(s)
        live = hi > lo  # an empty interval (superseded before it was known) never counts
        if not live.any():
            return None
        lo, hi = lo[live], hi[live]
        ent, fraud = self.entity[s.by][mine][live], self.fraud[mine][live]
        entities, e_code = np.unique(ent, return_inverse=True)
        times, t_code = np.unique(np.concatenate([lo, hi]), return_inverse=True)
        m = np.int64(2 * len(times) + 1)
        n = len(lo)
        # a label time is 2 * its rank; a row time between two label times gets the odd
        # number between them (see _count), so key order is (entity, time) order exactly
        k_lo = e_code.astype(np.int64) * m + 2 * t_code[:n]
        k_hi = e_code.astype(np.int64) * m + 2 * t_code[n:]
        found = _Index(
            entities=entities,
            times=times,
            m=m,
            opened=(np.sort(k_lo), np.sort(k_lo[fraud])),
            closed=(np.sort(k_hi), np.sort(k_hi[fraud])),
        )
        self._cache[s.name] = found
        return found

    def _count(
        self, s: FeatureSpec, t: np.ndarray, h: np.ndarray, ok: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        n_all = np.zeros(len(t), np.int64)
        n_fraud = np.zeros(len(t), np.int64)
        index = self._index(s)
        if index is None or not ok.any():
            return n_all, n_fraud
        e = np.searchsorted(index.entities, h)
        has = ok & (e < len(index.entities))
        has[has] = index.entities[e[has]] == h[has]  # entities without labels count 0
        j = np.searchsorted(index.times, t)
        equal = np.zeros(len(t), bool)
        inside = j < len(index.times)
        equal[inside] = index.times[j[inside]] == t[inside]
        k_t = e.astype(np.int64) * index.m + 2 * j - (~equal)
        for dest, opened, closed in zip((n_all, n_fraud), index.opened, index.closed, strict=True):
            # lo < t: opened keys strictly below the row's key; hi < t likewise; for other
            # entities both or neither are below, so they cancel.
            dest[:] = np.searchsorted(opened, k_t, "left") - np.searchsorted(closed, k_t, "left")
        n_all[~has] = 0
        n_fraud[~has] = 0
        return n_all, n_fraud


@dataclass
class _Index:
    """One spec's labels as sorted (entity, time) keys: opened (known_at) and closed
    (window end or superseded) keys, all and fraud only."""

    entities: np.ndarray  # sorted unique entity hashes
    times: np.ndarray  # sorted unique label times (ns)
    m: np.int64  # keys per entity
    opened: tuple[np.ndarray, np.ndarray]
    closed: tuple[np.ndarray, np.ndarray]
