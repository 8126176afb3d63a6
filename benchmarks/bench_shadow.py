"""Scoring with a challenger rule set in the shadow, against scoring without (prints figures).

The detect node's work per batch — features, the active rule set (with evidence), and with a
challenger its evaluation too — then the COPY payloads the store node sends
(``PreparedBatch.build``, which includes ``shadow_scores``' CSV). The same simulated stream
of ``--batches`` batches of ``--rows`` rows is scored by a fresh detector per variant; each
figure is the best of ``--repeat`` runs of the whole stream (feature state grows as in a
worker). Target: with a challenger, at most 1.3x the time without. Times are this process's
CPU time (``time.process_time``: less disturbed by other processes on a shared machine than
wall time), the variants interleaved within each repeat so that drift hits them alike.

Variants: no challenger; a challenger with the same features (one rule's points changed:
features are computed once for both, and its rules with the active set's conditions take
the active set's hits); a challenger that also declares a feature of its own (computed by
its own engine, over the batch arrays the active set's engine read).

Usage: python benchmarks/bench_shadow.py [--rows 5000] [--batches 20] [--repeat 3] [--quick]
(--quick: 8 batches, best of 2.)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _report import figure

from workbench.rules import parse_rules
from workbench.scoring.detector import Detector
from workbench.sources.simulator import Simulator
from workbench.storage import PreparedBatch

ROOT = Path(__file__).resolve().parents[1]
EXTRA = """
features:
  shadow_card_2h: {agg: count, by: card_id, window: 2h}
rules:
  - id: busy_card_2h
    when: shadow_card_2h >= 6
    score: 25
"""


def stream(rows: int, batches: int) -> list:
    sim = Simulator(sim_customers=5_000, sim_terminals=2_000, batch_rows=rows, seed=3)
    return [sim.next_batch() for _ in range(batches)]


def run(active, challenger, batches: list) -> tuple[float, float]:
    """CPU seconds spent scoring and preparing the stream (a fresh detector)."""
    detector = Detector(active)
    detector.set_shadow(challenger)
    scoring = preparing = 0.0
    for batch in batches:
        t0 = time.process_time()
        scored = detector.process(batch)
        t1 = time.process_time()
        PreparedBatch(scored, alert_min_band=active.alert.min_band).build()
        t2 = time.process_time()
        detector.maintain()
        scoring += t1 - t0
        preparing += t2 - t1
    return scoring, preparing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a brief run (make bench)")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.repeat = min(args.batches, 8), min(args.repeat, 2)

    texts = {f"rules/{p.name}": p.read_text() for p in sorted((ROOT / "rules").glob("*.yaml"))}
    active = parse_rules(texts)
    tweaked = {k: v.replace("score: 30", "score: 40", 1) for k, v in texts.items()}
    same = parse_rules(tweaked)
    own = parse_rules({**tweaked, "rules/shadow_extra.yaml": EXTRA})
    assert same.version != active.version and len(own.features) == len(active.features) + 1
    batches = stream(args.rows, args.batches)
    n = args.rows * args.batches
    variants = [("no challenger", None), ("same features", same), ("own feature", own)]
    for _, challenger in variants:  # warm up (compiled kernels, caches) before timing
        run(active, challenger, batches[:2])
    runs: dict[str, list] = {name: [] for name, _ in variants}
    for _ in range(args.repeat):
        for name, challenger in variants:
            runs[name].append(run(active, challenger, batches))
    results = {n: (min(r[0] for r in got), min(r[1] for r in got)) for n, got in runs.items()}
    base_score, base_prep = results["no challenger"]
    print(f"{args.batches} batches x {args.rows:,} rows, best of {args.repeat}")
    print(
        f"{'variant':<16}{'scoring s':>11}{'x':>7}{'prepare s':>11}{'x':>7}"
        f"{'total s':>10}{'x':>7}{'rows/s':>12}"
    )
    for name, (score, prep) in results.items():
        total = score + prep
        print(
            f"{name:<16}{score:>11.3f}{score / base_score:>7.2f}{prep:>11.3f}"
            f"{prep / base_prep:>7.2f}{total:>10.3f}{total / (base_score + base_prep):>7.2f}"
            f"{n / total:>12,.0f}"
        )
    base = base_score + base_prep
    figure("scoring + payloads, no challenger (CPU)", n / base, "rows/s")
    for name in ("same features", "own feature"):
        total = sum(results[name])
        ratio = total / base
        figure(f"challenger, {name}", ratio, "x time", anchor="no challenger", ratio=ratio)


if __name__ == "__main__":
    main()
