"""What joining cases costs the batch write: the same batches written with and without the
cases statements (alerting._CASES and _CASE_EVENTS replaced by ``SELECT 1``), same code,
same server, alternated so both arms see the same machine load.

Two workloads of 30 batches of 5,000 rows over 3,000 cards: "realistic" (1% of rows reach
the alert band: about 50 alerts a batch) and "alert-heavy" (30%: about 1,500 alerts on 900
cards a batch). The first 3 batches of each run are not counted. A fresh database each run.

Usage: python benchmarks/bench_case_join.py [--dsn DSN] [--rounds 2] [--quick]
(--quick: one round of 12 batches per arm.)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from _db import admin_dsn, own_database
from _report import figure
from conftest import build_scored  # tests/integration/conftest.py

from workbench.storage import alerting, connect, upgrade
from workbench.storage.writer import BatchWriter

STATEMENTS = {"_CASES": alerting._CASES, "_CASE_EVENTS": alerting._CASE_EVENTS}


def _batches(share: float, n: int = 30) -> list:
    every = round(1 / share)
    return [
        build_scored(
            5000,
            prefix=f"b{i}-",
            start=f"2026-01-01T{i % 24:02d}:00:00Z",
            cards=[f"card{(k * 7 + i) % 3000}" for k in range(5000)],
            scores=[80.0 if (k * 13 + i) % every == 0 else 10.0 for k in range(5000)],
        )
        for i in range(n)
    ]


def _run(admin: str, batches: list, with_cases: bool) -> list[float]:
    with own_database(admin, "wb_bench_cases") as dsn:
        for attr, text in STATEMENTS.items():
            setattr(alerting, attr, text if with_cases else "SELECT 1")
        with connect(dsn) as conn:
            upgrade(conn)
            writer, times = BatchWriter(conn), []
            for batch in batches:
                started = time.perf_counter()
                writer.write(batch)
                times.append(time.perf_counter() - started)
        return times[3:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=admin_dsn())
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a brief run (make bench)")
    args = parser.parse_args()
    count = 30
    if args.quick:
        args.rounds, count = 1, 12
    for label, share in (("realistic (1% alert)", 0.01), ("alert-heavy (30%)", 0.3)):
        batches = _batches(share, count)
        samples: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.rounds):
            for with_cases in (False, True):
                samples[with_cases] += _run(args.dsn, batches, with_cases)
        for with_cases, times in samples.items():
            ms = sorted(t * 1000 for t in times)
            print(
                f"{label:<22} {'with' if with_cases else 'without'} cases: per 5,000-row batch"
                f" p50 {statistics.median(ms):6.1f} ms  p90 {ms[int(len(ms) * 0.9)]:6.1f} ms"
            )
        with_p50, without_p50 = (statistics.median(samples[k]) * 1e3 for k in (True, False))
        figure(f"5k-row batch write with cases, {label}, p50", with_p50, "ms",
               anchor="without cases", ratio=with_p50 / without_p50)  # fmt: skip


if __name__ == "__main__":
    main()
