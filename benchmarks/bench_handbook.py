"""Card Precision@100 of a rule set on the Fraud Detection Handbook's simulated data, beside
the book's baselines.

1. Simulate the book's data set (:mod:`workbench.sources.simulator.handbook`: 5,000 customers,
   10,000 terminals, from 2018-04-01; by default only the days up to the end of the test week
   are generated) and write it as Parquet in the book's columns.
2. Replay it into a fresh database with the product's own command
   (``workbench replay FILE --mapping handbook --rules RULES``): features, rules, storage.
3. Backtest the test week with the same rules and report Card Precision@100 with the book's
   protocol (``--protocol handbook``: daily top-100 cards, cards found compromised on an
   earlier day excluded, mean over the days), the daily protocol beside it, and recall per
   fraud scenario at every band.

The book's baseline ("Baseline fraud detection system", chapter 3): training from 2018-07-25
for 7 days, a 7-day delay period, test from 2018-08-08 for 7 days; CP@100 of the models
trained there: logistic regression 0.291, random forest 0.287, XGBoost 0.273 (their figures
on the book's own data set, not this simulation's). The rules need no training: they see the
whole history before each transaction, with labels 7 days late (``label_delay``).

The script creates ``wb_bench_hb_<pid>`` on the server of ``--dsn`` (or
``WORKBENCH_BENCH_DSN``) and drops it at the end (unless ``--keep``). Prints figures; no
pass/fail.

Usage: python benchmarks/bench_handbook.py [--customers 5000] [--terminals 10000]
       [--seed 0] [--rules rules/] [--test-start 2018-08-08] [--test-days 7] [--quick]
(--quick: 1,000 customers, 2,000 terminals, 3 test days: the figures are not the book's.)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _db import admin_dsn, own_database
from _report import figure

from workbench.analysis import backtest
from workbench.rules import load_rules
from workbench.sources.replay import write_dataset
from workbench.sources.simulator import handbook as hb
from workbench.storage import connect, upgrade

ROOT = Path(__file__).resolve().parents[1]
BASELINES = {"logistic regression": 0.291, "random forest": 0.287, "XGBoost": 0.273}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=admin_dsn())
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--terminals", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rules", default=str(ROOT / "rules"))
    parser.add_argument("--test-start", default="2018-08-08")
    parser.add_argument("--test-days", type=int, default=7)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--keep", metavar="DBNAME", help="use (and keep) this database")
    parser.add_argument("--quick", action="store_true", help="a brief run (make bench)")
    args = parser.parse_args()
    if args.quick:
        args.customers, args.terminals = min(args.customers, 1_000), min(args.terminals, 2_000)
        args.test_days = min(args.test_days, 3)

    test_start = pd.Timestamp(args.test_start, tz="UTC")
    test_end = test_start + pd.Timedelta(days=args.test_days)
    days = (test_end - pd.Timestamp("2018-04-01", tz="UTC")).days
    config = hb.HandbookConfig(
        customers=args.customers, terminals=args.terminals, days=days, seed=args.seed
    )
    with own_database(args.dsn, "wb_bench_hb", keep=args.keep) as dsn:
        with connect(dsn) as conn:
            upgrade(conn)
            stored = conn.execute("SELECT count(*) FROM transactions").fetchone()[0]
        if stored:
            print(f"data: {stored:,} transactions stored already (--keep {args.keep})")
        else:
            seed(config, args.rules, dsn)
        cp = run(args.rules, test_start, test_end, args.k, dsn)
        base = BASELINES["logistic regression"]
        figure(f"CP@{args.k}, handbook protocol ({args.customers:,} customers, "
               f"{args.test_days} days)", cp, "", anchor="book: logistic regr.",
               ratio=cp / base)  # fmt: skip


def seed(config: hb.HandbookConfig, rules: str, dsn: str) -> None:
    """Simulate, write Parquet, and replay it with the CLI into ``dsn``."""
    t0 = time.perf_counter()
    data = hb.simulate(config)
    sim_s = time.perf_counter() - t0
    share = data["TX_FRAUD"].mean()
    by = data.loc[data["TX_FRAUD"] == 1, "TX_FRAUD_SCENARIO"].value_counts().sort_index()
    print(
        f"simulated {len(data):,} transactions ({config.customers} customers, "
        f"{config.terminals} terminals, {config.days} days) in {sim_s:.1f}s; fraud "
        f"{share:.3%}; by scenario " + ", ".join(f"{s}: {n:,}" for s, n in by.items())
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "handbook.parquet"
        write_dataset(hb.frames(data), path)
        del data
        env = {**os.environ, "WORKBENCH_DATABASE_URL": dsn}
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "workbench", "replay", str(path), "--mapping", "handbook"]
        out = subprocess.run(
            [*cmd, "--rules", rules, "--batch-rows", "20000"],
            env=env,
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise SystemExit(f"replay failed:\n{out.stderr}")
        print(f"replayed (features + rules + storage) in {time.perf_counter() - t0:.1f}s")


def run(rules: str, start: pd.Timestamp, end: pd.Timestamp, k: int, dsn: str) -> float:
    """Print the test days' figures; return Card Precision@k with the book's protocol."""
    ruleset = load_rules(rules)
    t0 = time.perf_counter()
    result = backtest(ruleset, start, end, dsn=dsn)
    took = time.perf_counter() - t0
    book = result.compare(k=k, protocol="handbook")
    daily = result.compare(k=k, protocol="daily")
    print(
        f"backtest {start:%Y-%m-%d} .. {end:%Y-%m-%d} (exclusive): {result.rows:,} "
        f"transactions (+{result.warmup_rows:,} warm-up) in {took:.1f}s; rule set "
        f"{ruleset.version}"
    )
    print()
    print(f"{book.cp_title}:")
    print(f"  rules {rules}: {book.cp_mean()['candidate']:.3f}")
    for model, value in BASELINES.items():
        print(f"  book baseline, {model}: {value:.3f}")
    print(f"  per day: {', '.join(f'{v:.2f}' for v in book.cp_at_k['candidate'])}")
    # How many cards a day the rules rank at all (score > 0); the rest of a day's top k are
    # ties at 0, taken in card id order.
    f = result.frame
    ranked = f[f["score"] > 0].groupby(f["ts"].dt.floor("D"))["card_id"].nunique()
    print(f"  cards with a score > 0 per day: {', '.join(str(n) for n in ranked)}")
    print(f"{daily.cp_title}: rules {daily.cp_mean()['candidate']:.3f}")
    print()
    scen = book.scenarios[book.scenarios["scoring"] == "candidate"]
    print("recall per scenario (rules): fraud, >=medium, >=high, at the alert band")
    for name, row in scen.iterrows():
        print(
            f"  scenario {name}: {int(row['fraud']):>5,}  {row['recall_medium']:.3f}  "
            f"{row['recall_high']:.3f}  {row['recall']:.3f}"
        )
    return float(book.cp_mean()["candidate"])


if __name__ == "__main__":
    main()
