"""Cold start: from ``workbench run`` to its first stored batch, side by side in one run.

Each run is a real ``workbench run --source simulator`` process (default settings: the
default rules, 1000-row batches at 1000 transactions/s) on a fresh database of its own
(migrated by the worker itself, as on a fresh install), timed from process start to the
first row in ``transactions``:

- *fresh install*: an empty numba cache directory (``WORKBENCH_NUMBA_CACHE_DIR``), so the
  first batch waits for the feature kernels to compile (what every fresh install and every
  Docker container start paid before the image shipped a compiled cache);
- *after warmup*: the same directory after ``workbench warmup`` (timed apart: what
  ``make install`` and the Docker build pay once).

The runs alternate (``--repeat`` pairs), each fresh-install run on a newly emptied cache.
The worker's log lines "compiled numba kernel ..." are counted per run (none expected after
warmup). Prints figures, the ratio of the two and each against the 5 s target, the machine's
cores and load average; no pass/fail.

The script creates one database per run on the server of ``--dsn`` (or
``WORKBENCH_BENCH_DSN``) and drops it afterwards.

With ``--quick``: one start after warmup only, on the default kernel cache (the one
``make install`` warmed; ``workbench warmup`` first, about a second when it is current), no
fresh-install start (its compilation alone takes longer than a brief run).

Usage: python benchmarks/bench_cold_start.py [--repeat 2] [--dsn DSN] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from _db import admin_dsn, own_database
from _report import figure

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 5.0


def env_for(dsn: str, cache: Path | None) -> dict[str, str]:
    """The worker's environment; ``cache`` None: the default kernel cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "WORKBENCH_"))}
    env.update(
        WORKBENCH_DATABASE_URL=dsn, WORKBENCH_RULES_DIR=str(ROOT / "rules"), PYTHONPATH=str(ROOT)
    )
    if cache is not None:
        env["WORKBENCH_NUMBA_CACHE_DIR"] = str(cache)
    return env


def stored(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            return conn.execute("SELECT EXISTS (SELECT 1 FROM transactions)").fetchone()[0]
    except psycopg.errors.UndefinedTable:
        return False
    except psycopg.OperationalError:
        return False


def first_batch(
    base: str, cache: Path | None, prefix: str, timeout: float = 300.0
) -> tuple[float, int]:
    """Seconds from starting ``workbench run`` to its first stored row, and the number of
    compilation lines it logged meanwhile."""
    with own_database(base, prefix) as dsn, tempfile.TemporaryFile("w+") as log:
        cmd = [sys.executable, "-m", "workbench", "run", "--source", "simulator"]
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env_for(dsn, cache), stdout=log, stderr=log)
        try:
            while not stored(dsn):
                if proc.poll() is not None:
                    log.seek(0)
                    raise SystemExit(f"the worker exited ({proc.returncode}):\n{log.read()}")
                if time.perf_counter() - started > timeout:
                    raise SystemExit(f"no batch stored in {timeout:.0f} s")
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.seek(0)
        compiled = sum("compiled numba kernel" in line for line in log)
        return elapsed, compiled


def warmup(cache: Path | None) -> float:
    env = env_for("", cache)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "workbench", "warmup"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=admin_dsn())
    parser.add_argument("--repeat", type=int, default=2, help="pairs of runs")
    parser.add_argument("--quick", action="store_true", help="one start after warmup only")
    args = parser.parse_args()
    if args.quick:
        quick(args.dsn)
        return

    root = Path(tempfile.mkdtemp(prefix="wb_bench_cold_"))
    cold, warm, warmups, lines = [], [], [], {"cold": [], "warm": []}
    try:
        for i in range(args.repeat):
            cache = root / f"numba-{i}"
            shutil.rmtree(cache, ignore_errors=True)
            cache.mkdir()
            seconds, n = first_batch(args.dsn, cache, f"wb_bench_cold_{i}c")
            cold.append(seconds)
            lines["cold"].append(n)
            print(f"run {i + 1}: fresh install  {seconds:6.2f} s ({n} kernels compiled)")
            shutil.rmtree(cache)
            cache.mkdir()
            warmups.append(warmup(cache))
            seconds, n = first_batch(args.dsn, cache, f"wb_bench_cold_{i}w")
            warm.append(seconds)
            lines["warm"].append(n)
            print(
                f"run {i + 1}: after warmup   {seconds:6.2f} s ({n} kernels compiled; "
                f"the warmup took {warmups[-1]:.1f} s)"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)

    load = os.getloadavg()
    print()
    print(
        f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f}; Python {sys.version.split()[0]}"
    )
    print("| start | first stored batch (s) | vs the 5 s target | kernels compiled |")
    print("|---|---|---|---|")
    for label, times, key in (("fresh install", cold, "cold"), ("after warmup", warm, "warm")):
        span = f"{min(times):.2f}-{max(times):.2f}" if len(times) > 1 else f"{times[0]:.2f}"
        mid = statistics.median(times)
        print(
            f"| {label} | {span} (median {mid:.2f}) | {mid / TARGET_S:.2f}x | "
            f"{'/'.join(map(str, lines[key]))} |"
        )
    print(
        f"fresh install / after warmup: {statistics.median(cold) / statistics.median(warm):.1f}x; "
        f"workbench warmup itself (empty cache): {min(warmups):.1f}-{max(warmups):.1f} s"
    )
    mid_cold, mid_warm = statistics.median(cold), statistics.median(warm)
    figure("first stored batch, fresh install", mid_cold, "s", anchor="5 s target",
           ratio=mid_cold / TARGET_S)  # fmt: skip
    figure("first stored batch, after warmup", mid_warm, "s", anchor="5 s target",
           ratio=mid_warm / TARGET_S)  # fmt: skip


def quick(dsn: str) -> None:
    """One start after ``workbench warmup`` on the default kernel cache."""
    took = warmup(None)
    seconds, n = first_batch(dsn, None, "wb_bench_cold_q")
    load = os.getloadavg()
    print(
        f"after warmup (default kernel cache; warmup {took:.1f} s): first stored batch "
        f"{seconds:.2f} s ({n} kernels compiled), {seconds / TARGET_S:.2f}x the 5 s target; "
        f"{os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"
    )
    figure("first stored batch, after warmup", seconds, "s", anchor="5 s target",
           ratio=seconds / TARGET_S)  # fmt: skip


if __name__ == "__main__":
    main()
