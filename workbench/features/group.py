"""The window state and features of one ``by`` column (all specs sharing it share the work).

State is two levels (:mod:`workbench.features.level`):

- ``M``, the main store: sorted, with derived arrays (prefix sums, range-max tables,
  composite indexes) built once per merge and reused by every batch;
- ``D``, the delta: the rows of the batches since the last merge, also a sorted level.

Per batch, ``R = merge(D, batch)`` (linear), every feature is computed for the batch rows from
M and R (see :mod:`workbench.features.aggregates`), and R becomes the new delta. When the
delta outgrows ~sqrt(2·|M|·batch) rows it is merged into M (linear in |M|, so amortized
O(batch) per batch) and rows are evicted.

That merge is the one expensive step of a batch (hundreds of ms on a big M). A caller with
idle time between batches can defer it (``commit(..., defer=True)``) and run it later with
:meth:`Group.maintain`; values never depend on when (or whether) M and D are merged. A merge
deferred for more than ``MAX_DEFERRED`` batches is done anyway, so state stays bounded.

Eviction (at merge time) keeps the rows with ts >= newest - (longest horizon of the group's
specs + allowed lateness), where "newest" is the newest ts seen. For the previous-transaction
features it also keeps, per entity, the row(s) a future query could still need as "previous":
the last row before the newest ones, for up to ``PREVIOUS_LOOKBACK_S``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from workbench.features import aggregates as agg
from workbench.features.kernels import mix64
from workbench.features.level import Level
from workbench.features.queries import Queries
from workbench.features.spec import LABEL_AWARE, MAX_WINDOW_S, PREVIOUS, FeatureSpec

PREVIOUS_LOOKBACK_S = MAX_WINDOW_S
"""Previous-transaction features look back at most this far (90 days); older means none."""

MIN_DELTA = 16_384  # never merge into M more often than every this many rows
MAX_DEFERRED = 4  # batches a due merge may wait for maintain() before compute does it

_NS = 1_000_000_000


@dataclass
class BatchArrays:
    """A batch as the arrays the engine needs (rows in input order)."""

    n: int
    ts: np.ndarray  # int64 ns
    hashes: dict[str, np.ndarray]  # column -> uint64 hash of its value
    known: dict[str, np.ndarray]  # column -> value is not missing
    cols: dict[str, np.ndarray]  # cents, sq*, amount, label, lat, lon


def _ns(seconds: float) -> int:
    return round(seconds * _NS)


class Group:
    """Window state and feature computation for the specs of one ``by`` column."""

    def __init__(self, by: str, specs: list[FeatureSpec], lateness_s: float):
        self.by = by
        self.specs = specs
        aggs = {s.agg for s in specs}
        dtypes: dict[str, np.dtype] = {}
        if aggs & {"sum", "mean", "std"}:
            dtypes["cents"] = np.dtype(np.int64)
        if "std" in aggs:
            dtypes.update({k: np.dtype(np.int64) for k in ("sq2", "sq1", "sq0")})
        if aggs & {"max", "min"}:
            dtypes["amount"] = np.dtype(np.float64)
        if aggs & LABEL_AWARE:
            dtypes["label"] = np.dtype(np.int8)
        if aggs & {"distance_km", "speed_kmh"}:
            dtypes.update(lat=np.dtype(np.float64), lon=np.dtype(np.float64))
        self.dtypes = dtypes
        self.comps = sorted({s.of for s in specs if s.agg in ("distinct", "is_new")})
        self.distinct_of = sorted({s.of for s in specs if s.agg == "distinct"})
        self.has_previous = bool(aggs & set(PREVIOUS))
        self.lateness_ns = _ns(lateness_s)
        self.retention_ns = _ns(max(s.horizon_s for s in specs)) + self.lateness_ns
        self.lookback_ns = _ns(PREVIOUS_LOOKBACK_S)
        self.reset()

    def reset(self) -> None:
        self.M = Level.empty(self.dtypes, self.comps)
        self.D: Level | None = None
        self.deferred = 0  # batches committed since a merge became due (0: none due)
        self.newest_ns: int | None = None

    @property
    def rows(self) -> int:
        return len(self.M) + (len(self.D) if self.D is not None else 0)

    def compute(self, b: BatchArrays) -> tuple[dict[str, np.ndarray], Level | None]:
        """Feature values (input order) of the batch, and the new delta (not yet committed)."""
        rows = np.flatnonzero(b.known[self.by])
        out = {s.name: _missing(s, b.n) for s in self.specs}
        if len(rows) == 0:
            return out, self.D
        h = b.hashes[self.by][rows]
        cols = {k: b.cols[k][rows] for k in self.dtypes}
        comp_hashes = {}
        for of in self.comps:
            chash = mix64(h, b.hashes[of][rows])
            comp_hashes[of] = (chash, b.known[of][rows])
            cols[f"c:{of}"] = chash
        batch, perm = Level.build(h, b.ts[rows], cols, comp_hashes)
        for of in self.distinct_of:
            known = np.zeros(len(batch), dtype=bool)
            known[batch.comps[of].order] = True
            last_ts, nxt = agg.link_to_main(self.M, of, batch.cols[f"c:{of}"], known, batch.ts)
            batch.cols[f"lastM:{of}"] = last_ts
            batch.cols[f"nextM:{of}"] = nxt
        if self.D is None or len(self.D) == 0:
            R, qpos = batch, np.arange(len(batch))
        else:
            R, qpos = Level.merge(self.D, batch)
        q = Queries(self.M, R, qpos)
        src = rows[perm]
        for s in self.specs:
            out[s.name][src] = self._feature(q, s)
        return out, R

    def _feature(self, q: Queries, s: FeatureSpec) -> np.ndarray:
        w = _ns(s.window_s)
        if s.agg == "count":
            return agg.count(q, w)
        if s.agg in ("sum", "mean", "std"):
            return agg.amount_stats(q, s.agg, w)
        if s.agg in ("max", "min"):
            return agg.extreme(q, s.agg, w)
        if s.agg in LABEL_AWARE:
            return agg.fraud(q, s.agg, w, _ns(s.label_delay_s))
        if s.agg in PREVIOUS:
            return agg.previous(q, s.agg, self.lookback_ns)
        if s.agg == "is_new":
            return agg.is_new(q, s.of, w)
        return agg.distinct(q, s.of, w)

    def commit(
        self, delta: Level | None, newest_ns: int, batch_rows: int, defer: bool = False
    ) -> None:
        """Keep ``delta`` as the new delta; merge it into M (and evict) when it is big enough,
        or, with ``defer``, leave a due merge to :meth:`maintain` (for ``MAX_DEFERRED``
        batches at most)."""
        self.D = delta
        self.newest_ns = newest_ns
        if delta is None:
            return
        limit = max(MIN_DELTA, int(math.sqrt(2.0 * len(self.M) * max(batch_rows, 1))))
        if self.deferred or len(delta) >= limit:
            self.deferred += 1
            if not defer or self.deferred > MAX_DEFERRED:
                self.merge(newest_ns)

    @property
    def due(self) -> bool:
        """A merge is pending (deferred by :meth:`commit`)."""
        return self.deferred > 0

    def maintain(self) -> bool:
        """Do a pending merge (if any) and build the new M's derived arrays (prefix sums,
        indexes) that the next batch would otherwise build; True if a merge was done."""
        if not self.deferred or self.newest_ns is None:
            return False
        self.merge(self.newest_ns)
        cols = {f"{k}:{of}": np.dtype(t) for of in self.comps for k, t in _LINKS.items()}
        empty = Level.empty({**self.dtypes, **cols}, self.comps)
        q = Queries(self.M, empty, np.empty(0, dtype=np.int64))
        for s in self.specs:  # no queries: only the derived arrays of M are built
            self._feature(q, s)
        return True

    def merge(self, newest_ns: int) -> None:
        """Merge the delta into M and evict rows no future in-time query can use."""
        if self.D is None:
            self.deferred = 0
            return
        floor = newest_ns - self.lateness_ns

        def keep(ts, code):
            kept = ts >= newest_ns - self.retention_ns
            if self.has_previous and len(ts):
                # A row is "previous" of a future query (t >= newest - lateness) if the next
                # row of its entity is not older than that; past the lookback it is no use.
                next_ts = np.full(len(ts), np.iinfo(np.int64).max)
                next_ts[:-1] = np.where(code[1:] == code[:-1], ts[1:], next_ts[:-1])
                kept |= (next_ts >= floor) & (ts >= floor - self.lookback_ns)
            return kept

        self.M, _ = Level.merge(self.M, self.D, keep)
        self.D = None
        self.deferred = 0


_LINKS = {"c": np.uint64, "lastM": np.int64, "nextM": np.int64}  # per-of columns of R


def _missing(s: FeatureSpec, n: int) -> np.ndarray:
    """Values for rows with no entity (and the dtype of the column)."""
    if s.type == "bool":
        return np.zeros(n, dtype=bool)
    return np.full(n, np.nan if s.nullable else 0.0)
