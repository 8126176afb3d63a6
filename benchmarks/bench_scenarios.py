"""Recall and precision per fraud scenario of a rule set on the built-in simulator.

The simulator's transactions (``Simulator(seed=...)``, default settings) go through one
``Detector`` (the stream's features and rules, state carried from batch to batch, labels
visible to ``fraud_*`` / ``time_since_fraud`` features after their ``label_delay``, as in the
stream). The first ``--warmup`` share of the rows only fills the feature windows; on the rest
it prints, at the alert band (High) and at Medium or higher, how many rows are flagged, the
precision on simulator truth, and the recall per scenario. No database. Prints figures; no
pass/fail.

Usage: python benchmarks/bench_scenarios.py [--rows 2700000] [--warmup 0.8] [--seed 42]
       [--rules rules/] [--quick]
(--quick: 500,000 rows, about 8 simulated days: a shorter history than the default's.)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from _report import figure

from workbench.rules import load_rules
from workbench.scoring.detector import Detector
from workbench.sources.simulator import Simulator

ROOT = Path(__file__).resolve().parents[1]
BANDS = {"High": ("High",), "Medium or High": ("Medium", "High")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_700_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--warmup", type=float, default=0.8, help="share of rows for warm-up")
    parser.add_argument("--rules", default=str(ROOT / "rules"))
    parser.add_argument("--quick", action="store_true", help="a brief run (make bench)")
    args = parser.parse_args()
    if args.quick:
        args.rows = min(args.rows, 500_000)

    sim = Simulator(seed=args.seed)
    detector = Detector(load_rules(args.rules))
    parts = []
    t0 = time.perf_counter()
    done = 0
    while done < args.rows:
        frame, _, _ = detector.score_frame(sim.next_batch(min(args.batch, args.rows - done)).frame)
        parts.append(frame[["ts", "is_fraud", "fraud_scenario", "risk_score", "band"]])
        done += len(frame)
    took = time.perf_counter() - t0
    f = pd.concat(parts, ignore_index=True)
    f = f.iloc[int(len(f) * args.warmup) :]
    fraud = f["is_fraud"].astype(bool)
    days = (f["ts"].max() - f["ts"].min()) / pd.Timedelta(days=1)
    print(
        f"{done:,} transactions scored in {took:.1f}s; measured on the last {len(f):,} "
        f"({days:.1f} simulated days, {fraud.mean():.2%} fraud, seed {args.seed})"
    )
    scen = f.loc[fraud, "fraud_scenario"].astype(str)
    for name, bands in BANDS.items():
        hit = f["band"].astype(str).isin(bands)
        precision = (hit & fraud).sum() / max(int(hit.sum()), 1)
        recall_all = (hit & fraud).sum() / max(int(fraud.sum()), 1)
        print(
            f"{name}: flagged {int(hit.sum()):,}, precision {precision:.2f}, recall "
            f"{recall_all:.2f}"
        )
        figure(f"precision at {name}, {days:.0f} days", precision, "")
        figure(f"recall at {name}, {days:.0f} days", recall_all, "")
        recall = hit[fraud].groupby(scen).agg(["size", "mean"])
        for s, row in recall.iterrows():
            print(f"  {s:<22} fraud {int(row['size']):>6,}  recall {row['mean']:.2f}")


if __name__ == "__main__":
    main()
