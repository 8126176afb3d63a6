"""Compiled (numba) hashing of text columns, the one string step of the feature engine.

Compiled on first use and cached on disk (``cache=True``): the first call in a fresh
environment compiles for a few seconds, later processes load the cache.
"""

from __future__ import annotations

import numpy as np
from numba import njit


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
