"""Feature-computation time of a 50k-transaction batch with and without the window language's
newer constructs (prints figures side by side; no pass/fail).

Three engines stream the same simulator batches (untimed warm-up first, so windows hold
history): the 14 features of rules/default.yaml; those plus lagged windows (``ending``),
conditioned windows (``where``), exact percentiles/median and ``time_since_fraud``; and the
default ones plus each new construct alone — and, for scale, plus a ``max`` over the same 30-day
customer window as the percentiles: both read the window's amounts, kept sorted per entity
as rows enter and leave it (:mod:`workbench.features.quantiles`). Times are CPU
seconds per measured batch (median and best of the measured batches), the compiled passes
being warm.

Usage: python benchmarks/bench_language.py [--batch N] [--batches N] [--warmup N] [--quick]
(--quick: 3 measured batches of 20k after 3 of warm-up.)
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from _report import figure

from workbench.features import FeatureEngine
from workbench.rules import load_rules, parse_rules
from workbench.sources.simulator import Simulator

ROOT = Path(__file__).resolve().parents[1]

NEW = {
    "ending": """
  cust_avg_30d_lag7: {agg: mean, of: amount, by: customer_id, window: 30d, ending: 7d}
  card_tx_1h_lag1h: {agg: count, by: card_id, window: 1h, ending: 1h}
""",
    "where": """
  card_big_1h: {agg: count, by: card_id, window: 1h, where: "amount > 100"}
  card_online_sum_1h: {agg: sum, of: amount, by: card_id, window: 1h,
                       where: "channel == 'online'"}
""",
    "percentile": """
  cust_p90_30d: {agg: percentile, q: 0.9, of: amount, by: customer_id, window: 30d}
  cust_median_30d: {agg: median, of: amount, by: customer_id, window: 30d}
""",
    "time_since_fraud": """
  term_since_fraud: {agg: time_since_fraud, by: terminal_id, label_delay: 7d}
""",
}
SCALE = """
  cust_max_30d: {agg: max, of: amount, by: customer_id, window: 30d}
"""


def specs_with(*kinds: str, extra: str = ""):
    base = (ROOT / "rules" / "default.yaml").read_text()
    extra += "".join(NEW[k] for k in kinds)
    return parse_rules({"default.yaml": base.replace("features:\n", "features:\n" + extra, 1)})


def measure(specs, warm, batches) -> list[float]:
    engine = FeatureEngine(specs)
    for b in warm:
        engine.compute(b)
    times = []
    for b in batches:
        t0 = time.process_time()
        engine.compute(b)
        times.append(time.process_time() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--batches", type=int, default=5, help="measured batches")
    parser.add_argument("--warmup", type=int, default=6, help="warm-up batches (not timed)")
    parser.add_argument("--quick", action="store_true", help="a brief run (make bench)")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.batches = min(args.batch, 20_000), min(args.batches, 3)
        args.warmup = min(args.warmup, 3)
    sim = Simulator(seed=1)
    warm = [sim.next_batch(args.batch).frame for _ in range(args.warmup)]
    batches = [sim.next_batch(args.batch).frame for _ in range(args.batches)]
    print(
        f"data: {args.batches} measured batches of {args.batch:,} rows after {args.warmup} "
        f"warm-up batches; simulated time {warm[0]['ts'].min()} .. {batches[-1]['ts'].max()}"
    )
    default = load_rules(ROOT / "rules").features
    cases = [("default (rules/default.yaml)", default)]
    cases += [(f"default + {k}", specs_with(k).features) for k in NEW]
    cases.append(("default + all new", specs_with(*NEW).features))
    cases.append(("default + max 30d (for scale)", specs_with(extra=SCALE).features))
    measure(cases[-2][1], warm[:1], batches[:1])  # compile everything once, untimed
    print(f"\n{'features':<34}{'count':>6}{'median ms':>12}{'best ms':>10}{'vs default':>12}")
    base = None
    for name, specs in cases:
        times = measure(specs, warm, batches)
        med = statistics.median(times) * 1e3
        base = base or med
        print(f"{name:<34}{len(specs):>6}{med:>12.1f}{min(times) * 1e3:>10.1f}{med / base:>11.2f}x")
        if name == cases[0][0]:
            figure(f"default features, {args.batch // 1000}k batch (CPU, median)", med, "ms")
        elif name == "default + all new":
            figure(
                f"default + all new ({len(specs)} features), {args.batch // 1000}k batch",
                med,
                "ms",
                anchor="default features",
                ratio=med / base,
            )


if __name__ == "__main__":
    main()
