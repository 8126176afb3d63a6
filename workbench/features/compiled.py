"""Compiled (numba) hashing of text columns, the one string step of the feature engine.

Compiled on first use and cached on disk (``cache=True``): the first call in a fresh
environment compiles for a few seconds, later processes load the cache.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_SEED = np.uint64(0xCBF29CE484222325)
_K = np.uint64(0x9E3779B97F4A7C15)


@intrinsic
def _load_u64(typingctx, data, i):  # pragma: no cover - compiled
    """The 8 bytes of a uint8 array from position i as one uint64 (an unaligned load)."""

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        return builder.load(builder.bitcast(ptr, ir.IntType(64).as_pointer()), align=1)

    return types.uint64(data, types.intp), codegen


@njit(inline="always")
def _round(h, w):  # pragma: no cover - compiled
    h = (h ^ w) * _K
    return h ^ (h >> np.uint64(32))


@njit(cache=True, nogil=True)
def hash_strings(offsets, data, out, start):  # pragma: no cover - compiled
    """64-bit hash of each string ``data[offsets[i]:offsets[i + 1]]`` into ``out[start + i]``.

    Eight bytes a step (a multiply and an xor-shift per step, seeded with the length), then
    the splitmix64 finalizer to mix all bits: ids of a dozen characters take two steps."""
    for i in range(len(offsets) - 1):
        a = offsets[i]
        b = offsets[i + 1]
        h = _SEED ^ (np.uint64(b - a) * _K)
        while a + 8 <= b:
            h = _round(h, _load_u64(data, a))
            a += 8
        if a < b:
            w = np.uint64(0)
            for j in range(b - 1, a - 1, -1):
                w = (w << np.uint64(8)) | np.uint64(data[j])
            h = _round(h, w)
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        out[start + i] = h ^ (h >> np.uint64(31))
