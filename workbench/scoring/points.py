"""How the points of the rules that hit a transaction make its raw score.

Ungrouped rules add their points. Rules that share a ``group`` (``group: velocity``) give the
largest of the points of those that hit — so three overlapping velocity rules count once, as
much as the strongest — and groups add up with the ungrouped rules. The caller clips the sum
to 0..100.

>>> import numpy as np
>>> rows = [np.array([0, 1]), np.array([1]), np.array([0])]
>>> combine(rows, np.array([20.0, 30.0, 5.0]), ("velocity", "velocity", None), 2).tolist()
[25.0, 30.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def combine(
    hit_rows: Sequence[np.ndarray], points: np.ndarray, groups: Sequence[str | None], n: int
) -> np.ndarray:
    """Raw scores of ``n`` rows from, per rule, the rows it hit, its points and its group."""
    raw = np.zeros(n)
    best: dict[str, np.ndarray] = {}
    for at, p, group in zip(hit_rows, points, groups, strict=True):
        if group is None:
            raw[at] += p
            continue
        top = best.setdefault(group, np.full(n, -np.inf))
        top[at] = np.maximum(top[at], p)
    for top in best.values():
        raw += np.where(np.isfinite(top), top, 0.0)
    return raw
