"""FeatureEngine: point-in-time semantics against a brute-force reference, stream == batch,
bounded memory, out-of-order batches, label delay and window boundaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.features import (
    PREVIOUS_LOOKBACK_S,
    FeatureEngine,
    compute_features,
    group,
    passes,
)
from workbench.features.spec import BUILTIN, parse_feature
from workbench.schema import coerce

T0 = pd.Timestamp("2024-03-01", tz="UTC")

DECLS = {
    "card_n10m": {"agg": "count", "by": "card_id", "window": "10m"},
    "card_n1h": {"agg": "count", "by": "card_id", "window": "1h"},
    "cust_n3h": {"agg": "count", "by": "customer_id", "window": "3h"},
    "cust_sum1h": {"agg": "sum", "of": "amount", "by": "customer_id", "window": "1h"},
    "cust_mean1h": {"agg": "mean", "of": "amount", "by": "customer_id", "window": "1h"},
    "cust_std1h": {"agg": "std", "of": "amount", "by": "customer_id", "window": "1h"},
    "card_max3h": {"agg": "max", "of": "amount", "by": "card_id", "window": "3h"},
    "card_min3h": {"agg": "min", "of": "amount", "by": "card_id", "window": "3h"},
    "card_terms1h": {"agg": "distinct", "of": "terminal_id", "by": "card_id", "window": "1h"},
    "card_devs3h": {"agg": "distinct", "of": "device_id", "by": "card_id", "window": "3h"},
    "term_devs3h": {"agg": "distinct", "of": "device_id", "by": "terminal_id", "window": "3h"},
    "card_newdev1h": {"agg": "is_new", "of": "device_id", "by": "card_id", "window": "1h"},
    "cust_newctry3h": {"agg": "is_new", "of": "country", "by": "customer_id", "window": "3h"},
    "term_gap": {"agg": "seconds_since_prev", "by": "terminal_id"},
    "card_km": {"agg": "distance_km", "by": "card_id"},
    "card_kmh": {"agg": "speed_kmh", "by": "card_id"},
    "term_fraud2h": {
        "agg": "fraud_count",
        "by": "terminal_id",
        "window": "2h",
        "label_delay": "20m",
    },
    "card_rate3h": {"agg": "fraud_rate", "by": "card_id", "window": "3h", "label_delay": "0s"},
    "dev_rate1h": {"agg": "fraud_rate", "by": "device_id", "window": "1h", "label_delay": "5m"},
}
SPECS = [parse_feature(name, decl) for name, decl in DECLS.items()]
FLOAT_APPROX = {"mean", "std", "distance_km", "speed_kmh", "fraud_rate"}


def make_history(
    n: int, seed: int, span_s: int = 6 * 3600, cards: int = 6, step_s: int = 30
) -> pd.DataFrame:
    """A typed, ts-sorted random history with many ties, missing values and labels."""
    rng = np.random.default_rng(seed)
    secs = np.sort(rng.integers(0, span_s // step_s, n)) * step_s
    card = rng.integers(0, cards, n)

    def pick(pool, p_missing=0.0):
        values = np.array(pool, dtype=object)[rng.integers(0, len(pool), n)]
        values[rng.random(n) < p_missing] = None
        return values

    raw = pd.DataFrame(
        {
            "tx_id": [f"t{i}" for i in range(n)],
            "ts": T0 + pd.to_timedelta(secs, unit="s"),
            "card_id": [f"c{c}" for c in card],
            "customer_id": [f"u{c // 2}" for c in card],
            "terminal_id": pick([f"T{i}" for i in range(5)], 0.05),
            "amount": rng.integers(0, 50_000, n) / 100.0,
            "country": pick(["FR", "DE", "ES"]),
            "lat": np.where(rng.random(n) < 0.1, np.nan, rng.uniform(40, 50, n)),
            "lon": rng.uniform(-5, 10, n),
            "device_id": pick(["d1", "d2", "d3", "d4"], 0.1),
            "is_fraud": pick([True, False, False, None]),
        }
    )
    batch, dead = coerce(raw)
    assert dead.empty
    for col in ("terminal_id", "device_id"):  # coerce fills in defaults: put the gaps back
        batch[col] = pd.Series(raw[col].to_numpy(), dtype="str")
    return batch


def split(frame: pd.DataFrame, rng, max_size: int = 40) -> list[pd.DataFrame]:
    """Random consecutive batches, including empty and 1-row ones."""
    out, i = [], 0
    while i < len(frame):
        size = int(rng.choice([0, 1, 2, rng.integers(1, max_size)]))
        out.append(frame.iloc[i : i + size])
        i += size
    return out


def late_batches(history: pd.DataFrame, rng, every: int, max_size: int = 40):
    """Random batches with their rows shuffled and every ``every``-th pair of batches swapped
    (rows late across batches): the batches, the rows as they arrive and each one's batch."""
    batches = split(history, rng, max_size)
    batches = [b.sample(frac=1.0, random_state=int(rng.integers(1 << 30))) for b in batches]
    for k in range(0, len(batches) - 1, every):
        batches[k], batches[k + 1] = batches[k + 1], batches[k]
    batch_no = np.repeat(np.arange(len(batches)), [len(b) for b in batches])
    return batches, pd.concat(batches), batch_no


def stream_maintained(engine: FeatureEngine, batches, rng) -> list[pd.DataFrame]:
    """Each batch's features, its maintenance deferred or not and run between batches or not,
    at random (values must not depend on either)."""
    parts = []
    for b in batches:
        parts.append(engine.compute(b, defer_maintenance=bool(rng.random() < 0.5)))
        if rng.random() < 0.5:
            engine.maintain()
    return parts


def stream(engine: FeatureEngine, batches) -> pd.DataFrame:
    return pd.concat([engine.compute(b) for b in batches])


# -- brute-force reference -----------------------------------------------------------------
def reference(frame: pd.DataFrame, specs, batch_no: np.ndarray) -> pd.DataFrame:
    """Per-row loops over the rows visible to each row (same or earlier batch), by definition."""
    ts = frame["ts"].array.asi8
    order = np.arange(len(frame))  # arrival order
    cents = np.rint(frame["amount"].to_numpy() * 100)
    amount = frame["amount"].to_numpy()
    label = frame["is_fraud"]
    fraud = label.fillna(False).to_numpy(dtype=bool)
    known_label = label.notna().to_numpy()
    lat, lon = frame["lat"].to_numpy(), frame["lon"].to_numpy()
    out = {}
    for s in specs:
        ent = frame[s.by].to_numpy(dtype=object)
        w, d = int(s.window_s * 1e9), int(s.label_delay_s * 1e9)
        vals = []
        for i in range(len(frame)):
            t = ts[i]
            if pd.isna(ent[i]):
                vals.append(False if s.type == "bool" else np.nan if s.nullable else 0.0)
                continue
            mine = (ent == ent[i]) & (batch_no <= batch_no[i])
            win = mine & (ts >= t - w) & (ts < t)
            vals.append(_one(s, i, t, mine, win, locals()))
        out[s.name] = vals
    return pd.DataFrame(out, index=frame.index)


def _one(s, i, t, mine, win, v):
    agg, n = s.agg, win.sum()
    if agg == "count":
        return float(n)
    if agg in ("sum", "mean", "std"):
        c = v["cents"][win]
        if agg == "sum":
            return c.sum() / 100
        return np.nan if n == 0 else (c.mean() if agg == "mean" else c.std()) / 100
    if agg in ("max", "min"):
        return np.nan if n == 0 else getattr(v["amount"][win], agg)()
    if agg in ("distinct", "is_new"):
        of = v["frame"][s.of].to_numpy(dtype=object)
        present = {x for x in of[win] if not pd.isna(x)}
        return len(present) if agg == "distinct" else (not pd.isna(of[i]) and of[i] not in present)
    if agg in ("fraud_count", "fraud_rate"):
        ts = v["ts"]
        lab = mine & (ts >= t - v["w"]) & (ts <= t - v["d"]) & (ts < t)
        frauds, known = (lab & v["fraud"]).sum(), (lab & v["known_label"]).sum()
        if agg == "fraud_count":
            return float(frauds)
        return np.nan if known == 0 else frauds / known
    before = np.flatnonzero(mine & (v["ts"] < t))
    if len(before) == 0:
        return np.nan
    ts_before = v["ts"][before]
    p = before[ts_before == ts_before.max()].max()  # latest ts, then latest arrival
    dt = (t - v["ts"][p]) / 1e9
    if dt > PREVIOUS_LOOKBACK_S:
        return np.nan
    if agg == "seconds_since_prev":
        return dt
    lat1, lon1, lat2, lon2 = map(np.radians, (v["lat"][p], v["lon"][p], v["lat"][i], v["lon"][i]))
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    km = 2 * 6371.0088 * np.arcsin(np.sqrt(a))
    return km if agg == "distance_km" else km / (dt / 3600)


def assert_matches(got: pd.DataFrame, want: pd.DataFrame, specs) -> None:
    for s in specs:
        g, w = got[s.name].to_numpy(), want[s.name].to_numpy()
        if s.agg in FLOAT_APPROX:
            np.testing.assert_allclose(g, w.astype(float), rtol=1e-9, atol=1e-9, err_msg=s.name)
        else:
            np.testing.assert_array_equal(g, w.astype(g.dtype), err_msg=s.name)


# -- properties ----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stream_matches_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    history = make_history(500, seed)
    # Rows out of order within each batch, and some batches swapped (late rows across batches).
    batches, arrived, batch_no = late_batches(history, rng, every=7)
    engine = FeatureEngine(SPECS, allowed_lateness_s=86400)
    got = stream(engine, batches)
    assert list(got.index) == list(arrived.index)
    assert_matches(got, reference(arrived, SPECS, batch_no), SPECS)


@pytest.mark.parametrize("seed", [1, 2])
def test_late_rows_and_eviction_match_brute_force_reference(seed):
    """Two days of rows in shuffled, partly swapped batches (rows up to hours late) with a
    lateness allowance of 4h, so rows are evicted while late rows keep arriving; maintenance
    is deferred or not at random."""
    rng = np.random.default_rng(seed)
    history = make_history(1200, seed, span_s=2 * 86400, cards=int(rng.choice([4, 30])))
    batches, arrived, batch_no = late_batches(history, rng, every=5, max_size=30)
    engine = FeatureEngine(SPECS, allowed_lateness_s=4 * 3600)
    parts = stream_maintained(engine, batches, rng)
    assert_matches(pd.concat(parts), reference(arrived, SPECS, batch_no), SPECS)
    assert all(g.evicted > 0 for g in engine._groups)
    assert engine.state_rows < len(history)
    for g in engine._groups:
        assert_lists_consistent(g.state)


def assert_lists_consistent(state) -> None:
    """Every live entity's rows are in ts order, each row keeps its successor's ts (what
    cursors and eviction read instead of the successor), and the lists hold every live row;
    the values held are exactly those live rows name, each found by its key, with as many
    referring rows as name it."""
    live = 0
    named: dict[int, int] = {}
    for s in range(int(state.meta[passes.M_ENTITIES])):
        e = int(state.ent[s, passes.N_HEAD])
        if e < 0:
            continue
        while e >= 0:
            live += 1
            for x in state.row[e, passes.R_FIELDS : passes.R_FIELDS + state.columns].tolist():
                if x >= 0:
                    named[x] = named.get(x, 0) + 1
            nxt = int(state.row[e, passes.R_NEXT])
            want = state.row[nxt, passes.R_TS] if nxt >= 0 else passes.NO_TS
            assert state.row[e, passes.R_NEXT_TS] == want
            assert nxt < 0 or state.row[nxt, passes.R_TS] >= state.row[e, passes.R_TS]
            e = nxt
        assert int(state.ent[s, passes.N_TAIL]) >= 0
    assert live == int(state.meta[passes.M_LIVE])
    assert len(named) == state.values
    for x, refs in named.items():
        assert state.vrec[x, passes.V_REFS] == refs
        key = state.vrec[x, passes.V_KEY]
        assert state.vtab[passes._probe(state.vtab, key), 1] == x


def test_offline_matches_brute_force_reference():
    history = make_history(400, 11).sample(frac=1.0, random_state=4)  # one unsorted batch
    got = compute_features(SPECS, history)
    assert_matches(got, reference(history, SPECS, np.zeros(len(history))), SPECS)


@pytest.mark.parametrize("seed", [5, 6, 7, 8])
def test_stream_equals_batch_exactly(seed):
    rng = np.random.default_rng(seed)
    history = make_history(2500, seed, span_s=3 * 86400, step_s=60)
    offline = compute_features(SPECS, history)
    engine = FeatureEngine(SPECS, allowed_lateness_s=float(rng.choice([0.0, 60.0, 3600.0])))
    online = stream(engine, split(history, rng, max_size=80))
    pd.testing.assert_frame_equal(online, offline, check_exact=True)
    # And rows were really evicted along the way.
    assert sum(g.evicted for g in engine._groups) > 0
    assert 0 < engine.state_rows < len(history) * len({s.by for s in SPECS})
    for g in engine._groups:
        assert_lists_consistent(g.state)


def test_features_do_not_change_when_later_rows_are_added():
    history = make_history(800, 21)
    full = compute_features(SPECS, history)
    for cut in (1, 200, 555):
        head = history.iloc[:cut]
        pd.testing.assert_frame_equal(
            compute_features(SPECS, head), full.iloc[:cut], check_exact=True
        )


def test_out_of_order_batch_gives_values_in_input_order():
    history = make_history(300, 31)
    shuffled = history.sample(frac=1.0, random_state=0)
    got = FeatureEngine(SPECS).compute(shuffled)
    assert list(got.index) == list(shuffled.index)
    # Ties on ts are broken by arrival order (here: the shuffled order).
    assert_matches(got, reference(shuffled, SPECS, np.zeros(len(shuffled))), SPECS)
    # Features that do not depend on tie order equal those of the sorted history.
    tie_free = [s.name for s in SPECS if s.agg not in ("distance_km", "speed_kmh")]
    pd.testing.assert_frame_equal(
        got.loc[history.index, tie_free],
        compute_features(SPECS, history)[tie_free],
        check_exact=True,
    )


def test_peek_does_not_change_state_and_reset_forgets():
    history = make_history(600, 41)
    first, second = history.iloc[:400], history.iloc[400:]
    engine = FeatureEngine(SPECS)
    engine.compute(first)
    rows = engine.state_rows
    peeked = engine.peek(second)
    assert engine.state_rows == rows
    pd.testing.assert_frame_equal(engine.peek(second), peeked, check_exact=True)
    pd.testing.assert_frame_equal(engine.compute(second), peeked, check_exact=True)
    engine.reset()
    assert engine.state_rows == 0
    pd.testing.assert_frame_equal(
        engine.compute(second), compute_features(SPECS, second), check_exact=True
    )


def test_state_stays_bounded_on_a_long_stream():
    specs = [
        parse_feature("n", {"agg": "count", "by": "card_id", "window": "1h"}),
        parse_feature(
            "d", {"agg": "distinct", "of": "device_id", "by": "card_id", "window": "30m"}
        ),
        parse_feature("kmh", {"agg": "speed_kmh", "by": "card_id"}),
    ]
    engine = FeatureEngine(specs, allowed_lateness_s=600)
    per_day, sizes = 2000, []
    for day in range(20):
        chunk = make_history(per_day, 100 + day, span_s=86400, cards=50)
        chunk["ts"] = chunk["ts"] + pd.Timedelta(days=day)
        for part in np.array_split(np.arange(per_day), 20):
            engine.compute(chunk.iloc[part])
            sizes.append(engine.state_rows)
    # Retention is 1h10m of rows (~100 on average, the rhythm of make_history varies) + one
    # "previous" row per card (50) + the batch that arrived since the last eviction (100).
    assert max(sizes[40:]) < 100 + 50 + per_day / 20 + 150
    assert max(sizes) < 0.05 * 20 * per_day
    # Records are reused: the arrays stopped growing once the retention was reached.
    (g,) = engine._groups
    assert g.state.meta[passes.M_ROWS] < 2 * max(sizes)


# -- boundaries ----------------------------------------------------------------------------
def _rows(*items) -> pd.DataFrame:
    """Typed batch from (seconds after T0, card, amount, is_fraud[, device]) tuples."""
    raw = pd.DataFrame(
        {
            "tx_id": [f"t{i}" for i in range(len(items))],
            "ts": [T0 + pd.Timedelta(seconds=it[0]) for it in items],
            "card_id": [it[1] for it in items],
            "amount": [it[2] for it in items],
            "is_fraud": [it[3] for it in items],
        }
    )
    batch = coerce(raw)[0]
    batch["device_id"] = pd.Series([it[4] if len(it) > 4 else "d" for it in items], dtype="str")
    return batch


def test_window_is_closed_at_start_and_open_at_end():
    spec = parse_feature("n", {"agg": "count", "by": "card_id", "window": "10m"})
    batch = _rows(
        (0, "a", 1, None),
        (600, "a", 1, None),
        (600, "a", 1, None),
        (1200, "a", 1, None),
        (1200.000001, "a", 1, None),
    )
    # at 600: the row at 0 is exactly t - w (in), the other row at 600 is not before t (out);
    # at 1200 the rows at 600 are in, the one at 0 is out; 1µs later those at 600 are out.
    assert compute_features([spec], batch)["n"].tolist() == [0.0, 1.0, 1.0, 2.0, 1.0]


def test_label_delay_boundary():
    count = parse_feature(
        "f", {"agg": "fraud_count", "by": "card_id", "window": "1h", "label_delay": "10m"}
    )
    rate = parse_feature(
        "r", {"agg": "fraud_rate", "by": "card_id", "window": "1h", "label_delay": "10m"}
    )
    batch = _rows(
        (0, "a", 1, True),
        (100, "a", 1, False),
        (599.999, "a", 1, None),
        (600, "a", 1, None),
        (700, "a", 1, None),
        (3600, "a", 1, None),
        (3700, "a", 1, None),
        (3700.5, "a", 1, None),
    )
    got = compute_features([count, rate], batch)
    # t=600: the label at 0 becomes known exactly at 0 + 10m; t=700 also sees the one at 100;
    # t=3600: window starts at 0 (inclusive); t=3700: the row at 0 left the window.
    assert got["f"].tolist() == [0, 0, 0, 1, 1, 1, 0, 0]
    assert got["r"].tolist()[:6] == [
        pytest.approx(x, nan_ok=True) for x in (np.nan, np.nan, np.nan, 1.0, 0.5, 0.5)
    ]
    assert got["r"].tolist()[6] == 0.0


def test_zero_label_delay_never_sees_the_same_timestamp():
    spec = parse_feature(
        "f", {"agg": "fraud_count", "by": "card_id", "window": "1h", "label_delay": "0s"}
    )
    batch = _rows((0, "a", 1, True), (0, "a", 1, True), (1, "a", 1, True))
    assert compute_features([spec], batch)["f"].tolist() == [0, 0, 2]


def test_previous_transaction_lookback():
    spec = parse_feature("gap", {"agg": "seconds_since_prev", "by": "card_id"})
    day = 86400
    batch = _rows((0, "a", 1, None), (89 * day, "a", 1, None), (179.5 * day, "a", 1, None))
    got = compute_features([spec], batch)["gap"].tolist()
    assert np.isnan(got[0]) and got[1] == 89 * day and np.isnan(got[2])
    engine = FeatureEngine([spec], allowed_lateness_s=0)
    online = pd.concat([engine.compute(batch.iloc[[i]]) for i in range(3)])
    pd.testing.assert_frame_equal(online, compute_features([spec], batch), check_exact=True)


def test_missing_values():
    specs = [
        parse_feature("new", {"agg": "is_new", "of": "device_id", "by": "card_id", "window": "1h"}),
        parse_feature(
            "nd", {"agg": "distinct", "of": "device_id", "by": "card_id", "window": "1h"}
        ),
        parse_feature("n", {"agg": "count", "by": "terminal_id", "window": "1h"}),
        parse_feature("m", {"agg": "mean", "of": "amount", "by": "terminal_id", "window": "1h"}),
    ]
    batch = _rows(
        (0, "a", 1, None, None),
        (1, "a", 2, None, "x"),
        (2, "a", 3, None, "x"),
        (3, "a", 4, None, None),
    )
    batch["terminal_id"] = pd.Series(["T", None, "T", None], dtype="str")
    got = compute_features(specs, batch)
    assert got["new"].tolist() == [False, True, False, False]  # missing value: never new
    assert got["nd"].tolist() == [0, 0, 1, 1]  # missing values are not counted
    assert got["n"].tolist() == [0, 0, 1, 0]  # missing entity: empty window, not stored
    assert np.isnan(got["m"][1]) and got["m"][2] == 1.0


# -- output shape ---------------------------------------------------------------------------
def test_output_columns_and_dtypes():
    history = make_history(50, 51)
    got = FeatureEngine(SPECS).compute(history)
    assert list(got.columns) == [s.name for s in SPECS] + list(BUILTIN)
    for s in SPECS:
        assert got[s.name].dtype == (np.bool_ if s.type == "bool" else np.float64), s.name
    ts = history["ts"]
    assert got["hour"].tolist() == ts.dt.hour.astype(float).tolist()
    assert got["day_of_week"].tolist() == ts.dt.day_of_week.astype(float).tolist()
    assert got["is_weekend"].tolist() == (ts.dt.day_of_week >= 5).tolist()
    assert got["is_night"].tolist() == (ts.dt.hour < 6).tolist()
    assert got["is_weekend"].dtype == np.bool_ and got["hour"].dtype == np.float64


def test_empty_batch():
    empty = make_history(10, 1).iloc[:0]
    got = FeatureEngine(SPECS).compute(empty)
    assert got.empty and list(got.columns) == [s.name for s in SPECS] + list(BUILTIN)
    assert got["card_newdev1h"].dtype == np.bool_ and got["card_n1h"].dtype == np.float64


def test_amounts_are_exact_in_cents():
    spec = parse_feature("s", {"agg": "sum", "of": "amount", "by": "card_id", "window": "1h"})
    batch = _rows((0, "a", 0.1, None), (1, "a", 0.2, None), (2, "a", 0.0, None))
    assert compute_features([spec], batch)["s"].tolist()[2] == 0.3


# -- deferred maintenance ------------------------------------------------------------------
@pytest.mark.parametrize("when", ["every_batch", "never", "random"])
def test_deferred_maintenance_gives_the_same_values(when):
    rng = np.random.default_rng(51)
    history = make_history(2000, 51, span_s=2 * 86400, step_s=60)
    offline = compute_features(SPECS, history)
    engine = FeatureEngine(SPECS)
    parts, evictions, pending = [], 0, []
    for b in split(history, rng, max_size=60):
        parts.append(engine.compute(b, defer_maintenance=True))
        pending.append(engine.maintenance_due)
        if when == "every_batch" or (when == "random" and rng.random() < 0.3):
            was_due = engine.maintenance_due
            assert engine.maintain() == was_due
            assert not engine.maintenance_due
            evictions += was_due
    pd.testing.assert_frame_equal(pd.concat(parts), offline, check_exact=True)
    assert any(pending)  # evictions really were deferred
    if when != "never":
        assert evictions > 0
    # Never maintained: compute still evicts after MAX_DEFERRED batches: state stays bounded.
    assert all(g.evicted > 0 for g in engine._groups)
    for g in engine._groups:
        assert g.deferred <= group.MAX_DEFERRED
    assert engine.state_rows < len(history) * len({s.by for s in SPECS})


def test_maintain_is_a_no_op_when_nothing_is_due():
    history = make_history(300, 52)
    engine = FeatureEngine(SPECS)
    assert not engine.maintain()
    engine.compute(history.iloc[:3], defer_maintenance=True)
    assert not engine.maintenance_due
    state = [(g.state, g.evicted) for g in engine._groups]
    assert not engine.maintain()
    assert [(g.state, g.evicted) for g in engine._groups] == state


def test_compute_without_defer_does_pending_maintenance():
    history = make_history(400, 53)
    engine = FeatureEngine(SPECS)
    engine.compute(history.iloc[:200], defer_maintenance=True)
    assert engine.maintenance_due  # rows older than the longest window (1h + lateness)
    engine.compute(history.iloc[200:210])
    assert not engine.maintenance_due


@pytest.mark.parametrize("seed", [1, 2])
def test_rows_fed_for_other_entities_count_as_if_scored_here(seed):
    """A worker's own cards' rows (its partitions), with the rows of the other cards fed
    (``feed``) to the groups of the other entities just before each of its batches, as the
    tail of other workers' commits does: every feature of its rows is what one worker
    scoring everything in that arrival order gives, and its card groups hold its own cards'
    rows only."""
    rng = np.random.default_rng(seed)
    history = make_history(600, seed, cards=8)
    own = history["card_id"].isin(["c0", "c1", "c2", "c5"]).to_numpy()  # u1, u2: split
    engine = FeatureEngine(SPECS, allowed_lateness_s=86400)
    alone = FeatureEngine(SPECS, allowed_lateness_s=86400)  # never fed: what the tail adds
    spanning = engine.entity_columns - {"card_id"}
    assert spanning == {"customer_id", "terminal_id", "device_id"}
    arrived, batch_no, parts, unfed = [], [], [], []
    start = 0
    for k, b in enumerate(split(history, rng)):
        mine = own[start : start + len(b)]
        start += len(b)
        engine.feed(b.loc[~mine], spanning)
        parts.append(engine.compute(b.loc[mine]))
        unfed.append(alone.compute(b.loc[mine]))
        arrived += [b.loc[~mine], b.loc[mine]]
        batch_no += [2 * k] * int((~mine).sum()) + [2 * k + 1] * int(mine.sum())
    frame = pd.concat(arrived)
    want = reference(frame, SPECS, np.asarray(batch_no))
    got = pd.concat(parts)
    assert_matches(got, want.loc[got.index], SPECS)
    without = pd.concat(unfed)
    assert not np.array_equal(without["cust_n3h"], got["cust_n3h"])  # the feed mattered
    card_groups = [g for g in engine._groups if g.by == "card_id"]
    assert sum(g.rows for g in card_groups) <= own.sum() * len(card_groups)


def test_groups_on_threads_give_the_same_values_as_one_after_the_other():
    """``threads=2``: the entity columns' groups of a batch run at once (card, customer,
    terminal: each writes its own output rows and state); every value, and the state the
    next batches read, is what the sequential engine gives."""
    from pathlib import Path

    from workbench.features import engine as E
    from workbench.rules import load_rules
    from workbench.sources.simulator import Simulator

    specs = load_rules(Path(__file__).resolve().parents[2] / "rules").features
    sim = Simulator(seed=4)
    batches = [sim.next_batch(n).frame for n in (3000, 2000, 100, 2500, E.PARALLEL_MIN_ROWS)]
    one, two = FeatureEngine(specs), FeatureEngine(specs, threads=2)
    assert len(two._groups) >= 3
    for b in batches:
        pd.testing.assert_frame_equal(two.peek(b), one.peek(b), check_exact=True)
        pd.testing.assert_frame_equal(two.compute(b), one.compute(b), check_exact=True)
    assert two._executor is not None  # the batches of at least PARALLEL_MIN_ROWS used it
