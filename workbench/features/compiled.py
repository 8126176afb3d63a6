"""Compiled (numba) loops for the steps numpy can only do with a sort or a search per row.

Each is a plain linear or logarithmic loop over sorted arrays; the numpy alternatives
(``argsort`` of concatenated runs, ``unique`` + ``searchsorted`` per input, masked stepping
searches) give the same results at several times the cost:

- :func:`group_bounds`: per query, a binary search for a time within its group's rows;
- :func:`union_positions`: union of two sorted unique arrays and where each input lands in it;
- :func:`merge_order`: the stable merge permutation of two sorted runs (first run wins ties);
- :func:`prev_before` / :func:`latest_before`: per row or query, the ts of the group's latest
  row strictly before it (a linear scan of an index; a binary search in a group).

Compiled on first use and cached on disk (``cache=True``): the first call in a fresh
environment compiles for a few seconds, later processes load the cache.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def group_bounds(starts, ts, code, found, x, right, order):  # pragma: no cover - compiled
    """First row of group ``code[i]`` (rows ``starts[c]:starts[c + 1]`` of the time-sorted
    ``ts``) with ts >= x[i] (ts > x[i] when ``right``); 0 where ``found[i]`` is false.

    Queries are answered in the sequence ``order`` (a permutation of them): in group order,
    the searches walk the big arrays forwards, which is much friendlier to the cache."""
    n = len(x)
    g = len(starts) - 1
    out = np.empty(n, dtype=np.int64)
    for k in range(n):
        i = order[k]
        if not found[i]:
            out[i] = 0
            continue
        c = code[i]
        lo = starts[min(c, g)]
        hi = starts[min(c + 1, g)]
        v = x[i]
        if right:
            while lo < hi:
                mid = (lo + hi) >> 1
                if ts[mid] <= v:
                    lo = mid + 1
                else:
                    hi = mid
        else:
            while lo < hi:
                mid = (lo + hi) >> 1
                if ts[mid] < v:
                    lo = mid + 1
                else:
                    hi = mid
        out[i] = lo
    return out


@njit(cache=True, nogil=True)
def union_positions(a, b):  # pragma: no cover - compiled
    """(union, pos_a, pos_b) of two sorted unique arrays: ``union[pos_a] == a`` etc."""
    na, nb = len(a), len(b)
    union = np.empty(na + nb, dtype=a.dtype)
    pa = np.empty(na, dtype=np.int64)
    pb = np.empty(nb, dtype=np.int64)
    i = j = k = 0
    while i < na and j < nb:
        if a[i] < b[j]:
            union[k] = a[i]
            pa[i] = k
            i += 1
        elif b[j] < a[i]:
            union[k] = b[j]
            pb[j] = k
            j += 1
        else:
            union[k] = a[i]
            pa[i] = k
            pb[j] = k
            i += 1
            j += 1
        k += 1
    while i < na:
        union[k] = a[i]
        pa[i] = k
        i += 1
        k += 1
    while j < nb:
        union[k] = b[j]
        pb[j] = k
        j += 1
        k += 1
    return union[:k].copy(), pa, pb


@njit(cache=True, nogil=True)
def merge_order(ka, kb):  # pragma: no cover - compiled
    """Positions (into ``concat(ka, kb)``) in merged order of two sorted runs; ties keep the
    ``ka`` rows first — the same as a stable argsort of the concatenation."""
    na, nb = len(ka), len(kb)
    out = np.empty(na + nb, dtype=np.int64)
    i = j = k = 0
    while i < na and j < nb:
        if kb[j] < ka[i]:
            out[k] = na + j
            j += 1
        else:
            out[k] = i
            i += 1
        k += 1
    while i < na:
        out[k] = i
        i += 1
        k += 1
    while j < nb:
        out[k] = na + j
        j += 1
        k += 1
    return out


@njit(cache=True, nogil=True)
def hash_strings(offsets, data, out, start):  # pragma: no cover - compiled
    """64-bit hash of each string ``data[offsets[i]:offsets[i + 1]]`` into ``out[start + i]``
    (FNV-1a over the UTF-8 bytes, then the splitmix64 finalizer to mix all bits)."""
    for i in range(len(offsets) - 1):
        h = np.uint64(0xCBF29CE484222325)
        for j in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[j])) * np.uint64(0x100000001B3)
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        out[start + i] = h ^ (h >> np.uint64(31))


@njit(cache=True, nogil=True)
def prev_before(code, ts, no_ts):  # pragma: no cover - compiled
    """Per row of an index (rows grouped by ``code``, ts-sorted within a group): ts of the
    group's latest row with a strictly smaller ts, ``no_ts`` if none (ties on ts share it)."""
    n = len(code)
    out = np.empty(n, dtype=np.int64)
    prev = no_ts
    for j in range(n):
        if j == 0 or code[j] != code[j - 1]:
            prev = no_ts
        elif ts[j] != ts[j - 1]:
            prev = ts[j - 1]
        out[j] = prev
    return out


@njit(cache=True, nogil=True)
def latest_before(starts, ts, code, found, x, order, no_ts):  # pragma: no cover - compiled
    """Per query: ts of the latest row of group ``code[i]`` with ts < x[i] (``no_ts`` if none
    or not ``found[i]``); queries answered in the sequence ``order`` (see group_bounds)."""
    n = len(x)
    g = len(starts) - 1
    out = np.empty(n, dtype=np.int64)
    for k in range(n):
        i = order[k]
        out[i] = no_ts
        if not found[i]:
            continue
        c = code[i]
        first = starts[min(c, g)]
        lo = first
        hi = starts[min(c + 1, g)]
        v = x[i]
        while lo < hi:
            mid = (lo + hi) >> 1
            if ts[mid] < v:
                lo = mid + 1
            else:
                hi = mid
        if lo > first:
            out[i] = ts[lo - 1]
    return out
