"""Live dashboard under load: server CPU per session, memory over session churn, commit delay.

Starts a pipeline worker (``python -m workbench run`` at ``--rate`` tx/s) and ``panel serve``
of the dashboard as subprocesses on a database of its own, drives real browser sessions with
Playwright (Debian chromium, one browser, one context per session), then:

1. CPU: CPU seconds of the ``panel serve`` process (utime + stime from /proc) over
   ``--window`` seconds with 0 sessions, then with each of ``--sessions`` open at once.
2. Memory: for ``--minutes``, open 3 sessions, keep them 5 s, close them, repeat; the
   server's RSS (VmRSS) is sampled every 15 s. At the end every closed session must have
   been destroyed by the server (Bokeh documents built minus destroyed, counted from the
   server's Panel INFO log).
3. Delay: the worker is stopped; with one page open, ``--commits`` times one small batch is
   committed with a ``workbench.storage.BatchWriter`` (which NOTIFYs) and the clock runs until
   the page's "Transactions" KPI shows the new total.

Bokeh keeps a closed session (and its 500 ms pull) until it has been unused for
``--unused-session-lifetime``, checked every ``--check-unused-sessions``: ``panel serve`` gets
``--session-lifetime`` (default 1 s), checked every second, so closed sessions go quickly.
A session built by the page's HTTP request that is still unconnected after that lifetime is
discarded, and Bokeh builds it again when the page's websocket arrives: "documents built"
above "pages opened" counts those rebuilds.

``--anchor-tree DIR`` also serves the dashboard of another checkout (e.g. the main branch)
on the same database and measures its commit -> browser delay in the same run, in a block
of commits just before this tree's. ``--quick`` (1 session, 8 s window, no churn, 10
commits) finishes within about a minute.

The database ``wb_benchdash_<pid>`` on the server of ``--dsn`` is dropped at the end (WITH
(FORCE)), also on Ctrl-C. Prints figures; no pass/fail.

Usage: python benchmarks/bench_dashboard.py [--minutes 10] [--sessions 1,5,10] [--window 20]
       [--anchor-tree /path/to/other/checkout] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
from _db import admin_dsn, own_database
from _report import figure
from playwright.sync_api import sync_playwright

from workbench.schema import coerce
from workbench.scoring.result import ScoredBatch
from workbench.storage import BatchWriter, connect, pipeline_totals, upgrade

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    *("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"),
    *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
]
TICK = os.sysconf("SC_CLK_TCK")
RSS_EVERY_S = 15.0
CHURN_PAGES, CHURN_HOLD_S = 3, 5.0
LOAD_TIMEOUT_MS = 180_000
# The KPI is a pn.indicators.Number: host div (class kpi-processed) > shadow root > wrapper
# div > [name div, value div]. Text like "1,234,500".
KPI_VALUE_JS = (
    "el => Number(el.shadowRoot.lastElementChild.lastElementChild.textContent"
    ".replace(/[^0-9]/g, ''))"
)
KPI_REACHED_JS = f"([el, want]) => ({KPI_VALUE_JS})(el) >= want"


# -- measuring the server process ---------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, to show how contended each window was."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def documents(log: Path) -> tuple[int, int]:
    """(documents built, documents destroyed) so far by the server, from Panel's INFO log
    (``PANEL_LOG_LEVEL=info``): exact per Bokeh document, rebuilt ones included."""
    text = log.read_text(errors="replace")
    built = len(re.findall(r"Session \d+ launching", text))
    return built, len(re.findall(r"Session \d+ destroyed", text))


def alive(log: Path) -> int:
    built, destroyed = documents(log)
    return built - destroyed


def wait_destroyed(log: Path, timeout_s: float) -> tuple[int, float]:
    """Wait until the server has destroyed every session: (still alive, seconds waited)."""
    start = time.monotonic()
    while (left := alive(log)) and time.monotonic() - start < timeout_s:
        time.sleep(0.5)
    return left, time.monotonic() - start


# -- processes and pages ------------------------------------------------------------------


def spawn(cmd: list[str], env: dict, log: Path, cwd: Path = ROOT) -> subprocess.Popen:
    # A session of its own: a terminal Ctrl-C reaches only this script, which stops it.
    with log.open("wb") as out:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_server(proc: subprocess.Popen, port: int, timeout_s: float = 180.0) -> None:
    """Until the server listens (it does once the setup script and the app are loaded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"panel serve exited with code {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.5)
    raise RuntimeError(f"panel serve did not answer within {timeout_s:.0f}s")


def start_processes(
    db_dsn: str, logs: Path, args
) -> tuple[subprocess.Popen, subprocess.Popen, str]:
    """The pipeline worker (``args.rate``, ``args.batch_rows``) and ``panel serve`` (INFO log
    ``logs/panel.log``, closed sessions dropped after ``args.session_lifetime`` ms) on
    ``db_dsn``, once the server listens: (worker, server, the app's URL)."""
    env = {**os.environ, "WORKBENCH_DATABASE_URL": db_dsn}
    worker = spawn([sys.executable, "-m", "workbench", "run", "--rate", str(args.rate),
                    "--batch-rows", str(args.batch_rows)], env, logs / "worker.log")  # fmt: skip
    try:
        panel, url = start_panel(db_dsn, logs / "panel.log", args)
    except BaseException:
        stop(worker, signal.SIGINT)
        raise
    return worker, panel, url


def start_panel(db_dsn: str, log: Path, args, tree: Path = ROOT) -> tuple[subprocess.Popen, str]:
    """``panel serve`` of the dashboard in the checkout ``tree`` (its code: another checkout
    is an anchor measured beside this one), once it listens: (process, the app's URL)."""
    env = {**os.environ, "WORKBENCH_DATABASE_URL": db_dsn, "PYTHONPATH": str(tree),
           "PANEL_LOG_LEVEL": "info", "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip
    port = free_port()
    panel = spawn([sys.executable, "-m", "panel", "serve", "workbench/dashboard/app.py",
                   "--setup", "workbench/dashboard/startup.py", "--port", str(port),
                   "--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{port}",
                   "--check-unused-sessions", "1000",
                   "--unused-session-lifetime", str(args.session_lifetime)],
                  env, log, cwd=tree)  # fmt: skip
    try:
        wait_server(panel, port)
    except BaseException:
        stop(panel)
        raise
    return panel, f"http://127.0.0.1:{port}/app"


@contextlib.contextmanager
def running(
    db_dsn: str, logs: Path, args
) -> Iterator[tuple[subprocess.Popen, subprocess.Popen, str]]:
    """The database migrated, then :func:`start_processes`; both processes stopped at the
    end, and the tails of their logs printed when something failed."""
    with connect(db_dsn) as conn:
        upgrade(conn)
    worker = panel = None
    try:
        worker, panel, url = start_processes(db_dsn, logs, args)
        yield worker, panel, url
    except BaseException:
        print_logs(logs)
        raise
    finally:
        stop(panel)
        stop(worker, signal.SIGINT)


def print_logs(logs: Path) -> None:
    """The last lines of every process log, after a failure."""
    for log in sorted(logs.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-15:]
        print(f"--- last lines of {log.name}:\n" + "\n".join(tail), file=sys.stderr)


def run_bench(bench: Callable, args, name: str) -> None:
    """``bench(args, db_dsn, logs)`` in a database of its own ``name_<pid>`` (on the server of
    ``args.dsn``) with a temporary folder for the process logs; Ctrl-C exits with 130 once
    the database is dropped."""
    try:
        with (
            own_database(args.dsn, name) as db_dsn,
            tempfile.TemporaryDirectory(prefix=f"{name}_{os.getpid()}_") as logs,
        ):
            bench(args, db_dsn, Path(logs))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def open_pages(browser, url: str, n: int) -> list:
    """``n`` sessions, each in its own browser context, returned once each shows the
    Transactions KPI. Each request is sent once the previous one is answered, so the server
    builds one session while the browser renders the ones before."""
    contexts = [browser.new_context() for _ in range(n)]
    pages = [context.new_page() for context in contexts]
    for page in pages:
        page.goto(url, timeout=LOAD_TIMEOUT_MS, wait_until="commit")
    for page in pages:
        page.locator(".kpi-processed").wait_for(timeout=LOAD_TIMEOUT_MS)
    return contexts


def close_pages(contexts: list) -> None:
    for context in contexts:
        context.close()


# -- the three measurements ---------------------------------------------------------------


def db_connections(conn) -> int:
    """Connections ever made to this database (PostgreSQL 14+)."""
    query = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
    return int(conn.execute(query).fetchone()[0])


def runqueue_wait_s(pid: int) -> float:
    """Seconds the main thread (the server's event loop) spent runnable but waiting for a CPU."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def cpu_window(pid: int, seconds: float, conn) -> dict:
    """Over ``seconds``: server CPU %, its event loop's wait for a CPU %, machine busy %, new
    database connections per second."""

    def now() -> tuple:
        return cpu_seconds(pid), runqueue_wait_s(pid), machine_jiffies(), db_connections(conn)

    cpu0, wait0, (busy0, total0), db0 = now()
    time.sleep(seconds)
    cpu1, wait1, (busy1, total1), db1 = now()
    return {"cpu": 100.0 * (cpu1 - cpu0) / seconds, "wait": 100.0 * (wait1 - wait0) / seconds,
            "busy": 100.0 * (busy1 - busy0) / (total1 - total0),
            "connects": (db1 - db0) / seconds}  # fmt: skip


def measure_cpu(browser, url: str, pid: int, log: Path, db_dsn: str, args) -> list[dict]:
    conn = psycopg.connect(db_dsn, autocommit=True)
    rows = []
    for n in [0, *args.sessions]:
        t = time.monotonic()
        contexts = open_pages(browser, url, n)
        opened_s = time.monotonic() - t
        time.sleep(5.0)  # let the first deltas and any page-load work settle
        row = {"n": n, **cpu_window(pid, args.window, conn)}
        close_pages(contexts)
        left, waited = wait_destroyed(log, args.session_lifetime / 1000 + 30)
        rows.append(row)
        print(f"   {n:2} sessions: server CPU {row['cpu']:5.1f} %, event loop waiting for a CPU "
              f"{row['wait']:4.1f} %, {row['connects']:4.2f} new DB connections/s (machine busy "
              f"{row['busy']:3.0f} %; opened in {opened_s:4.1f}s; destroyed {waited:4.1f}s "
              f"after close, {left} left)", flush=True)  # fmt: skip
    conn.close()
    return rows


def measure_memory(browser, url: str, pid: int, log: Path, args) -> dict:
    samples: list[tuple[float, float, int]] = []  # (s since start, RSS MB, sessions alive)
    start, done = time.monotonic(), threading.Event()

    def sample() -> None:
        while True:
            samples.append((time.monotonic() - start, rss_mb(pid), alive(log)))
            if done.wait(RSS_EVERY_S):
                return

    idle_before = rss_mb(pid)
    sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    sampler.start()
    opened, deadline = 0, start + 60.0 * args.minutes
    try:
        while time.monotonic() < deadline:
            contexts = open_pages(browser, url, CHURN_PAGES)
            opened += len(contexts)
            time.sleep(CHURN_HOLD_S)
            close_pages(contexts)
            time.sleep(2.0)
    finally:
        done.set()
        sampler.join()
    left, waited = wait_destroyed(log, args.session_lifetime / 1000 + 60)
    time.sleep(2.0)
    run_s = time.monotonic() - start
    return {"samples": samples, "opened": opened, "alive": left, "destroy_s": waited,
            "idle_before": idle_before, "idle_after": rss_mb(pid), "run_s": run_s}  # fmt: skip


def small_batch(i: int, rows: int) -> ScoredBatch:
    """``rows`` Low-band transactions with new ids (no alerts), stamped now."""
    raw = pd.DataFrame({
        "tx_id": [f"benchdash-{i}-{k}" for k in range(rows)],
        "ts": [pd.Timestamp.now(tz="UTC")] * rows,
        "card_id": [f"benchdash-card-{k}" for k in range(rows)],
        "amount": [12.5] * rows,
    })  # fmt: skip
    frame, dead = coerce(raw)
    frame["risk_score"] = 5.0
    frame["band"] = pd.Series(["Low"] * rows, dtype="str")
    frame["rule_set_version"] = pd.Series(["bench"] * rows, dtype="str")
    hits = pd.DataFrame({"row": pd.Series([], dtype="int64"),
                         "rule_id": pd.Series([], dtype="str"),
                         "points": pd.Series([], dtype="float64")})  # fmt: skip
    return ScoredBatch(frame=frame, hits=hits, dead=dead)


def measure_delay(browser, url: str, db_dsn: str, commits: int) -> dict:
    """Commit -> the page showing the new total, ``commits`` times at random phases of the
    sessions' 500 ms pull; also commit -> the websocket message carrying the new total."""
    rng = random.Random(1)
    context = browser.new_context()
    frames: list[tuple[float, str]] = []  # (perf_counter, text) received since the commit

    def on_frame(data) -> None:
        frames.append((time.perf_counter(), data if isinstance(data, str) else ""))

    try:
        page = context.new_page()
        page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
        page.goto(url, timeout=LOAD_TIMEOUT_MS)
        kpi = page.locator(".kpi-processed")
        kpi.wait_for(timeout=LOAD_TIMEOUT_MS)
        with connect(db_dsn) as conn:
            writer = BatchWriter(conn)
            stored = pipeline_totals(conn)["stored"]
            page.wait_for_function(KPI_REACHED_JS, arg=[kpi.element_handle(), stored],
                                   timeout=30_000)  # fmt: skip
            commit_ms, frame_ms, shown_ms = [], [], []
            for i in range(commits):
                time.sleep(rng.uniform(0.2, 1.2))
                handle = kpi.element_handle()
                want = handle.evaluate(KPI_VALUE_JS)
                batch = small_batch(i, 10)
                frames.clear()
                t0 = time.perf_counter()
                want += writer.write(batch, worker="bench", source="bench").stored
                t1 = time.perf_counter()
                page.wait_for_function(KPI_REACHED_JS, arg=[handle, want], polling="raf",
                                       timeout=10_000)  # fmt: skip
                t2 = time.perf_counter()
                # the KPI's new value, as a number in the patch (or as text)
                texts = (f":{want}", f"{want:,}")
                arrived = next((t for t, data in frames if any(x in data for x in texts)),
                               np.nan)  # fmt: skip
                commit_ms.append(1e3 * (t1 - t0))
                frame_ms.append(1e3 * (arrived - t0))
                shown_ms.append(1e3 * (t2 - t0))
    finally:
        context.close()
    return {"commit": np.array(commit_ms), "frame": np.array(frame_ms),
            "shown": np.array(shown_ms)}  # fmt: skip


# -- the run ------------------------------------------------------------------------------


def bench(args, db_dsn: str, logs: Path) -> None:
    log = logs / "panel.log"
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; "
          f"worker at {args.rate:,.0f} tx/s in batches of {args.batch_rows}; panel serve "
          f"--check-unused-sessions 1000 --unused-session-lifetime {args.session_lifetime}",
          flush=True)  # fmt: skip
    worker_start = time.monotonic()
    with running(db_dsn, logs, args) as (worker, panel, url):
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            print("\n1. server CPU with N concurrent sessions (worker running)", flush=True)
            cpu = measure_cpu(browser, url, panel.pid, log, db_dsn, args)
            mem = None
            if args.minutes > 0:
                print(f"\n2. memory: open {CHURN_PAGES} sessions, keep {CHURN_HOLD_S:g}s, "
                      f"close, repeat for {args.minutes:g} min", flush=True)  # fmt: skip
                mem = measure_memory(browser, url, panel.pid, log, args)
                print_memory(mem)
            with connect(db_dsn) as conn:
                stored = pipeline_totals(conn)["stored"]
            ran = time.monotonic() - worker_start
            stop(worker, signal.SIGINT)
            print(f"\n   (worker stored {stored:,} rows in {ran:.0f}s: {stored / ran:,.0f} tx/s)")
            print(f"\n3. commit -> browser: {args.commits} commits of 10 rows, one page open, "
                  "worker stopped", flush=True)  # fmt: skip
            anchor_delay = None
            if args.anchor_tree:
                anchor, anchor_url = start_panel(db_dsn, logs / "anchor.log", args,
                                                 Path(args.anchor_tree).resolve())  # fmt: skip
                try:
                    anchor_delay = measure_delay(browser, anchor_url, db_dsn, args.commits)
                finally:
                    stop(anchor)
            delay = measure_delay(browser, url, db_dsn, args.commits)
            browser.close()
        pages = sum(args.sessions) + (mem["opened"] if mem else 0) + 1
        docs = (pages, *documents(log))
        print(f"   BatchWriter.write (commit + NOTIFY) ms: p50 {np.median(delay['commit']):.0f}, "
              f"max {delay['commit'].max():.0f}")  # fmt: skip
        for key, label in (("frame", "websocket message"), ("shown", "shown")):
            print(f"   commit -> {label} ms: " + " ".join(f"{v:.0f}" for v in delay[key]))
        print_summary(cpu, mem, delay, docs)
        if anchor_delay is not None:
            v = anchor_delay["shown"]
            print(f"   {'anchor tree: commit -> browser, p50 / p95':44} "
                  f"{np.nanpercentile(v, 50):6.0f} / {np.nanpercentile(v, 95):.0f} ms")  # fmt: skip
        print(f"\n(load average {os.getloadavg()[0]:.2f} at end; 2 shared cores: the browser, "
              "the worker, PostgreSQL and the server compete)")  # fmt: skip
        report_figures(cpu, delay, anchor_delay)


def report_figures(cpu: list[dict], delay: dict, anchor_delay: dict | None) -> None:
    """The headline figures (one machine-readable line each)."""
    base = cpu[0]["cpu"]
    for row in cpu[1:2]:  # the first session count: the marginal cost of a session
        per = (row["cpu"] - base) / row["n"]
        figure(f"dashboard CPU per session ({row['n']} open)", per, "% of a core",
               anchor="target 5 %", ratio=per / 5.0)  # fmt: skip
    p95 = float(np.nanpercentile(delay["shown"], 95))
    if anchor_delay is not None:
        old = float(np.nanpercentile(anchor_delay["shown"], 95))
        figure("commit -> browser p95", p95, "ms", anchor=f"anchor tree ({old:.0f} ms)",
               ratio=p95 / old)  # fmt: skip
    else:
        figure("commit -> browser p95", p95, "ms", anchor="target 500 ms", ratio=p95 / 500.0)


def print_memory(mem: dict) -> None:
    s = mem["samples"]
    print("   t(s) RSS(MB) [sessions alive]:")
    for i in range(0, len(s), 6):
        print("   " + "  ".join(f"{t:4.0f} {r:6.1f} [{a}]" for t, r, a in s[i : i + 6]))
    t, r = np.array([x[0] for x in s]), np.array([x[1] for x in s])
    quarter = max(t[-1] / 4, RSS_EVERY_S)
    early, late = np.median(r[t <= quarter]), np.median(r[t >= t[-1] - quarter])
    slope = np.polyfit(t[t >= t[-1] / 2] / 60, r[t >= t[-1] / 2], 1)[0] if len(s) > 3 else np.nan
    mem.update(early=early, late=late, slope=slope, quarter=quarter)
    print(f"   {mem['opened']} sessions opened in {mem['run_s']:.0f}s; {mem['alive']} still alive "
          f"{mem['destroy_s']:.0f}s after the last close")  # fmt: skip
    print(f"   RSS median first {quarter:.0f}s {early:.1f} MB -> last {quarter:.0f}s {late:.1f} MB "
          f"({late - early:+.1f} MB); slope over the second half {slope:+.2f} MB/min")  # fmt: skip
    print(
        f"   RSS with 0 sessions: {mem['idle_before']:.1f} MB before -> "
        f"{mem['idle_after']:.1f} MB after ({mem['idle_after'] - mem['idle_before']:+.1f} MB)"
    )


def print_summary(
    cpu: list[dict], mem: dict | None, delay: dict, docs: tuple[int, int, int]
) -> None:
    base = cpu[0]["cpu"]
    print("\nsummary")
    print(f"   {'server CPU, 0 sessions (baseline)':44} {base:6.1f} %")
    for row in cpu[1:]:
        per = (row["cpu"] - base) / row["n"]
        print(f"   {'server CPU, ' + str(row['n']) + ' sessions':44} {row['cpu']:6.1f} %   "
              f"{per:5.1f} % per session over baseline; "
              f"{row['connects']:.2f} DB connects/s")  # fmt: skip
    if mem is not None:
        print(f"   {'RSS, first -> last quarter of churn (median)':44} {mem['early']:6.1f} -> "
              f"{mem['late']:.1f} MB ({mem['late'] - mem['early']:+.1f} MB, "
              f"{mem['slope']:+.2f} MB/min in 2nd half)")  # fmt: skip
        print(f"   {'RSS idle, before -> after churn':44} {mem['idle_before']:6.1f} -> "
              f"{mem['idle_after']:.1f} MB")  # fmt: skip
        print(f"   {'sessions opened / alive after close':44} {mem['opened']:6} / "
              f"{mem['alive']}")  # fmt: skip
    pages, built, destroyed = docs
    print(f"   {'pages opened / documents built / destroyed':44} {pages:6} / {built} / "
          f"{destroyed}")  # fmt: skip
    for key, label in (("frame", "websocket message"), ("shown", "browser shows it")):
        v = delay[key]
        p50, p95 = np.nanpercentile(v, [50, 95])
        print(f"   {'commit -> ' + label + ', p50 / p95 / max':44} {p50:6.0f} / {p95:.0f} / "
              f"{np.nanmax(v):.0f} ms (n={np.count_nonzero(~np.isnan(v))})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=admin_dsn())
    parser.add_argument("--minutes", type=float, default=10.0, help="session churn duration")
    parser.add_argument("--sessions", default="1,5,10", help="concurrent sessions for CPU")
    parser.add_argument("--window", type=float, default=20.0, help="CPU window, seconds")
    parser.add_argument("--commits", type=int, default=20, help="commits for the delay")
    parser.add_argument("--rate", type=float, default=2000.0, help="worker tx/s")
    parser.add_argument("--batch-rows", type=int, default=500, help="worker batch size")
    parser.add_argument("--session-lifetime", type=int, default=1000,
                        help="--unused-session-lifetime for panel serve, ms")  # fmt: skip
    parser.add_argument("--anchor-tree", help="another checkout: its commit -> browser delay too")
    parser.add_argument("--quick", action="store_true", help="1 session, 8 s, no churn, 10 commits")
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.window, args.minutes, args.commits = "1", 8.0, 0.0, 10
    args.sessions = [int(n) for n in args.sessions.split(",")]

    run_bench(bench, args, "wb_benchdash")


if __name__ == "__main__":
    main()
