"""Rule health arithmetic on hand-built hit frames, and the capacity recommendation against a
brute force."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.scoring import health as rh

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2026-01-01", tz="UTC")


def _hits(days: int, per_day: int, fire) -> tuple[pd.DataFrame, pd.Series]:
    """``fire(day, i) -> dict rule -> bool`` for ``per_day`` rows on each of ``days`` days."""
    rows, ts = [], []
    for d in range(days):
        for i in range(per_day):
            rows.append(fire(d, i))
            ts.append(T0 + d * DAY + pd.Timedelta(minutes=i))
    return pd.DataFrame(rows).astype(bool), pd.Series(ts)


def test_never_and_always_fires_over_the_last_days() -> None:
    # "old" fired only on day 0, "all" on every row, "some" on every 10th row.
    hits, ts = _hits(10, 20, lambda d, i: {"old": d == 0, "all": True, "some": i % 10 == 0})
    counts = rh.counts_from_hits(hits, ts)
    status = rh.fire_status(counts, ["old", "all", "some", "absent"], days=7)
    assert status.loc["old", "status"] == "never fires"
    assert status.loc["absent", "status"] == "never fires"
    assert status.loc["all", "status"] == "always fires"
    assert status.loc["some", "status"] == "ok"
    assert status.loc["some", "hits"] == 7 * 2
    assert status.loc["all", "transactions"] == 7 * 20
    # Over all ten days "old" did fire.
    assert rh.fire_status(counts, ["old"], days=10).loc["old", "status"] == "ok"


def test_fire_rates_per_bucket() -> None:
    hits, ts = _hits(3, 10, lambda d, i: {"a": i < d + 1, "b": False})
    rates = rh.fire_rates(rh.counts_from_hits(hits, ts), ["a", "b"])
    assert rates["a"].tolist() == [0.1, 0.2, 0.3]
    assert rates["b"].tolist() == [0.0, 0.0, 0.0]
    assert rates.attrs["transactions"].tolist() == [10, 10, 10]


def test_drift_alarms_on_a_jump_and_not_on_noise() -> None:
    # 100 rows a day; "steady" fires 10 +- 1 a day, then 40 on the last day; "noisy" stays.
    steady = [10, 11, 9, 10, 11, 9, 10, 40]
    noisy = [10, 12, 8, 11, 9, 12, 8, 11]
    hits, ts = _hits(
        8, 100, lambda d, i: {"steady": i < steady[d], "noisy": i < noisy[d], "flat": i < 5}
    )
    d = rh.drift(rh.fire_rates(rh.counts_from_hits(hits, ts)), window=7)
    last = d[d["bucket"] == d["bucket"].max()].set_index("rule_id")
    base = np.array(steady[:7]) / 100
    assert last.loc["steady", "mean"] == pytest.approx(base.mean())
    assert last.loc["steady", "z"] == pytest.approx((0.40 - base.mean()) / base.std(ddof=1))
    assert bool(last.loc["steady", "alarm"])
    assert not bool(last.loc["noisy", "alarm"])
    assert not bool(last.loc["flat", "alarm"])
    # Not enough history: no baseline, no alarm.
    assert not d[d["bucket"] < T0 + 3 * DAY]["alarm"].any()


def test_drift_on_a_flat_baseline_uses_the_ratio() -> None:
    rates = pd.DataFrame(
        {"jump": [0.1] * 5 + [0.35], "small": [0.1] * 5 + [0.2], "new": [0.0] * 5 + [0.01]},
        index=pd.date_range(T0, periods=6, freq="D"),
    )
    last = rh.drift(rates, window=5).groupby("rule_id").last()
    assert bool(last.loc["jump", "alarm"]) and "flat" in last.loc["jump", "reason"]
    assert not bool(last.loc["small", "alarm"])
    assert bool(last.loc["new", "alarm"]) and "started" in last.loc["new", "reason"]


def test_overlap_arithmetic() -> None:
    hits = pd.DataFrame(
        {
            "a": [1, 1, 1, 1, 0, 0],
            "b": [1, 1, 0, 0, 1, 0],
            "c": [0, 0, 0, 0, 0, 0],
        }
    ).astype(bool)
    out = rh.overlap(hits)
    assert out.loc["a", "b"] == pytest.approx(2 / 4)  # of a's 4 hits, b hit 2
    assert out.loc["b", "a"] == pytest.approx(2 / 3)
    assert out.loc["a", "a"] == 1.0
    assert out.loc["c"].isna().all()
    # The same matrix from pair counts (as the database gives them).
    pairs = pd.DataFrame(
        [("a", "a", 4), ("a", "b", 2), ("b", "a", 2), ("b", "b", 3)],
        columns=["rule_a", "rule_b", "both_hit"],
    )
    pd.testing.assert_frame_equal(rh.overlap_from_pairs(pairs, ["c"]), out)


def _card_days(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 600
    fraud = rng.random(n) < 0.15
    score = np.clip(np.round(rng.normal(np.where(fraud, 65, 35), 18)), 0, 100)
    label = np.where(rng.random(n) < 0.1, -1, fraud.astype(int))
    ts = T0 + pd.to_timedelta(rng.integers(0, 5 * 86_400, n), unit="s")
    cards = rng.integers(0, 120, n).astype(str)
    return rh.card_days_of(pd.Series(cards), pd.Series(ts), score, label)


def _brute(cd: pd.DataFrame, budget: int, grid) -> tuple[float, float]:
    """Per threshold, by loops: mean alerts/day and CP@budget; then the rule's choice."""
    rows = list(cd.itertuples(index=False))
    days = sorted({r.day for r in rows})
    best = None
    for t in grid:
        alerts, caught = 0, 0
        for day in days:
            alerted = sorted(
                (-r.score, r.card_id, r.simulator_fraud)
                for r in rows
                if r.day == day and r.score >= t
            )
            alerts += len(alerted)
            caught += sum(1 for _s, _c, fraud in alerted[:budget] if fraud is not pd.NA and fraud)
        per_day, cp = alerts / len(days), caught / (budget * len(days))
        if per_day <= budget and (best is None or cp >= best[1]):
            best = (t, cp)
    return best


@pytest.mark.parametrize(("seed", "budget"), [(1, 5), (2, 10), (3, 25)])
def test_recommendation_matches_brute_force(seed: int, budget: int) -> None:
    cd = _card_days(seed)
    grid = np.arange(0, 101, 5.0)
    rec = rh.recommend(cd, budget, thresholds=grid)
    threshold, cp = _brute(cd, budget, grid)
    assert rec.threshold == threshold
    assert rec.cp_at_k == pytest.approx(cp)
    assert rec.within_budget
    assert rec.alerts_per_day <= budget


def test_tradeoff_curve_is_monotone_and_named_by_truth() -> None:
    cd = _card_days(4)
    curve = rh.tradeoff(cd, 10)
    assert curve["alerts_per_day"].is_monotonic_decreasing
    assert curve["recall"].is_monotonic_decreasing
    with pytest.raises(KeyError):
        rh.tradeoff(cd, 10, truth="analyst")  # a simulator-only frame has no analyst truth
    with pytest.raises(ValueError):
        rh.tradeoff(cd, 0)


def test_no_threshold_fits_the_budget() -> None:
    cd = pd.DataFrame(
        {
            "day": [T0] * 4,
            "card_id": list("abcd"),
            "score": [100.0] * 4,
            "simulator_fraud": pd.array([True, False, True, False], dtype="boolean"),
        }
    )
    rec = rh.recommend(cd, 2, thresholds=[50, 100])
    assert not rec.within_budget and rec.threshold == 100
    assert "OVER" in rec.text()


def test_drift_ignores_a_wobble_on_a_near_constant_baseline() -> None:
    rates = pd.DataFrame(
        {"r": [0.60, 0.601, 0.599, 0.60, 0.601, 0.599, 0.60, 0.62]},
        index=pd.date_range(T0, periods=8, freq="D"),
    )
    last = rh.drift(rates).iloc[-1]
    assert abs(last["z"]) > 3 and not last["alarm"]
    assert rh.drift(rates, min_change=0.01).iloc[-1]["alarm"]
