"""Exact max, min and quantiles of a window's amounts, for the compiled passes (:mod:`.passes`).

Each window that a ``max``/``min``/``median``/``percentile`` feature reads keeps, per entity,
the amounts of its rows *sorted*: a row entering the window is inserted at its place (binary
search, then the larger amounts move up one), a row leaving it is deleted the same way. So a
query reads its max, min and quantiles off the ends and the two nearest ranks, whatever the
window holds, and the upkeep per row is a binary search and a move of contiguous floats (no
walk over the window's rows, which are scattered in memory). Missing amounts are not stored,
only counted: any of them in the window makes every one of these values NaN.

The sorted amounts of one (entity, window) are a block of a shared *pool* of floats, of 2**c
floats (size class c >= ``MIN_CLASS``). A full block moves to one of the next class; a block
a quarter full moves to one of the class below, and an empty window gives its block back, so
the pool holds about what the windows hold. Freed blocks go on a free list per class (linked
through their first float; offsets are exact in a float below 2**53). The pool grows by
doubling, between calls of the compiled pass (which stops when it lacks room).

:func:`quantile` interpolates between the two nearest ranks exactly as ``numpy.quantile``
(its default ``linear`` method) does, bit for bit, so a test can hold the engine to numpy
itself. A late row's own query (:func:`passes._late`) still gathers its window's amounts by
walking the entity's rows and sorts them (:func:`percentiles`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# per (entity, sorted window), in the entity record: block offset in the pool, size class
# (0: no block), amounts stored (not missing), missing amounts in the window
SB_OFF, SB_CLASS, SB_N, SB_NAN = range(4)
SB_FIELDS = 4
MIN_CLASS = 3  # the smallest block: 8 floats
# pool meta: the high-water mark, then the head of each class's free list (-1: empty)
PM_HIGH = 0
PM_FREE = 1
PM_FIELDS = PM_FREE + 63


def new_pool() -> tuple[np.ndarray, np.ndarray]:
    """An empty pool of sorted blocks and its meta."""
    meta = np.full(PM_FIELDS, -1, dtype=np.int64)
    meta[PM_HIGH] = 0
    return np.empty(1 << 10), meta


@njit(inline="always")
def quantile(v, m, q):  # pragma: no cover - compiled
    """The q-quantile of the sorted ``v[:m]`` exactly as ``numpy.quantile`` (linear) gives
    it, bit for bit: NaN when m == 0 or any value is NaN (NaN sorts last)."""
    return quantile_at(v, 0, m, q)


@njit(inline="always")
def quantile_at(v, off, m, q):  # pragma: no cover - compiled
    """:func:`quantile` of the sorted ``v[off:off + m]``."""
    if m == 0 or v[off + m - 1] != v[off + m - 1]:
        return np.nan
    vi = (m - 1) * q
    if vi >= m - 1:
        return v[off + m - 1]
    lo = math.floor(vi)
    g = vi - lo
    a = v[off + lo]
    d = v[off + lo + 1] - a
    return v[off + lo + 1] - d * (1.0 - g) if g >= 0.5 else a + d * g


@njit(inline="always")
def _alloc(pool, pm, c):  # pragma: no cover - compiled
    """The offset of a free block of class c, or -1 when the pool has no room for one
    (nothing was changed: the pass stops, its caller grows the pool and calls it again; a
    pass never replaces the pool itself, see :func:`passes.step`)."""
    off = pm[PM_FREE + c]
    if off >= 0:
        pm[PM_FREE + c] = np.int64(pool[off])
        return off
    off = pm[PM_HIGH]
    end = off + (1 << c)
    if end > len(pool):
        return -1
    pm[PM_HIGH] = end
    return off


@njit(inline="always")
def _move(pool, pm, ent, s, b, n, c):  # pragma: no cover - compiled
    """Move the n sorted amounts of ``ent[s, b:]`` to a new block of class c; False (and
    nothing changed) when the pool has no room for it."""
    old, oc = ent[s, b + SB_OFF], ent[s, b + SB_CLASS]
    off = _alloc(pool, pm, c)
    if off < 0:
        return False
    for i in range(n):
        pool[off + i] = pool[old + i]
    if oc > 0:
        pool[old] = pm[PM_FREE + oc]
        pm[PM_FREE + oc] = old
    ent[s, b + SB_OFF] = off
    ent[s, b + SB_CLASS] = c
    return True


@njit(inline="always")
def sorted_add(pool, pm, ent, s, b, v):  # pragma: no cover - compiled
    """Insert amount v into the sorted amounts of ``ent[s, b:]`` (a missing one is only
    counted); 0, or the floats its block needs when the pool has no room for it (then
    nothing was changed: grow the pool and call again)."""
    if v != v:
        ent[s, b + SB_NAN] += 1
        return 0
    n = ent[s, b + SB_N]
    c = ent[s, b + SB_CLASS]
    if c == 0:
        if not _move(pool, pm, ent, s, b, 0, MIN_CLASS):
            return 1 << MIN_CLASS
    elif n == 1 << c and not _move(pool, pm, ent, s, b, n, c + 1):
        return 1 << (c + 1)
    off = ent[s, b + SB_OFF]
    lo, hi = 0, n
    while lo < hi:  # the first amount > v: equal amounts keep their arrival order
        mid = (lo + hi) >> 1
        if pool[off + mid] <= v:
            lo = mid + 1
        else:
            hi = mid
    for i in range(off + n, off + lo, -1):
        pool[i] = pool[i - 1]
    pool[off + lo] = v
    ent[s, b + SB_N] = n + 1
    return 0


@njit(inline="always")
def sorted_remove(pool, pm, ent, s, b, v):  # pragma: no cover - compiled
    """Delete amount v (present) from the sorted amounts of ``ent[s, b:]`` (a block left a
    quarter full moves to a smaller one, or halves in place when the pool has no room)."""
    if v != v:
        ent[s, b + SB_NAN] -= 1
        return
    n = ent[s, b + SB_N] - 1
    off = ent[s, b + SB_OFF]
    lo, hi = 0, n
    while lo < hi:  # the first amount >= v
        mid = (lo + hi) >> 1
        if pool[off + mid] < v:
            lo = mid + 1
        else:
            hi = mid
    for i in range(off + lo, off + n):
        pool[i] = pool[i + 1]
    ent[s, b + SB_N] = n
    c = ent[s, b + SB_CLASS]
    if n == 0:  # an empty window holds no block
        pool[off] = pm[PM_FREE + c]
        pm[PM_FREE + c] = off
        ent[s, b + SB_CLASS] = 0
    elif c > MIN_CLASS and 4 * n <= 1 << c and not _move(pool, pm, ent, s, b, n, c - 1):
        # no room for a smaller block: the block keeps its first half (which holds the
        # amounts) and gives the second back, as a block of the class below
        half = 1 << (c - 1)
        pool[off + half] = pm[PM_FREE + c - 1]
        pm[PM_FREE + c - 1] = off + half
        ent[s, b + SB_CLASS] = c - 1


@njit(inline="always")
def sorted_read(pool, ent, s, b, k, r, pct_win, pct_q, o_ext, o_pct):  # pragma: no cover
    """Row r's (max, min) and percentile features of window k, from its sorted amounts."""
    n = ent[s, b + SB_N]
    off = ent[s, b + SB_OFF]
    nan = ent[s, b + SB_NAN] > 0
    o_ext[r, k, 0] = np.nan if nan or n == 0 else pool[off + n - 1]
    o_ext[r, k, 1] = np.nan if nan or n == 0 else pool[off]
    for j in range(len(pct_win)):
        if pct_win[j] == k:
            o_pct[r, j] = np.nan if nan else quantile_at(pool, off, n, pct_q[j])


@njit(inline="always")
def percentiles(buf, m, k, r, pct_win, pct_q, o_pct):  # pragma: no cover - compiled
    """Sort the m amounts gathered for window k and write its percentile features of row r."""
    buf[:m].sort()
    for j in range(len(pct_win)):
        if pct_win[j] == k:
            o_pct[r, j] = quantile(buf, m, pct_q[j])


@njit(inline="always")
def has_pct(pct_win, k):  # pragma: no cover - compiled
    """Some percentile feature reads window k."""
    for j in range(len(pct_win)):  # noqa: SIM110 - numba compiles the loop, not any(genexpr)
        if pct_win[j] == k:
            return True
    return False
