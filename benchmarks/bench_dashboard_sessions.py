"""Dashboard server CPU per session: 1 and 5 concurrent Live-tab sessions while a worker streams.

Starts a pipeline worker (``python -m workbench run`` at ``--rate`` tx/s) and ``panel serve``
of the dashboard on a database of its own (the processes and helpers of
``bench_dashboard.py``), then, for each of ``--sessions`` (default 0, 1 and 5) headless
Chromium sessions open at once on the Live tab (each in its own browser context), measures
the CPU time (utime + stime from ``/proc``, every thread) of the ``panel serve`` process over
``--window`` seconds. Each count is measured ``--rounds`` times, in turn (0, 1, 5, 0, 1, 5,
...), so a drift of the machine's load shows as a spread rather than as a difference.

Printed per count: server CPU seconds per minute, and over the 0-session baseline (the
hub's LISTEN feed and the server's own ticks) CPU seconds per session per minute; then the
ratio of the 5-session figure to the 1-session one (total and per session). A per-session
ratio near 1 means a session costs the same whoever else is connected (nothing is
recomputed per session that could be shared, nor shared work repeated). Each window also
prints how long the server's event loop waited for a CPU: when it waits much, the server
is starved (the browsers, the worker and PostgreSQL share the cores) and its periodic
callbacks run late and less often, so the per-session cost reads lower than it would be
on a machine of its own.

``--anchor-tree DIR`` starts a second ``panel serve`` from another checkout (e.g. the main
branch) on the same database and worker, and measures both servers in turn within each
round: the per-session figures of the two code versions side by side, under the same load.
``--quick`` (one round of 0 and 1 session, 8 s windows) finishes within a minute.

The database ``wb_benchsess_<pid>`` is dropped at the end (WITH (FORCE)), also on Ctrl-C.
Prints figures; no pass/fail.

Usage: python benchmarks/bench_dashboard_sessions.py [--window 30] [--sessions 0,1,5]
       [--anchor-tree /path/to/other/checkout] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from _db import admin_dsn
from _report import figure
from bench_dashboard import (
    CHROMIUM,
    CHROMIUM_ARGS,
    close_pages,
    cpu_seconds,
    machine_jiffies,
    open_pages,
    run_bench,
    running,
    runqueue_wait_s,
    start_panel,
    stop,
    wait_destroyed,
)
from playwright.sync_api import sync_playwright

from workbench.storage import connect, pipeline_totals


def cpu_per_minute(pid: int, window_s: float) -> tuple[float, float, float]:
    """Over a ``window_s`` second wait: CPU seconds the process ``pid`` used per minute, the
    share of the time its main thread (the event loop) was runnable but waiting for a CPU,
    and how busy the machine was (both %)."""
    cpu0, wait0, (busy0, total0) = cpu_seconds(pid), runqueue_wait_s(pid), machine_jiffies()
    start = time.monotonic()
    time.sleep(window_s)
    elapsed = time.monotonic() - start
    cpu1, wait1, (busy1, total1) = cpu_seconds(pid), runqueue_wait_s(pid), machine_jiffies()
    return (60.0 * (cpu1 - cpu0) / elapsed, 100.0 * (wait1 - wait0) / elapsed,
            100.0 * (busy1 - busy0) / (total1 - total0))  # fmt: skip


def measure(browser, servers: list[tuple], args) -> dict[str, dict[int, list[float]]]:
    """Server CPU s/min for each server (name, pid, url, log) and session count,
    ``args.rounds`` times each, the servers in turn within each round."""
    figures: dict[str, dict[int, list[float]]] = {s[0]: {n: [] for n in args.sessions}
                                                  for s in servers}  # fmt: skip
    for round_ in range(1, args.rounds + 1):
        for name, pid, url, log in servers:
            for n in args.sessions:
                contexts = open_pages(browser, url, n)
                time.sleep(args.settle)  # the first deltas and any page-load work
                cpu, wait, busy = cpu_per_minute(pid, args.window)
                figures[name][n].append(cpu)
                close_pages(contexts)
                left, _ = wait_destroyed(log, 60.0)
                print(f"   round {round_}, {name}, {n} session(s): server {cpu:6.2f} CPU s/min; "
                      f"its event loop waited for a CPU {wait:4.1f} % of the time, machine busy "
                      f"{busy:3.0f} %{f' ({left} session(s) not destroyed yet)' if left else ''}",
                      flush=True)  # fmt: skip
    return figures


def report(figures: dict[int, list[float]], name: str = "this tree") -> dict[int, float]:
    """Prints the figures of one server; returns CPU s per session per minute by count."""
    base = statistics.median(figures[0]) if 0 in figures else 0.0
    per: dict[int, float] = {}
    print(f"\nserver CPU, {name} (median of rounds; spread min..max)")
    for n, values in figures.items():
        total = statistics.median(values)
        line = f"   {n} session(s): {total:6.2f} CPU s/min ({min(values):.2f}..{max(values):.2f})"
        if n:
            per[n] = (total - base) / n
            line += f"   -> {per[n]:5.2f} CPU s per session per minute over the baseline"
        print(line)
    if 1 in per and 5 in per and per[1] > 0:
        totals = statistics.median(figures[5]), statistics.median(figures[1])
        print(
            f"\n   ratio 5 sessions / 1 session: total {totals[0] / totals[1]:.2f}, "
            f"over baseline {(per[5] * 5) / per[1]:.2f}, per session {per[5] / per[1]:.2f}"
        )
    return per


def bench(args, db_dsn: str, logs: Path) -> None:
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; "
          f"worker at {args.rate:,.0f} tx/s in batches of {args.batch_rows}; window "
          f"{args.window:g}s after {args.settle:g}s to settle; {args.rounds} round(s)",
          flush=True)  # fmt: skip
    started = time.monotonic()
    with running(db_dsn, logs, args) as (_worker, panel, url):
        servers = [("this tree", panel.pid, url, logs / "panel.log")]
        anchor = None
        try:
            if args.anchor_tree:
                anchor, anchor_url = start_panel(db_dsn, logs / "anchor.log", args,
                                                 Path(args.anchor_tree).resolve())  # fmt: skip
                servers.insert(0, ("anchor", anchor.pid, anchor_url, logs / "anchor.log"))
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                figures = measure(browser, servers, args)
                browser.close()
        finally:
            stop(anchor)
        with connect(db_dsn) as conn:
            stored = pipeline_totals(conn)["stored"]
        ran = time.monotonic() - started
        load = os.getloadavg()[0]
        print(f"   (worker stored {stored:,} rows in {ran:.0f}s: {stored / ran:,.0f} tx/s)")
        per = report(figures["this tree"])
        before = report(figures["anchor"], f"anchor {args.anchor_tree}") if anchor else {}
        print(f"\n(load average {load:.2f} at end; the browser, the worker, "
              f"PostgreSQL and the server share {os.cpu_count()} cores)")  # fmt: skip
        if 1 in per:
            pct = 100.0 * per[1] / 60.0  # CPU s per minute -> % of a core
            old = 100.0 * before[1] / 60.0 if 1 in before else None
            ratio = pct / 5.0 if old is None else (pct / old if old > 0 else None)
            figure("dashboard CPU per session", pct, "% of a core",
                   anchor="target 5 %" if old is None else f"anchor tree ({old:.1f} %)",
                   ratio=ratio)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=admin_dsn())
    parser.add_argument("--sessions", default="0,1,5", help="concurrent session counts")
    parser.add_argument("--window", type=float, default=30.0, help="CPU window, seconds")
    parser.add_argument("--settle", type=float, default=5.0, help="wait before a window, s")
    parser.add_argument("--rounds", type=int, default=2, help="measurements per count")
    parser.add_argument("--rate", type=float, default=1000.0, help="worker tx/s")
    parser.add_argument("--batch-rows", type=int, default=500, help="worker batch size")
    parser.add_argument("--anchor-tree", help="another checkout, served and measured in turn")
    parser.add_argument("--quick", action="store_true", help="1 round of 0 and 1 session, 8 s")
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.window, args.settle, args.rounds = "0,1", 8.0, 3.0, 1
    args.sessions = [int(n) for n in args.sessions.split(",")]
    args.session_lifetime = 1000  # ms: closed sessions go before the next count is measured
    run_bench(bench, args, "wb_benchsess")


if __name__ == "__main__":
    main()
