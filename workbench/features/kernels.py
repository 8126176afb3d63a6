"""Vectorized helpers of the feature engine: hashing pairs of hashes."""

from __future__ import annotations

import numpy as np


def mix64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A well-mixed 64-bit hash of a pair of uint64 hashes (splitmix64 finalizer)."""
    x = a * np.uint64(0x9E3779B97F4A7C15) + b
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))
