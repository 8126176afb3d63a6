"""Building blocks of the feature engine, against direct computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.features import FeatureEngine, passes, window_state
from workbench.features.engine import _text_hash
from workbench.features.kernels import haversine_km
from workbench.features.spec import parse_feature
from workbench.schema import coerce


def test_haversine():
    assert haversine_km(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343.5, abs=1.0)
    assert np.isnan(haversine_km(np.nan, 0.0, 1.0, 1.0))


def _lookup(tab, key) -> int:
    j = passes._probe(tab, key)
    return int(tab[j, 1])


def test_hash_table_adds_deletes_and_regrows():
    """Linear probing with backward-shift deletion: after deleting keys amid clusters (keys
    forced into few home buckets, wrapping around the end), every other key is still found,
    and a regrown table finds the same."""
    rng = np.random.default_rng(2)
    size = 1024
    # keys whose home buckets crowd a few spots, including the last ones (wrap-around)
    keys = np.unique(rng.integers(-(2**62), 2**62, 200_000))
    keys = keys[np.isin((keys ^ (keys >> 29)) & (size - 1), [0, 1, 5, 511, 1022, 1023])]
    keys = rng.permutation(keys)[:300]
    assert len(keys) == 300
    tab = np.full((size, 2), -1, dtype=np.int64)
    for i, k in enumerate(keys):  # insert as the compiled pass does: probe, then fill
        j = passes._probe(tab, k)
        assert tab[j, 1] < 0
        tab[j] = (k, i)
    assert _lookup(tab, keys[7]) == 7
    gone = set(rng.choice(len(keys), 150, replace=False).tolist())
    for i in gone:
        passes._delete(tab, keys[i])
    for t in (tab, passes.regrow(tab, np.full((4 * size, 2), -1, dtype=np.int64))):
        assert (t[:, 1] >= 0).sum() == len(keys) - len(gone)
        for i, k in enumerate(keys):
            assert _lookup(t, k) == (-1 if i in gone else i)


def test_many_entities_grow_and_evict_the_state():
    """Thousands of entities over several days in small batches: the tables and records
    grow, eviction drops whole entities (and reuses their records), and counts stay those of
    a direct computation."""
    rng = np.random.default_rng(5)
    n = 12_000
    ts = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
        np.sort(rng.integers(0, 5 * 86400, n)), unit="s"
    )
    cards = rng.integers(0, 4000, n)
    raw = {"tx_id": [f"t{i}" for i in range(n)], "ts": ts, "card_id": [f"c{c}" for c in cards]}
    batch, dead = coerce(pd.DataFrame({**raw, "amount": 1.0}))
    assert dead.empty
    spec = parse_feature("n", {"agg": "count", "by": "card_id", "window": "1d"})
    engine = FeatureEngine([spec], allowed_lateness_s=0)
    got = pd.concat([engine.compute(batch.iloc[i : i + 250]) for i in range(0, n, 250)])
    secs = (ts - ts[0]).total_seconds().to_numpy()
    want = np.zeros(n)
    for c in np.unique(cards):  # per card: rows with t - 1d <= ts < t
        mine = np.flatnonzero(cards == c)
        t = secs[mine]
        want[mine] = np.searchsorted(t, t, "left") - np.searchsorted(t, t - 86400, "left")
    np.testing.assert_array_equal(got["n"].to_numpy(), want)
    g = engine._groups[0]
    assert g.evicted > 0
    # one day of rows (plus the last batch) is held, not five; freed records are reused
    assert g.state.entities < 4000 and g.rows < 0.25 * n + 250
    assert g.state.meta[passes.M_ROWS] < 0.3 * n


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


def test_growth_takes_successors_prepared_between_batches(monkeypatch):
    """Maintained between batches as a pipeline does, a growing state's arrays grow into
    successors prepared ahead (pages touched a slice per call), with the same values."""
    monkeypatch.setattr(window_state, "TOUCH_BYTES", 64 << 10)
    rng = np.random.default_rng(9)
    n = 40_000
    ts = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
        np.sort(rng.integers(0, 20 * 86400, n)), unit="s"
    )
    raw = {
        "tx_id": [f"t{i}" for i in range(n)],
        "ts": ts,
        "card_id": [f"c{c}" for c in rng.integers(0, 3000, n)],
        "device_id": [f"d{d}" for d in rng.integers(0, 9000, n)],
    }
    batch, _ = coerce(pd.DataFrame({**raw, "amount": 1.0}))
    specs = [
        parse_feature("n", {"agg": "count", "by": "card_id", "window": "30d"}),
        parse_feature("d", {"agg": "distinct", "of": "device_id", "by": "card_id", "window": "7d"}),
    ]
    engine = FeatureEngine(specs, allowed_lateness_s=0)
    parts = []
    for i in range(0, n, 500):
        parts.append(engine.compute(batch.iloc[i : i + 500], defer_maintenance=True))
        engine.maintain()
    pd.testing.assert_frame_equal(
        pd.concat(parts), FeatureEngine(specs).compute(batch), check_exact=True
    )
    (g,) = engine._groups
    assert g.state.warm_growths >= 5  # rows, entities, values, their tables, the queue
