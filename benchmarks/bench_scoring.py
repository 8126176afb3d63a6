"""Scoring throughput, measured side by side in one run (prints figures; no pass/fail).

1. The default rule set with its windowed features (features + rules), streamed in batches:
   on a young state (a few days of history: the state still grows) and on a steady state
   (history past the longest window: every batch also evicts what left it).
2. The 10 default rules over precomputed features: compiled YAML rules vs a hand-written
   numpy version of the same rules vs a per-row plain-Python version (same hits checked).
3. Generated rule sets of 10, 100 and 1000 rules over the same features, with the
   subexpressions several rules share computed once per batch (as scoring does) and, side by
   side, with every rule computing its own (as before).

Usage: python benchmarks/bench_scoring.py [--rows N] [--batch N] [--repeat N] [--quick]
(--quick: 50k rows, two runs each, no steady state (its 38 days of history take a minute to
build), the rule sets of 10 and 1000 only.)
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import random
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _report import figure

from workbench.features import FeatureEngine
from workbench.rules import load_rules, parse_rules
from workbench.scoring.scorer import Scorer
from workbench.sources.simulator import Simulator

ROOT = Path(__file__).resolve().parents[1]


def best_of(repeat: int, fn) -> float:
    """Best wall time of ``repeat`` runs (the least disturbed by other load)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


# The default rules written by hand below, in the order of their columns (the rule file's
# order); the other default rules read lagged profiles and terminal recency, not written here.
HAND_RULES = (
    "very_large_amount",
    "spend_spike",
    "compromised_terminal",
    "card_testing",
    "many_new_merchants",
    "impossible_travel",
    "account_takeover",
    "new_device_high_amount",
    "risky_merchant",
    "night_high_amount",
)


def hand_numpy(f: dict[str, np.ndarray], amount: np.ndarray, risky: np.ndarray) -> np.ndarray:
    """The 10 rules of :data:`HAND_RULES` written by hand in numpy; returns the hit matrix."""
    with np.errstate(invalid="ignore"):
        cols = [
            (amount > 1000)
            & (amount > 8 * np.where(np.isnan(f["cust_avg_30d"]), 100, f["cust_avg_30d"])),
            (f["card_tx_30d"] >= 5)
            & (amount > 4 * f["card_avg_30d"])
            & (amount > 4 * f["cust_std_30d"] + f["cust_avg_30d"]),
            (f["terminal_fraud_28d"] >= 2) & (f["terminal_fraud_rate_28d"] >= 0.3),
            (amount < 3) & (f["card_tx_10m"] >= 2),
            (f["card_terminals_1h"] >= 3) & f["card_new_terminal"],
            (f["card_kmh"] > 900) & (f["card_km"] > 1500),
            f["card_new_device"] & f["card_new_country"] & (f["card_tx_30d"] >= 3) & (amount > 200),
            f["card_new_device"]
            & (f["card_tx_30d"] >= 3)
            & (amount > 3 * np.where(np.isnan(f["card_avg_30d"]), 100, f["card_avg_30d"])),
            risky & (amount > 200),
            f["is_night"] & (amount > 500),
        ]
    return np.column_stack(cols)


def per_row_python(rows: list[dict], risky: set) -> list[list[bool]]:
    """The same 10 rules, one transaction at a time, as plain Python."""
    out = []
    for r in rows:
        a = r["amount"]
        cavg = r["cust_avg_30d"]
        kavg = r["card_avg_30d"]
        out.append(
            [
                a > 1000 and a > 8 * (100 if cavg != cavg else cavg),
                r["card_tx_30d"] >= 5 and a > 4 * kavg and a > 4 * r["cust_std_30d"] + cavg,
                r["terminal_fraud_28d"] >= 2 and r["terminal_fraud_rate_28d"] >= 0.3,
                a < 3 and r["card_tx_10m"] >= 2,
                r["card_terminals_1h"] >= 3 and r["card_new_terminal"],
                r["card_kmh"] > 900 and r["card_km"] > 1500,
                r["card_new_device"]
                and r["card_new_country"]
                and r["card_tx_30d"] >= 3
                and a > 200,
                r["card_new_device"]
                and r["card_tx_30d"] >= 3
                and a > 3 * (100 if kavg != kavg else kavg),
                r["merchant_category"] in risky and a > 200,
                r["is_night"] and a > 500,
            ]
        )
    return out


def generated_rules(count: int, seed: int = 7) -> str:
    """A YAML rule set of ``count`` random but valid rules over the default features."""
    rng = random.Random(seed)
    numeric = [
        "amount",
        "card_tx_10m",
        "card_tx_1h",
        "card_tx_30d",
        "card_terminals_1h",
        "cust_avg_30d",
        "card_avg_30d",
        "card_kmh",
        "card_km",
        "terminal_fraud_rate_28d",
    ]
    flags = ["card_new_device", "card_new_country", "card_new_terminal", "is_night", "is_weekend"]
    default = (ROOT / "rules" / "default.yaml").read_text()
    head = default.split("\nrules:")[0]
    lines = [head, "rules:"]
    for i in range(count):
        a, b = rng.sample(numeric, 2)
        clause = rng.choice(
            [
                f"{a} > {rng.randint(1, 500)} and {b} < {rng.randint(1, 500)}",
                f"{a} > {rng.uniform(1, 5):.2f} * {b} or {rng.choice(flags)}",
                f"not {rng.choice(flags)} and abs({a} - {b}) > {rng.randint(1, 100)}",
                f"merchant_category in risky_mcc and {a} >= {rng.randint(1, 300)}",
            ]
        )
        lines.append(f"  - id: gen_{i:04d}\n    when: {clause}\n    score: {rng.randint(1, 30)}")
    return "\n".join(lines) + "\n"


def days(frames: list[pd.DataFrame]) -> float:
    """Days of simulated time the frames span."""
    return (frames[-1]["ts"].iloc[-1] - frames[0]["ts"].iloc[0]).total_seconds() / 86400.0


def steady_state(ruleset, batch: int, count: int):
    """An engine fed simulated history until past the longest window plus the allowed
    lateness (the state then stops growing), the days of history, and ``count`` further
    batches to measure on."""
    horizon_s = max(s.horizon_s for s in ruleset.features) + 3600.0
    sim = Simulator(seed=2, batch_rows=batch)
    engine = FeatureEngine(ruleset.features)
    first = None
    while True:
        frame = sim.next_batch(batch).frame
        engine.compute(frame)
        first = frame["ts"].iloc[0] if first is None else first
        span = (frame["ts"].iloc[-1] - first).total_seconds()
        if span > horizon_s + 86400.0:  # a day past it: eviction is in full swing
            break
    measured = [sim.next_batch(batch).frame for _ in range(count)]
    return engine, span / 86400.0, measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a brief run (make bench)")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeat = min(args.rows, 50_000), min(args.repeat, 2)

    ruleset = load_rules(ROOT / "rules")
    sim = Simulator(seed=1, batch_rows=args.batch)
    warm = [sim.next_batch(args.batch).frame for _ in range(20)]  # state to look back on
    batches = [sim.next_batch(args.batch).frame for _ in range(max(1, args.rows // args.batch))]
    rows = sum(len(b) for b in batches)
    print(
        f"data: {rows:,} simulated transactions in batches of {args.batch:,} "
        f"(+{sum(map(len, warm)):,} rows of warm-up state)"
    )

    # 1. features + rules, streamed
    def stream(engine: FeatureEngine, measured: list[pd.DataFrame]) -> float:
        """Seconds to stream ``measured`` through a copy of ``engine`` (warmed, untimed)."""
        engine = copy.deepcopy(engine)
        scorer = Scorer(ruleset)
        start = time.perf_counter()
        for b in measured:
            scorer.score(b, engine.compute_arrays(b))
        return time.perf_counter() - start

    young = FeatureEngine(ruleset.features)
    for b in warm:
        young.compute(b)
    times = [stream(young, batches) for _ in range(args.repeat)]
    stream_rate = rows / min(times)
    print(
        f"\n1. default rules + {len(ruleset.features)} windowed features, streamed:\n"
        f"   {stream_rate:>10,.0f} rows/s  young state ({days(warm):.0f} days of history, "
        f"still growing)"
    )
    steady_times: list[float] = []
    if not args.quick:
        steady, history_days, steady_batches = steady_state(ruleset, args.batch, len(batches))
        steady_times = [stream(steady, steady_batches) for _ in range(args.repeat)]
        steady_rate = rows / min(steady_times)
        print(
            f"   {steady_rate:>10,.0f} rows/s  steady state ({history_days:.0f} days of history, "
            f"{steady.state_rows:,} rows held; every batch evicts what left the windows)"
        )

    # 2. the 10 reference rules on precomputed features: a rule set of just those rules, so
    # that both sides compute the same rules
    history = pd.concat(batches, ignore_index=True)
    engine = FeatureEngine(ruleset.features)
    for b in warm:
        engine.compute(b)
    feats = pd.concat([engine.compute(b) for b in batches], ignore_index=True)
    hand_rules = tuple(r for r in ruleset.rules if r.id in HAND_RULES)
    assert tuple(r.id for r in hand_rules) == HAND_RULES, "default rules changed: edit HAND_RULES"
    scorer = Scorer(dataclasses.replace(ruleset, rules=hand_rules))
    env = scorer.environment(history, feats)
    n = len(history)
    f = {c: feats[c].to_numpy() for c in feats.columns}
    amount = history["amount"].to_numpy()
    risky_set = set(ruleset.lists["risky_mcc"])

    compiled_hits = scorer.evaluate(env, n)[0]
    t_compiled = best_of(args.repeat, lambda: scorer.evaluate(env, n))

    def numpy_version():
        risky = history["merchant_category"].isin(risky_set).to_numpy()
        return hand_numpy(f, amount, risky)

    numpy_hits = numpy_version()
    t_numpy = best_of(args.repeat, numpy_version)
    sample = min(n, 10_000 if args.quick else 50_000)
    records = (
        pd.concat([history[["amount", "merchant_category"]], feats], axis=1)
        .iloc[:sample]
        .to_dict("records")
    )
    python_hits = np.array(per_row_python(records, risky_set), dtype=bool)
    t_python = best_of(1, lambda: per_row_python(records, risky_set)) * n / sample
    same = np.array_equal(compiled_hits, numpy_hits) and np.array_equal(
        compiled_hits[:sample], python_hits
    )
    r_c, r_n, r_p = n / t_compiled, n / t_numpy, n / t_python
    print(
        f"\n2. {len(HAND_RULES)} of the {len(ruleset.rules)} default rules on precomputed "
        f"features ({n:,} rows; identical hits on all three sides: {same})"
    )
    print(f"   compiled YAML rules : {r_c:>14,.0f} rows/s")
    print(f"   hand-written numpy  : {r_n:>14,.0f} rows/s   compiled/numpy = {r_c / r_n:.2f}x")
    print(f"   per-row Python      : {r_p:>14,.0f} rows/s   compiled/python = {r_c / r_p:.1f}x")
    print(
        f"   features+rules streamed vs numpy rules only = {stream_rate / r_n:.3f}x, "
        f"vs per-row Python rules only = {stream_rate / r_p:.2f}x"
    )
    figure(
        f"{len(HAND_RULES)} default rules compiled (precomputed features)",
        r_c,
        "rows/s",
        anchor="hand-written numpy",
        ratio=r_c / r_n,
    )

    # 3. generated rule sets
    print("\n3. generated rule sets (rules only, precomputed features):")
    for count in (10, 1000) if args.quick else (10, 100, 1000):
        generated = parse_rules({f"generated_{count}.yaml": generated_rules(count)})
        gen = Scorer(generated)
        genv = gen.environment(history, feats)
        t = best_of(args.repeat, lambda gen=gen, genv=genv: gen.evaluate(genv, n))
        shared, gen._shared_keys = gen._shared_keys, frozenset()  # each rule on its own
        t_alone = best_of(args.repeat, lambda gen=gen, genv=genv: gen.evaluate(genv, n))
        gen._shared_keys = shared
        print(
            f"   {count:>5} rules: {n / t:>14,.0f} rows/s  ({t / count * 1e3:.3f} ms per "
            f"rule per {n:,} rows); without shared subexpressions {n / t_alone:>11,.0f} "
            f"rows/s: {t_alone / t:.1f}x"
        )
    figure(
        f"{count} generated rules (precomputed features)",
        n / t,
        "rows/s",
        anchor="each rule on its own",
        ratio=t_alone / t,
    )
    steady_text = (
        f"steady: best {min(steady_times):.3f}s, median {statistics.median(steady_times):.3f}s"
        if steady_times
        else "steady: skipped (--quick)"
    )
    print(
        f"\n(stream timings over {args.repeat} runs, young: best {min(times):.3f}s, median "
        f"{statistics.median(times):.3f}s; {steady_text}; one core, "
        f"{math.ceil(rows / args.batch)} batches; load average {os.getloadavg()[0]:.2f} on "
        f"{os.cpu_count()} cpus)"
    )
    figure("default rules + features streamed, young state", stream_rate, "rows/s")
    if steady_times:
        figure(
            "default rules + features streamed, steady state",
            steady_rate,
            "rows/s",
            anchor="young state",
            ratio=steady_rate / stream_rate,
        )


if __name__ == "__main__":
    main()
