"""Rule hot-reload latency: from a rule file saved to the change in effect, over repeated edits.

A real worker process (``workbench run`` on the simulator, ``--rate`` / ``--batch-rows``)
watches a temporary rules directory. After a warm-up the script edits the rule file
``--edits`` times (in place, or by rename like an editor with ``--rename``), a random
0.4-1.0 s apart so saves fall at every phase of the watcher's poll, and measures for each:

- saved -> accepted: the ``rule_sets`` row's ``created_at`` (same machine, same clock);
- saved -> in effect: the first batch *committed* with the new version, as its
  ``workbench_batches`` summary arrives (includes the wait for the next batch boundary and
  that batch's scoring and commit; a batch lasts ``batch_rows / rate`` seconds);
- the gaps between consecutive committed batches, with no edits (first phase) and during
  the edits (second phase), side by side: reloads must not stall the input.

The reload figure is saved -> accepted at p99: the worker has the new rules checked and
recorded, and switches to them at its next batch boundary. ``--quick`` (10 edits, short
warm-up and quiet phase) finishes within a minute.

The script creates ``wb_bench_reload_<pid>`` on the server of ``--dsn`` (or
``WORKBENCH_BENCH_DSN``) and drops it at the end. Prints figures; no pass/fail.

Usage: python benchmarks/bench_reload.py [--edits 40] [--rate 2000] [--batch-rows 200] [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _db import admin_dsn, own_database
from _report import figure

from workbench.rules import version_of
from workbench.storage import BatchSummary, Listener, connect

ROOT = Path(__file__).resolve().parents[1]


def rule_file(points: int) -> str:
    return (
        "bands: {medium: 40, high: 70}\n"
        "features:\n  card_tx_10m: {agg: count, by: card_id, window: 10m}\n"
        "rules:\n"
        f"  - id: base\n    when: amount >= 0\n    score: {points}\n"
        "  - id: busy_card\n    when: card_tx_10m >= 3\n    score: 30\n"
        "    examples: {match: [{card_tx_10m: 5}], no_match: [{card_tx_10m: 1}]}\n"
    )


def q(values, p: float) -> float:
    return float(np.quantile(np.asarray(values, dtype=float), p)) if len(values) else float("nan")


def line(name: str, values_s) -> str:
    ms = [v * 1000.0 for v in values_s]
    return (
        f"  {name:<34} n={len(ms):>4}  p50 {q(ms, 0.5):7.0f} ms  p99 {q(ms, 0.99):7.0f} ms"
        f"  max {max(ms, default=float('nan')):7.0f} ms"
    )


class Batches:
    """Batch summaries of the worker: (arrival time, rule-set version)."""

    def __init__(self, dsn: str) -> None:
        self.listener = Listener(dsn)
        self.seen: list[tuple[float, str]] = []

    def pump(self, seconds: float) -> None:
        end = time.time() + seconds
        while time.time() < end:
            for payload in self.listener.poll(
                timeout=min(0.05, max(end - time.time(), 0)), limit=1
            ):
                self.seen.append((time.time(), BatchSummary.from_payload(payload).rule_set_version))

    def wait_version(self, version: str, since: int, timeout: float = 30.0) -> float | None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for at, v in self.seen[since:]:
                if v == version:
                    return at
            self.pump(0.02)
        return None


def gaps(seen: list[tuple[float, str]]) -> list[float]:
    times = [at for at, _ in seen]
    return list(np.diff(times)) if len(times) > 1 else []


def bench(args, dsn: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules"
        rules.mkdir()
        target = rules / "a.yaml"
        target.write_text(rule_file(1))
        env = {**os.environ, "WORKBENCH_DATABASE_URL": dsn, "WORKBENCH_SIM_CUSTOMERS": "2000"}
        cmd = [sys.executable, "-m", "workbench", "run", "--rules", str(rules)]
        cmd += ["--rate", str(args.rate), "--batch-rows", str(args.batch_rows)]
        log = Path(tmp) / "worker.log"
        with log.open("w") as out:
            worker = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            batches = Batches(dsn)
            first = batches.wait_version(version_of({"rules/a.yaml": rule_file(1)}), 0, 120)
            if first is None:
                raise SystemExit("the worker never committed a batch:\n" + log.read_text()[-2000:])
            batches.pump(args.warmup)
            quiet_from = len(batches.seen)
            batches.pump(args.quiet)
            quiet = gaps(batches.seen[quiet_from:])
            accepted, effect, missed = [], [], 0
            edits_from = len(batches.seen)
            with connect(dsn) as conn:
                for i in range(args.edits):
                    batches.pump(random.uniform(0.4, 1.0))
                    text = rule_file(2 + i)
                    version = version_of({"rules/a.yaml": text})
                    mark = len(batches.seen)
                    if args.rename:
                        tmp_file = rules / ".a.yaml.tmp"
                        tmp_file.write_text(text)
                        saved = time.time()
                        os.replace(tmp_file, target)
                    else:
                        saved = time.time()
                        target.write_text(text)
                    at = batches.wait_version(version, mark)
                    if at is None:
                        missed += 1
                        continue
                    effect.append(at - saved)
                    row = conn.execute(
                        "SELECT extract(epoch FROM created_at) FROM rule_sets"
                        " WHERE version = %s AND status = 'accepted' ORDER BY id LIMIT 1",
                        (version,),
                    ).fetchone()
                    if row is not None:
                        accepted.append(float(row[0]) - saved)
            during = gaps(batches.seen[edits_from:])
            batches.listener.close()
        finally:
            worker.send_signal(signal.SIGINT)
            worker.wait(timeout=60)
    interval = args.batch_rows / args.rate
    print(
        f"worker: rate {args.rate:g} tx/s, {args.batch_rows} rows per batch "
        f"(a batch every {interval * 1000:.0f} ms); {args.edits} edits "
        f"({'rename over' if args.rename else 'in place'}), {missed} not in effect within 30 s"
    )
    print(f"machine: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}")
    print(line("saved -> accepted (rule_sets row)", accepted))
    print(line("saved -> in effect (first commit)", effect))
    print("gaps between committed batches, side by side:")
    print(line("without edits", quiet))
    print(line("during edits", during))
    target_ms = 500.0
    for name, values in (("reload p99 (saved -> accepted)", accepted),
                         ("saved -> first batch committed, p99", effect)):  # fmt: skip
        p99 = q([v * 1000.0 for v in values], 0.99)
        figure(name, p99, "ms", anchor="target 500 ms", ratio=p99 / target_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=admin_dsn())
    parser.add_argument("--edits", type=int, default=40)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--batch-rows", type=int, default=200)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--quiet", type=float, default=10.0, help="seconds without edits")
    parser.add_argument("--rename", action="store_true", help="save by rename, like editors")
    parser.add_argument("--quick", action="store_true", help="10 edits, short phases (< 60 s)")
    args = parser.parse_args()
    if args.quick:
        args.edits, args.warmup, args.quiet = 10, 1.0, 3.0

    try:
        with own_database(args.dsn, "wb_bench_reload") as dsn:
            bench(args, dsn)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)


if __name__ == "__main__":
    main()
