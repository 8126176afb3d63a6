"""Rule health reads over stored history: what the Rules page's "Rule health" section costs.

Seeds simulated, scored transactions (as ``bench_backtest.py``), then times, best of N, side
by side: the three aggregates read in PostgreSQL (fire counts per day, co-hit pairs, card-day
scores), the arithmetic on them (health + capacity recommendation), and for comparison the
same fire rates from the long hit frame read with COPY (``transactions.load_hits``) and
counted in pandas. Creates ``wb_bench_rh_<pid>`` on the server of ``--dsn`` and drops it at
the end unless ``--keep``. Prints figures; no pass/fail.

Usage: python benchmarks/bench_rule_health.py [--rows 300000] [--repeat 3]
       python benchmarks/bench_rule_health.py --quick   (100k rows, best of 2)
"""

from __future__ import annotations

import argparse
import os
import platform

import pandas as pd
from _db import admin_dsn, own_database
from _report import figure
from bench_backtest import best_of, seed

from workbench.scoring import health as rh
from workbench.storage import connect, rule_fires, shared_store, transactions, upgrade


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=admin_dsn())
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", metavar="DBNAME", help="use (and keep) this database")
    parser.add_argument("--quick", action="store_true", help="a brief run (make bench)")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeat = min(args.rows, 100_000), min(args.repeat, 2)
    with own_database(args.dsn, "wb_bench_rh", keep=args.keep) as dsn:
        with connect(dsn) as conn:
            upgrade(conn)
            have = conn.execute("SELECT count(*) FROM transactions").fetchone()[0]
        if not have:
            have, seed_s = seed(dsn, args.rows, 50_000)
            print(f"seed: {have:,} rows in {seed_s:.1f}s")
        store = shared_store(dsn)
        start, end = rule_fires.span(store, 3650)
        print(f"python {platform.python_version()}, {os.cpu_count()} cpus, {have:,} rows, "
              f"event time {start:%Y-%m-%d} .. {end:%Y-%m-%d %H:%M}")  # fmt: skip
        r = args.repeat
        counts_s, counts = best_of(r, lambda: rule_fires.fire_counts(store, start, end))
        pairs_s, pairs = best_of(r, lambda: rule_fires.co_hits(store, start, end))
        days_s, cd = best_of(r, lambda: rule_fires.card_days(store, start, end))
        math_s, _ = best_of(
            r,
            lambda: (
                rh.assess(counts, pairs, start=start, end=end),
                rh.recommend(cd, 50, truth="simulator"),
            ),
        )

        def via_hits() -> pd.DataFrame:
            long = transactions.load_hits(store, start, end)
            day = long["ts"].dt.floor("1D")
            return long.groupby([day, "rule_id"]).size()

        copy_s, _ = best_of(r, via_hits)
        print(f"best of {r}:")
        print(f"  fire counts per day (SQL GROUP BY):   {counts_s:6.3f}s  {len(counts):>8,} rows")
        print(f"  co-hit pairs (SQL GROUP BY):          {pairs_s:6.3f}s  {len(pairs):>8,} rows")
        print(f"  card-day scores (SQL GROUP BY):       {days_s:6.3f}s  {len(cd):>8,} rows")
        print(f"  health + recommendation (pandas):     {math_s:6.3f}s")
        print(f"  for comparison: hits via COPY + pandas {copy_s:6.3f}s")
        total = counts_s + pairs_s + days_s + math_s
        figure(f"rule health, {have // 1000:,}k rows (3 SQL aggregates + pandas)", total, "s",
               anchor="fire counts via COPY + pandas", ratio=total / copy_s)  # fmt: skip


if __name__ == "__main__":
    main()
