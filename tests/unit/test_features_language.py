"""The richer window language: lagged windows (``ending``), conditioned windows (``where``),
exact percentiles/median and ``time_since_fraud`` — each against a brute-force reference, in
a stream of batches of any sizes and in one batch, and point in time with a label delay."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_features_engine import (
    T0,
    assert_lists_consistent,
    late_batches,
    make_history,
    split,
    stream,
    stream_maintained,
)
from tests.unit.test_features_labels import batch as label_batch
from tests.unit.test_features_labels import labels
from workbench.features import FeatureEngine, compute_features, passes
from workbench.features.quantiles import quantile
from workbench.features.since import FOLD
from workbench.rules import parse_rules

DECLS = """
features:
  cust_mean1h_lag30m: {agg: mean, of: amount, by: customer_id, window: 1h, ending: 30m}
  card_n20m_lag10m: {agg: count, by: card_id, window: 20m, ending: 10m}
  card_std2h_lag1h: {agg: std, of: amount, by: card_id, window: 2h, ending: 1h}
  card_max1h_lag1h: {agg: max, of: amount, by: card_id, window: 1h, ending: 1h}
  card_terms1h_lag1h: {agg: distinct, of: terminal_id, by: card_id, window: 1h, ending: 1h}
  term_fraud1h_lag: {agg: fraud_count, by: terminal_id, window: 1h, ending: 10m, label_delay: 30m}
  card_rate2h_lag: {agg: fraud_rate, by: card_id, window: 2h, ending: 1h, label_delay: 20m}
  card_big1h: {agg: count, by: card_id, window: 1h, where: "amount > 200"}
  cust_fr_sum1h: {agg: sum, of: amount, by: customer_id, window: 1h, where: "country == 'FR'"}
  cust_fr_mean3h: {agg: mean, of: amount, by: customer_id, window: 3h, where: "country == 'FR'"}
  card_de_max3h: {agg: max, of: amount, by: card_id, window: 3h, where: "country in south"}
  card_devs_de: {agg: distinct, of: device_id, by: card_id, window: 3h, where: "amount < 100"}
  card_night: {agg: count, by: card_id, window: 3h, where: "hour < 3 or amount >= 490"}
  cust_p90_1h: {agg: percentile, q: 0.9, of: amount, by: customer_id, window: 1h}
  cust_p10_1h: {agg: percentile, q: 0.1, of: amount, by: customer_id, window: 1h}
  card_median3h: {agg: median, of: amount, by: card_id, window: 3h}
  card_p75_big: {agg: percentile, q: 0.75, of: amount, by: card_id, window: 3h,
                 where: "amount > 100", ending: 20m}
  term_q1: {agg: percentile, q: 1, of: amount, by: terminal_id, window: 2h}
  term_since: {agg: time_since_fraud, by: terminal_id, label_delay: 20m}
  card_since2h: {agg: time_since_fraud, by: card_id, window: 2h, label_delay: 0s}
lists:
  south: [ES, FR]
rules:
  - {id: any, when: amount > 0, score: 1}
"""
SPECS = parse_rules({"f.yaml": DECLS}).features
APPROX = {"mean", "std", "fraud_rate"}
_NS = 1_000_000_000


def reference(frame: pd.DataFrame, specs, batch_no: np.ndarray) -> pd.DataFrame:
    """Per-row loops over the rows visible to each row (same or earlier batch), by definition:
    a window of width w ending e holds ``t - e - w <= ts <= t - e`` (``ts < t`` when e = 0)."""
    ts = frame["ts"].array.asi8
    cents = np.rint(frame["amount"].to_numpy() * 100)
    amount = frame["amount"].to_numpy()
    fraud = frame["is_fraud"].fillna(False).to_numpy(dtype=bool)
    known_label = frame["is_fraud"].notna().to_numpy()
    out = {}
    for s in specs:
        ent = frame[s.by].to_numpy(dtype=object)
        w, e = int(s.window_s * _NS), int(s.ending_s * _NS)
        d = int(s.label_delay_s * _NS)
        cond = s.condition(frame) if s.condition is not None else np.ones(len(frame), bool)
        values = []
        for i in range(len(frame)):
            t = ts[i]
            if pd.isna(ent[i]):
                values.append(np.nan if s.nullable else 0.0)
                continue
            mine = (ent == ent[i]) & (batch_no <= batch_no[i]) & (ts < t)
            if s.agg == "time_since_fraud":
                seen = mine & fraud & (ts >= t - w) & ((ts <= t - d) if d else True)
                values.append((t - ts[seen].max()) / 3.6e12 if seen.any() else np.nan)
                continue
            upper = max(e, d) if s.agg.startswith("fraud") else e
            win = mine & (ts >= t - e - w) & (ts <= t - upper) & cond
            n = win.sum()
            if s.agg == "count":
                values.append(float(n))
            elif s.agg == "sum":
                values.append(cents[win].sum() / 100)
            elif s.agg in ("mean", "std"):
                c = cents[win]
                values.append(np.nan if n == 0 else getattr(c, s.agg)() / 100)
            elif s.agg == "max":
                values.append(amount[win].max() if n else np.nan)
            elif s.agg == "distinct":
                of = frame[s.of].to_numpy(dtype=object)[win]
                values.append(float(len({x for x in of if not pd.isna(x)})))
            elif s.agg in ("median", "percentile"):
                values.append(np.quantile(amount[win], s.q) if n else np.nan)
            elif s.agg == "fraud_count":
                values.append(float((win & fraud).sum()))
            else:  # fraud_rate
                known = (win & known_label).sum()
                values.append((win & fraud).sum() / known if known else np.nan)
        out[s.name] = values
    return pd.DataFrame(out, index=frame.index)


def assert_matches(got: pd.DataFrame, want: pd.DataFrame) -> None:
    for s in SPECS:
        g, w = got[s.name].to_numpy(), want[s.name].to_numpy(dtype=float)
        if s.agg in APPROX:
            np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9, err_msg=s.name)
        else:  # percentiles too: bit for bit what numpy.quantile gives
            np.testing.assert_array_equal(g, w, err_msg=s.name)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stream_matches_brute_force_with_late_rows(seed):
    """Shuffled batches, some swapped (rows up to hours late), against the reference."""
    rng = np.random.default_rng(seed)
    history = make_history(700, seed, span_s=8 * 3600)
    batches, arrived, batch_no = late_batches(history, rng, every=7)
    got = stream(FeatureEngine(SPECS, allowed_lateness_s=86400), batches)
    want = reference(arrived, SPECS, batch_no)
    assert_matches(got, want)
    for name in ("card_big1h", "cust_fr_sum1h", "term_since", "card_p75_big", "card_n20m_lag10m"):
        assert (want[name].fillna(0) > 0).sum() > 50, name  # the data exercise each feature


def test_late_rows_with_eviction_match_brute_force():
    """Two days of shuffled, partly swapped batches with a lateness allowance of 4h: rows are
    evicted while late rows keep arriving (the walk of a late row, its insertion into the
    windows of a newer query, the eviction of conditioned windows)."""
    rng = np.random.default_rng(12)
    history = make_history(1200, 12, span_s=2 * 86400, cards=4)
    batches, arrived, batch_no = late_batches(history, rng, every=5, max_size=30)
    engine = FeatureEngine(SPECS, allowed_lateness_s=4 * 3600)
    parts = stream_maintained(engine, batches, rng)
    assert_matches(pd.concat(parts), reference(arrived, SPECS, batch_no))
    assert all(g.evicted > 0 for g in engine._groups)
    assert sum(int(g.state.meta[passes.M_LATE]) for g in engine._groups) > 100
    for g in engine._groups:
        assert_lists_consistent(g.state)


@pytest.mark.parametrize("seed", [4, 5])
def test_stream_equals_backtest_equals_brute_force(seed):
    """Sorted history: batches of any size (with eviction along the way) give exactly what
    one batch gives, and that is the reference."""
    rng = np.random.default_rng(seed)
    history = make_history(1500, seed, span_s=2 * 86400, step_s=60)
    offline = compute_features(SPECS, history)
    engine = FeatureEngine(SPECS, allowed_lateness_s=float(rng.choice([0.0, 600.0])))
    online = stream(engine, split(history, rng, max_size=80))
    pd.testing.assert_frame_equal(online, offline, check_exact=True)
    assert sum(g.evicted for g in engine._groups) > 0
    assert_matches(offline, reference(history, SPECS, np.zeros(len(history))))


def test_fraud_log_folds_and_forgets_old_frauds_without_changing_values():
    specs = [s for s in SPECS if s.name == "card_since2h"]
    history = make_history(6000, 9, span_s=10 * 86400, step_s=60)
    history["is_fraud"] = history["is_fraud"].fillna(False)
    engine = FeatureEngine(specs, allowed_lateness_s=0)
    online = stream(engine, split(history, np.random.default_rng(9), max_size=200))
    pd.testing.assert_frame_equal(online, compute_features(specs, history), check_exact=True)
    frauds = int(history["is_fraud"].sum())
    assert frauds > FOLD + 200  # folded at least once, dropping the frauds past the window
    assert engine.frauds.rows < FOLD + 100


def _rows(*items) -> pd.DataFrame:
    """(minutes after T0, card, amount, is_fraud) rows as a typed batch."""
    from workbench.schema import coerce

    frame = pd.DataFrame(
        {
            "tx_id": [f"r{i}" for i in range(len(items))],
            "ts": [T0 + pd.Timedelta(minutes=m) for m, *_ in items],
            "card_id": [c for _, c, *_ in items],
            "terminal_id": [c for _, c, *_ in items],
            "amount": [a for _, _, a, _ in items],
            "is_fraud": [f for *_, f in items],
        }
    )
    typed, dead = coerce(frame)
    assert dead.empty
    return typed


def _features(text: str):
    return parse_rules({"f.yaml": text + "rules: [{id: r, when: amount > 0, score: 1}]\n"}).features


def test_lag_window_boundaries_are_closed_at_both_ends():
    (spec,) = _features("features: {n: {agg: count, by: card_id, window: 30m, ending: 10m}}\n")
    rows = _rows((0, "c", 1.0, False), (20, "c", 1.0, False), (40, "c", 1.0, False))
    # at 40: rows with 0 <= ts <= 30 -> both 0 and 20; at 20: rows with -20 <= ts <= 10 -> 0
    assert FeatureEngine([spec]).compute(rows)["n"].tolist() == [0.0, 1.0, 2.0]
    at = _rows((0, "c", 1.0, False), (10, "c", 1.0, False), (41, "c", 1.0, False))
    # at 10: the row at 0 is exactly 10m old (in); at 41: [1, 31] holds 10 but not 0
    assert FeatureEngine([spec]).compute(at)["n"].tolist() == [0.0, 1.0, 1.0]


def test_time_since_fraud_respects_the_label_delay():
    (spec,) = _features("features: {s: {agg: time_since_fraud, by: card_id, label_delay: 1h}}\n")
    rows = _rows(
        (0, "c", 1.0, True),
        (59, "c", 1.0, False),  # fraud not known yet
        (60, "c", 1.0, False),  # known exactly now: 1 h since it
        (90, "c", 1.0, True),
        (149, "c", 1.0, False),  # the newer fraud is not known yet: the older one
        (150, "c", 1.0, False),
        (150, "d", 1.0, False),  # another card: none
    )
    got = FeatureEngine([spec]).compute(rows)["s"].tolist()
    assert np.isnan(got[0]) and np.isnan(got[1])
    assert got[2] == 1.0 and got[3] == 1.5 and got[4] == 149 / 60 and got[5] == 1.0
    assert np.isnan(got[6])
    # the same rows one at a time: the same values (the fraud known across batches)
    engine = FeatureEngine([spec])
    one_by_one = [engine.compute(rows.iloc[[i]])["s"].iloc[0] for i in range(len(rows))]
    np.testing.assert_array_equal(one_by_one, got)


def test_stored_labels_time_since_and_lagged_counts_are_point_in_time():
    specs = _features(
        "features:\n"
        "  since: {agg: time_since_fraud, by: terminal_id, labels: analyst}\n"
        "  lagged: {agg: fraud_count, by: terminal_id, window: 1h, ending: 30m, labels: analyst}\n"
    )
    engine = FeatureEngine(specs)
    engine.add_labels(labels([("x0", "T", 0, "fraud", 40), ("x1", "T", 10, "fraud", 200)]))
    engine.add_labels(labels([("x0", "T", 0, "legitimate", 150)], start_id=3))
    out = engine.peek(
        label_batch(
            [
                ("a", "T", 40),
                ("b", "T", 41),
                ("c", "T", 91),
                ("d", "T", 150),
                ("e", "T", 151),
                ("f", "T", 201),
                ("g", "U", 201),
            ]
        )
    )
    since = out["since"].tolist()
    # known strictly after 40; cleared at 150 (a newer verdict); x1 known after 200
    assert np.isnan(since[0]) and since[1] == 41 / 60 and since[3] == 150 / 60
    assert np.isnan(since[4]) and since[5] == (201 - 10) / 60 and np.isnan(since[6])
    # lagged window [t - 90m, t - 30m]: x0 (minute 0) counts from 41 (known) to 90 ...
    assert out["lagged"].tolist() == [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 10**8), min_size=1, max_size=40),
    st.one_of(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9, 0.99, 1.0]), st.floats(0.0, 1.0)),
)
def test_quantile_is_numpy_quantile_bit_for_bit(cents, q):
    values = np.sort(np.array(cents) / 100.0)
    assert quantile(values, len(values), q) == np.quantile(values, q)


def test_quantile_of_nothing_or_of_a_missing_amount_is_missing():
    assert np.isnan(quantile(np.array([1.0, np.nan]), 2, 0.5))
    assert np.isnan(quantile(np.empty(0), 0, 0.5))


_ROW = st.tuples(
    st.integers(0, 240),  # minute
    st.sampled_from(["a", "b"]),  # card (and terminal)
    st.sampled_from([0.5, 99.0, 100.0, 150.0, 250.0, 499.99]),
    st.booleans(),  # is_fraud
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ROW, max_size=60), st.lists(st.integers(1, 12), min_size=1, max_size=20))
def test_any_history_streamed_in_any_batches_matches_the_reference(rows, sizes):
    """Ties, boundaries exactly on window edges (whole minutes), empty windows: a generated
    history split into generated batch sizes equals one batch and the reference."""
    history = _rows(*sorted(rows)) if rows else _rows((0, "a", 1.0, False)).iloc[:0]
    history["customer_id"] = history["card_id"]
    history["country"] = np.where(history["amount"] > 120, "FR", "DE")
    offline = compute_features(SPECS, history)
    engine = FeatureEngine(SPECS, allowed_lateness_s=0)
    parts, i = [], 0
    for size in sizes * (len(history) // max(sum(sizes), 1) + 1):
        parts.append(engine.compute(history.iloc[i : i + size]))
        i += size
        if i >= len(history):
            break
    pd.testing.assert_frame_equal(pd.concat(parts), offline, check_exact=True)
    assert_matches(offline, reference(history, SPECS, np.zeros(len(history))))
