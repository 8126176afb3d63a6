"""One batch's window queries against the two levels of a group's state.

The state of a group is split in two levels (see :mod:`workbench.features.group`): ``M``, the
big sorted main store, and ``R``, the recent rows (the unmerged delta plus this batch). Every
aggregate is computed for the batch rows ("queries", kept in R's main order, i.e. sorted by
(entity, ts, arrival)) as a combination of an M part and an R part. :class:`Queries` holds the
per-query lookups shared by all features of the group, and caches window bounds.

Bounds (all strict point-in-time): a window of width ``w`` for a query at ``t`` covers the rows
with ``t - w <= ts < t``; ``bound(w)`` gives the first row with ts >= t - w, so a window is
``[bound(w), bound(0))`` in each level.
"""

from __future__ import annotations

import numpy as np

from workbench.features.level import NO_TS, Level, lookup


def take(values: np.ndarray, idx: np.ndarray, ok: np.ndarray, fill) -> np.ndarray:
    """values[idx] where ok, else fill (safe on empty arrays and out-of-range idx)."""
    out = np.full(len(idx), fill, dtype=np.result_type(values.dtype, np.asarray(fill).dtype))
    if ok.any():
        out[ok] = values[idx[ok]]
    return out


def segment(ix, code: np.ndarray, found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) of each query's group in an index (0, 0 when the group is absent)."""
    g = len(ix.groups)
    start = np.where(found, ix.starts[np.minimum(code, g)], 0)
    end = np.where(found, ix.starts[np.minimum(code + 1, g)], 0)
    return start, end


class Queries:
    """Lookups of the batch rows (sorted) in M and R, with cached window bounds."""

    def __init__(self, M: Level, R: Level, qpos: np.ndarray):
        self.M, self.R = M, R
        self.pos = qpos  # position of each query row in R's main order (increasing)
        self.t = R.ts[qpos]
        self.h = R.h[qpos]
        self.key = R.main.key[qpos]  # sorted: (entity, ts) of the queries in R's key space
        self.rcode = R.main.code[qpos]
        self.mcode, self.mfound = lookup(M.main.groups, self.h)
        self._bounds: dict[tuple, np.ndarray] = {}
        self._cache: dict[object, object] = {}

    def __len__(self) -> int:
        return len(self.t)

    def cached(self, name, build):
        """A value computed once per batch and shared by the features that need it."""
        if name not in self._cache:
            self._cache[name] = build()
        return self._cache[name]

    def mb(self, offset_ns: int, side: str = "left") -> np.ndarray:
        """Bound at t - offset in M (see module docstring)."""
        k = ("M", offset_ns, side)
        if k not in self._bounds:
            self._bounds[k] = self.M.bound(
                self.M.main, self.mcode, self.mfound, self.t - offset_ns, side
            )
        return self._bounds[k]

    def rb(self, offset_ns: int, side: str = "left") -> np.ndarray:
        """Bound at t - offset in R."""
        k = ("R", offset_ns, side)
        if k not in self._bounds:
            found = np.ones(len(self), dtype=bool)
            self._bounds[k] = self.R.bound(self.R.main, self.rcode, found, self.t - offset_ns, side)
        return self._bounds[k]

    def window(self, w_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(lM, rM, lR, rR): the rows in [t - w, t) in each level."""
        return self.mb(w_ns), self.mb(0), self.rb(w_ns), self.rb(0)

    def previous(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The entity's last row with ts < t: (in R?, row index, found).

        Ties on ts go to R, whose rows arrived after M's, so "last" follows arrival order."""
        M, R = self.M, self.R
        rm, rr = self.mb(0), self.rb(0)
        start_m, _ = segment(M.main, self.mcode, self.mfound)
        ok_m = self.mfound & (rm > start_m)
        ok_r = rr > R.main.starts[self.rcode]
        ts_m = take(M.ts, rm - 1, ok_m, NO_TS)
        ts_r = take(R.ts, rr - 1, ok_r, NO_TS)
        in_r = ok_r & (ts_r >= ts_m)
        return in_r, np.where(in_r, rr - 1, rm - 1), ok_m | ok_r
