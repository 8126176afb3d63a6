"""Backtest throughput over >= 1M stored transactions, and stream == backtest scores.

1. Seed: the simulator's transactions go through one ``Detector`` (the stream's features and
   rules, state carried from batch to batch, exactly as the worker's detect node) and are
   stored with a ``BatchWriter`` in large batches. Not part of the measured figures.
2. Backtest (the headline): ``workbench.analysis.backtest`` over the whole stored range with
   the same rules: read (binary COPY into Arrow, in daily slices, read-ahead in a thread) +
   features + scoring, end to end (the feature cache off); a second backtest with other bands
   and the same features, scoring the features the first one kept (the analyst's next try);
   then its parts measured alone, side by side in the same run: reading only
   (``load_history`` of the whole range, ordered by ``(ts, tx_id)`` on the client), the same
   read ordered by the server (before), the CSV read (COPY CSV into pyarrow), the anchor (a
   raw binary COPY of the same rows, unordered, bytes received and not decoded; and ordered
   by the server, the anchor before) and features + scoring only (an in-memory frame).
3. Equality: the backtest's scores, bands and per-rule hits against what the stream stored,
   row by row (counts of differences; 0 expected).

The script creates its own database ``wb_bench_bt_<pid>`` on the server of ``--dsn`` (or
``WORKBENCH_BENCH_DSN``), migrates it, and drops it at the end (WITH (FORCE)). Prints figures;
no pass/fail.

Usage: python benchmarks/bench_backtest.py [--rows 1000000] [--batch 50000] [--repeat 3]
       python benchmarks/bench_backtest.py --quick   (100k rows, best of 2)
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from _db import admin_dsn, own_database
from _report import figure
from psycopg import conninfo, sql

from workbench.analysis import backtest, feature_cache, load_history
from workbench.rules import load_rules, parse_rules
from workbench.schema import NAMES
from workbench.scoring.detector import Detector
from workbench.scoring.result import ScoredBatch
from workbench.sources.simulator import Simulator
from workbench.storage import BatchWriter, connect, tables, transactions, upgrade
from workbench.storage.columnar import ArrowReader, to_frame

ROOT = Path(__file__).resolve().parents[1]


def seed(dsn: str, rows: int, batch: int) -> tuple[int, float]:
    """Store ``rows`` simulated transactions scored by the stream's detector."""
    ruleset = load_rules(ROOT / "rules")
    sim = Simulator(seed=7)
    detector = Detector(ruleset)
    stored, t0 = 0, time.perf_counter()
    with connect(dsn) as conn:
        writer = BatchWriter(conn)
        while stored < rows:
            src = sim.next_batch(min(batch, rows - stored))
            frame, hits, _ = detector.score_frame(src.frame)
            # No alerts: the backtest does not read them, and they would slow the seed.
            result = writer.write(
                ScoredBatch(frame=frame, hits=hits, dead=src.dead), alert_min_band=None
            )
            stored += result.stored
            print(f"\r  seeded {stored:,} rows", end="", flush=True)
        conn.execute("ANALYZE transactions")
    print()
    return stored, time.perf_counter() - t0


def read_csv(dsn: str):
    """The whole history the way it was read before: COPY CSV into pyarrow's CSV parser (the
    path ``load`` takes on a connection inside a transaction)."""
    with connect(dsn) as conn:
        lo, hi = transactions.time_bounds(conn)
        with conn.transaction():
            return transactions.load(conn, lo, hi + timedelta(microseconds=1))


def _select() -> str:
    return ", ".join(
        "(amount * 100)::bigint AS amount__cents" if c == "amount" else c
        for c in tables.names(tables.transactions)
    )


def read_server_ordered(dsn: str):
    """The columnar read as it was before: the server sorts (``ORDER BY ts, tx_id``)."""
    query = f"SELECT {_select()} FROM transactions ORDER BY ts, tx_id"
    with ArrowReader(dsn) as reader:
        return to_frame(reader.table(sql.SQL(query), "read"), transactions.LOAD_KINDS)


def raw_copy(dsn: str, order: bool = False) -> int:
    """The anchor: the same rows as a binary COPY, received as bytes, not decoded; unordered
    (the cheapest way to get them), or ordered by the server as ``order`` says."""
    with connect(dsn) as conn:
        by = " ORDER BY ts, tx_id" if order else ""
        query = f"COPY (SELECT {_select()} FROM transactions{by}) TO STDOUT (FORMAT binary)"
        size = 0
        with conn.cursor() as cur, cur.copy(query) as copy:
            for chunk in copy:
                size += len(chunk)
    return size


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cpus"


def best_of(repeat: int, fn):
    times, out = [], None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=admin_dsn())
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=50_000, help="rows per stored batch")
    parser.add_argument("--repeat", type=int, default=3, help="best of N timed runs")
    parser.add_argument(
        "--keep", metavar="DBNAME", help="use (and keep) this database; seed it only if empty"
    )
    parser.add_argument("--quick", action="store_true", help="a brief run (make bench)")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeat = min(args.rows, 100_000), min(args.repeat, 2)

    with own_database(args.dsn, "wb_bench_bt", keep=args.keep) as dsn:
        with connect(dsn) as conn:
            upgrade(conn)
        name = conninfo.conninfo_to_dict(dsn)["dbname"]
        print(f"python {platform.python_version()}, {os.cpu_count()} cpus, database {name}")
        with connect(dsn) as conn:
            have = conn.execute("SELECT count(*) FROM transactions").fetchone()[0]
        if have:
            print(f"seed: {have:,} rows stored already (--keep)")
        else:
            stored, seed_s = seed(dsn, args.rows, args.batch)
            print(f"seed: {stored:,} rows simulated + scored + stored in {seed_s:.1f}s")
        rules = load_rules(ROOT / "rules")
        print(f"rules: {len(rules.enabled_rules)} rules, {len(rules.features)} features")

        # warm-up: numba compilation, first-read caches; then read and computed each time
        backtest(rules, dsn=dsn, cache=False)
        total_s, result = best_of(args.repeat, lambda: backtest(rules, dsn=dsn, cache=False))
        # The analyst's next try: other bands, the same features. The first run reads and
        # computes them and keeps them (feature_cache); the timed ones score the kept features.
        text = (ROOT / "rules" / "default.yaml").read_text(encoding="utf-8")
        other = parse_rules(
            {"default.yaml": text.replace("medium: 40, high: 70", "medium: 35, high: 65")}
        )
        feature_cache.clear()
        backtest(rules, dsn=dsn)
        again_s, again = best_of(args.repeat, lambda: backtest(other, dsn=dsn))
        assert again.from_cache and tuple(other.features) == tuple(rules.features)
        kept_mb = feature_cache.size() / 2**20
        feature_cache.clear()
        read_s, history = best_of(args.repeat, lambda: load_history(dsn=dsn))
        csv_s, _ = best_of(args.repeat, lambda: read_csv(dsn))
        ordered_s, _ = best_of(args.repeat, lambda: read_server_ordered(dsn))
        raw_s, raw_bytes = best_of(args.repeat, lambda: raw_copy(dsn))
        raw_ordered_s, _ = best_of(args.repeat, lambda: raw_copy(dsn, order=True))
        frame = history[list(NAMES)]
        score_s, _ = best_of(args.repeat, lambda: Detector(rules).score_frame(frame))

        n = result.rows
        print()
        print(f"backtest, {n:,} stored transactions (best of {args.repeat}; load {load()}):")
        rows = [
            ("end to end (read + features + scoring)", total_s),
            ("again, other bands, same features (kept features)", again_s),
            ("read only, columnar (binary COPY -> Arrow)", read_s),
            ("read only, columnar, the server sorts (before)", ordered_s),
            ("read only, CSV COPY -> pyarrow (before that)", csv_s),
            (f"anchor: raw binary COPY, bytes only ({raw_bytes / 1e6:,.0f} MB)", raw_s),
            ("raw binary COPY, ORDER BY ts, tx_id (the anchor before)", raw_ordered_s),
            ("features + scoring only (in memory)", score_s),
        ]
        for label, secs in rows:
            print(
                f"  {label:<52} {secs:6.2f}s {n / secs:>11,.0f} tx/s  {raw_s / secs:5.2f}x raw COPY"
            )
        print(f"  kept by the feature cache: {kept_mb:,.0f} MiB")
        print(f"  columnar read / CSV read: {csv_s / read_s:.2f}x faster")
        print(f"  ordered here / ordered by the server: {ordered_s / read_s:.2f}x faster")
        print("  target: >= 1,000,000 tx/s end to end")
        figure(
            "end to end (read + features + scoring)",
            n / total_s,
            "tx/s",
            anchor="raw binary COPY",
            ratio=raw_s / total_s,
        )
        figure(
            "again with other rules, same features (feature cache)",
            n / again_s,
            "tx/s",
            anchor="raw binary COPY",
            ratio=raw_s / again_s,
        )
        figure(
            "read only, columnar",
            n / read_s,
            "tx/s",
            anchor="raw binary COPY",
            ratio=raw_s / read_s,
        )
        figure(
            "features + scoring only (in memory)",
            n / score_s,
            "tx/s",
            anchor="raw binary COPY",
            ratio=raw_s / score_s,
        )

        # Equality: the stream's stored scores against the backtest's, row by row.
        f = result.frame
        score_diff = int(np.count_nonzero(f["score"].to_numpy() != f["live_score"].to_numpy()))
        band_diff = int((f["band"] != f["live_band"]).sum())
        live = result.live_hits(list(result.hits.columns)).to_numpy()
        hit_diff = int(np.count_nonzero((live != result.hits.to_numpy()).any(axis=1)))
        non_low = int((f["band"] != "Low").sum())
        print()
        print(f"stream == backtest over {n:,} rows ({non_low:,} scored Medium or High):")
        print(f"  rows with a different score: {score_diff}")
        print(f"  rows with a different band:  {band_diff}")
        print(f"  rows with different rule hits: {hit_diff}")
        print("  IDENTICAL" if score_diff == band_diff == hit_diff == 0 else "  DIFFERENT")
        figure(
            "rows scored differently from the stream",
            score_diff + band_diff + hit_diff,
            "rows",
            anchor=f"of {n:,}",
        )


if __name__ == "__main__":
    main()
