"""Building blocks of the feature engine, against direct computations."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from workbench.features import FeatureEngine, outputs, passes, window_state
from workbench.features.engine import _text_hash
from workbench.features.spec import parse_feature
from workbench.schema import coerce


def test_haversine():
    assert outputs.haversine(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343.5, abs=1.0)
    assert outputs.haversine(10.0, 20.0, 10.0, 20.0) == 0.0
    assert outputs.haversine(0.0, 0.0, 0.0, 180.0) == pytest.approx(math.pi * outputs.EARTH_KM)
    assert np.isnan(outputs.haversine(np.nan, 0.0, 1.0, 1.0))


@pytest.mark.parametrize(
    "cents",
    [
        [12_345] * 50,  # identical amounts: exactly 0, whatever the size of the sums
        [2**40 + 7] * 9,  # beyond 2^31 cents: the double-double path
        [2**40, 2**40 + 1, 2**40 + 2],  # a tiny spread on a huge offset
        [-500, 1_000, 250, -20_000],  # refunds: negative cents
        list(range(1, 10_000, 7)),
        [7],
    ],
)
def test_std_from_exact_sums_matches_exact_arithmetic(cents):
    """The std of a window, from the int64 sums the pass keeps (cents and the three limbs of
    the squared cents), is the exact population std rounded once."""
    c = np.array(cents, dtype=np.int64)
    c1, c0 = c >> 31, c & ((1 << 31) - 1)
    sums = [int((c1 * c1).sum()), int((c1 * c0).sum()), int((c0 * c0).sum())]
    got = outputs.std_cents(len(c), int(c.sum()), *sums)
    n = len(cents)
    exact = Fraction(n * sum(x * x for x in cents) - sum(cents) ** 2, n * n)
    assert got == pytest.approx(math.sqrt(exact) / 100, rel=1e-15, abs=0.0)
    assert np.isnan(outputs.std_cents(0, 0, 0, 0, 0))


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
    got, known = _text_hash(arrow)
    assert got[0] == got[4] and len(set(got[[0, 1, 5, 6]].tolist())) == 4
    assert known.tolist() == [v is not None for v in values]
    # same values through other dtypes, slices (array offsets) and several Arrow chunks
    for same in (
        pd.Series(values, dtype=object),
        arrow.astype("category"),
        pd.concat([arrow.iloc[:3], arrow.iloc[3:]]),
    ):
        h, k = _text_hash(same)
        np.testing.assert_array_equal(h, got)
        np.testing.assert_array_equal(k, known)
    h, k = _text_hash(arrow.iloc[2:6])
    np.testing.assert_array_equal(h, got[2:6])
    np.testing.assert_array_equal(k, known[2:6])
    # mixed objects are compared as text; NaN is missing there too
    mixed, known = _text_hash(pd.Series([5, "5", "6", np.nan], dtype=object))
    assert mixed[0] == mixed[1] != mixed[2]
    assert known.tolist() == [True, True, True, False]


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


def test_a_state_that_stops_growing_gives_its_prepared_successors_back():
    """A successor is prepared while the rows held rise towards the array's capacity, and
    given back once they stop rising short of it (the window is full: rows in = rows out),
    so a steady state holds only the arrays it uses."""
    state = window_state.WindowState(1, 0, 0)
    state.ensure(9_000)
    capacity = len(state.row)
    spares = []
    for held in [*range(0, capacity - 600, 400), *[capacity - 600] * 60]:
        state.meta[passes.M_LIVE] = held  # rows held (what prepare() watches)
        state.prepare()
        spares.append("row" in state._spares)
    rising = len(range(0, capacity - 600, 400))
    assert any(spares[:rising])  # filling up: its successor was prepared
    assert not spares[-1]  # steady below capacity: given back


def test_a_stored_row_holds_only_the_fields_its_group_reads():
    """A count needs no label, condition bits, amount or position; fraud counts the label,
    a maximum the amount, distances the position (after the value columns)."""
    from workbench.features.group import plan

    def width(**spec) -> int:
        p, _ = plan([parse_feature("f", {"by": "card_id", **spec})], 0.0)
        return passes.row_width(p.lay)

    base = passes.R_FIELDS
    assert width(agg="count", window="1h") == base
    assert width(agg="fraud_count", window="1d", label_delay="1h") == base + 1
    assert width(agg="max", of="amount", window="1h") == base + 1
    assert width(agg="distance_km") == base + 2
    assert width(agg="is_new", of="device_id", window="1d") == base + 1
    p, _ = plan([parse_feature("f", {"agg": "speed_kmh", "by": "card_id"}),
                 parse_feature("g", {"agg": "is_new", "of": "device_id", "by": "card_id",
                                     "window": "1d"})], 0.0)  # fmt: skip
    assert p.lay[passes.L_GEO] == passes.R_FIELDS + 1  # after the one value column
