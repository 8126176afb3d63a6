"""Building blocks of the feature engine, against direct computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.features.compiled import merge_order, union_positions
from workbench.features.engine import _text_hash
from workbench.features.kernels import RangeMax, cover_count, expand, haversine_km
from workbench.features.level import Level


@pytest.mark.parametrize("n", [0, 1, 31, 32, 33, 500])
def test_range_max_matches_direct_max(n):
    rng = np.random.default_rng(n)
    values = rng.normal(size=n)
    left = rng.integers(0, n + 1, 400)
    right = np.minimum(left + rng.integers(0, 200, 400), n)
    got = RangeMax(values).query(left, right)
    want = [values[a:b].max() if b > a else -np.inf for a, b in zip(left, right, strict=True)]
    np.testing.assert_array_equal(got, want)


def test_cover_count_and_expand():
    lo, hi = np.array([0, 2, 3, 4]), np.array([3, 5, 3, 2])
    assert cover_count(lo, hi, 6).tolist() == [1, 1, 2, 1, 1, 0]
    owner, pos = expand(lo, hi)
    assert owner.tolist() == [0, 0, 0, 1, 1, 1] and pos.tolist() == [0, 1, 2, 2, 3, 4]


def test_haversine():
    assert haversine_km(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343.5, abs=1.0)
    assert np.isnan(haversine_km(np.nan, 0.0, 1.0, 1.0))


def test_level_bounds_match_a_direct_scan():
    rng = np.random.default_rng(3)
    n = 3000
    h = rng.integers(0, 20, n).astype(np.uint64)
    ts = rng.integers(0, 500, n) * 10
    a, _ = Level.build(h[:2000], ts[:2000], {}, {})
    b, _ = Level.build(h[2000:], ts[2000:], {}, {})
    level, _ = Level.merge(a, b)
    qh = rng.integers(0, 25, 300).astype(np.uint64)  # some entities are absent
    x = rng.integers(-10, 5020, 300)
    code = np.searchsorted(level.main.groups, qh)
    found = np.isin(qh, level.main.groups)
    for side in ("left", "right"):
        got = level.bound(level.main, code, found, x, side)
        for i in range(len(qh)):
            rows = np.flatnonzero(level.h == qh[i])
            if len(rows) == 0:
                assert got[i] == 0
                continue
            before = level.ts[rows] < x[i] if side == "left" else level.ts[rows] <= x[i]
            assert got[i] == rows[0] + before.sum()


@pytest.mark.parametrize("sizes", [(0, 0), (0, 5), (7, 0), (50, 80), (300, 20)])
def test_union_positions_and_merge_order_match_numpy(sizes):
    rng = np.random.default_rng(sum(sizes))
    a = np.unique(rng.integers(0, 200, sizes[0])).astype(np.uint64)
    b = np.unique(rng.integers(0, 200, sizes[1])).astype(np.uint64)
    union, pa_, pb_ = union_positions(a, b)
    np.testing.assert_array_equal(union, np.union1d(a, b))
    np.testing.assert_array_equal(union[pa_], a)
    np.testing.assert_array_equal(union[pb_], b)
    # merge order of two sorted runs with many ties == stable argsort of the concatenation
    ka = np.sort(rng.integers(0, 30, sizes[0]))
    kb = np.sort(rng.integers(0, 30, sizes[1]))
    want = np.argsort(np.concatenate([ka, kb]), kind="stable")
    np.testing.assert_array_equal(merge_order(ka, kb), want)


def test_text_hash_depends_only_on_the_text():
    values = ["card-1", "é€", "", None, "card-1", "x" * 300, "card-2"]
    arrow = pd.Series(values, dtype="str")
    got = _text_hash(arrow)
    assert got[0] == got[4] and len(set(got[[0, 1, 5, 6]].tolist())) == 4
    # same values through other dtypes, slices (array offsets) and several Arrow chunks
    np.testing.assert_array_equal(_text_hash(pd.Series(values, dtype=object)), got)
    np.testing.assert_array_equal(_text_hash(arrow.astype("category")), got)
    np.testing.assert_array_equal(_text_hash(arrow.iloc[2:6]), got[2:6])
    chunked = pd.concat([arrow.iloc[:3], arrow.iloc[3:]])
    np.testing.assert_array_equal(_text_hash(chunked), got)
    # mixed objects are compared as text
    mixed = _text_hash(pd.Series([5, "5", "6"], dtype=object))
    assert mixed[0] == mixed[1] != mixed[2]
