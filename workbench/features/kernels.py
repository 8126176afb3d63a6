"""Vectorized building blocks of the window computations (no per-row Python).

- :class:`RangeMax`: maximum over many index ranges ``[l, r)`` of one array — block maxima with
  a sparse table over the blocks, plus masked gathers for the partial blocks at both ends, so a
  query costs O(block) whatever the range length and memory stays ~n.
- :func:`cover_count`: for many index ranges ``[lo, hi)`` over ``n`` slots, how many ranges
  cover each slot (difference array + cumsum): the "range-add" step of distinct counting.
- :func:`expand`: the (query, row) pairs of many ranges, for the rare ranges that must be
  walked row by row (still vectorized, cost = total length).
- :func:`mix64` / :func:`haversine_km`.
"""

from __future__ import annotations

import numpy as np

_BLOCK = 32
_OFFSETS = np.arange(_BLOCK, dtype=np.int64)


class RangeMax:
    """Range-maximum queries over a float64 array (``-inf`` for an empty range)."""

    def __init__(self, values: np.ndarray):
        n = len(values)
        nb = -(-n // _BLOCK)
        self.values = np.full(nb * _BLOCK + _BLOCK, -np.inf)
        self.values[:n] = values
        self.table = [self.values[: nb * _BLOCK].reshape(nb, _BLOCK).max(axis=1)]
        k = 1
        while 2 * k <= nb:
            prev = self.table[-1]
            self.table.append(np.maximum(prev[:-k], prev[k:]))
            k *= 2

    def _partial(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Max over [lo, hi) where hi - lo < block."""
        idx = lo[:, None] + _OFFSETS
        vals = np.where(idx < hi[:, None], self.values[idx], -np.inf)
        return vals.max(axis=1) if len(lo) else np.empty(0)

    def query(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Max of values[left[i]:right[i]] for each i."""
        if len(left) == 0:
            return np.empty(0)
        first = -(-left // _BLOCK)  # first whole block
        last = right // _BLOCK  # end of whole blocks
        head_end = np.minimum(right, first * _BLOCK)
        tail_start = np.maximum(head_end, last * _BLOCK)
        out = np.maximum(self._partial(left, head_end), self._partial(tail_start, right))
        whole = np.flatnonzero(first < last)
        if len(whole):
            b0, b1 = first[whole], last[whole]
            level = np.floor(np.log2(b1 - b0)).astype(np.int64)
            res = np.empty(len(whole))
            for lv in np.unique(level):  # at most log2(n) levels, not per row
                sel = level == lv
                t = self.table[lv]
                res[sel] = np.maximum(t[b0[sel]], t[b1[sel] - (1 << int(lv))])
            out[whole] = np.maximum(out[whole], res)
        return out


def cover_count(lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """Number of ranges [lo, hi) covering each slot 0..n-1 (empty ranges ignored)."""
    ok = lo < hi
    diff = np.bincount(lo[ok], minlength=n + 1) - np.bincount(hi[ok], minlength=n + 1)
    return np.cumsum(diff[:n])


def expand(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(range number, position) for every position of every range [left, right)."""
    lens = np.maximum(right - left, 0)
    owner = np.repeat(np.arange(len(left)), lens)
    ends = np.cumsum(lens)
    pos = np.arange(ends[-1] if len(ends) else 0) - np.repeat(ends - lens, lens)
    return owner, left[owner] + pos


def mix64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A well-mixed 64-bit hash of a pair of uint64 hashes (splitmix64 finalizer)."""
    x = a * np.uint64(0x9E3779B97F4A7C15) + b
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km (NaN where a coordinate is missing)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6371.0088 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
