"""Exact quantiles of a window's amounts, for the compiled passes (:mod:`.passes`).

A ``median``/``percentile`` feature's window is walked like a ``max``/``min`` one (the same
walk serves both), its amounts gathered into a scratch buffer that grows by doubling, then
sorted once for all the quantiles read from that window. :func:`quantile` interpolates between
the two nearest ranks exactly as ``numpy.quantile`` (its default ``linear`` method) does, bit
for bit, so a test can hold the engine to numpy itself.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(inline="always")
def quantile(v, m, q):  # pragma: no cover - compiled
    """The q-quantile of the sorted ``v[:m]`` exactly as ``numpy.quantile`` (linear) gives
    it, bit for bit: NaN when m == 0 or any value is NaN (NaN sorts last)."""
    if m == 0 or v[m - 1] != v[m - 1]:
        return np.nan
    vi = (m - 1) * q
    if vi >= m - 1:
        return v[m - 1]
    lo = math.floor(vi)
    g = vi - lo
    a = v[lo]
    d = v[lo + 1] - a
    return v[lo + 1] - d * (1.0 - g) if g >= 0.5 else a + d * g


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


@njit(inline="always")
def take_amount(buf, m, hi, lo, nan, v, pct):  # pragma: no cover - compiled
    """Amount v into a window's max/min walk (and its gathered amounts when ``pct``)."""
    if pct:
        buf = gather(buf, m, v)
    return buf, m + 1, max(hi, v), min(lo, v), nan or v != v


@njit(inline="always")
def gather(buf, m, v):  # pragma: no cover - compiled
    """``buf`` with v appended at m (a larger copy when full)."""
    if m == len(buf):
        more = np.empty(2 * len(buf))
        more[:m] = buf
        buf = more
    buf[m] = v
    return buf
