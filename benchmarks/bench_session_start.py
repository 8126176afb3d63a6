"""Dashboard session start: how soon an analyst sees the page, eager build against lazy build.

Serves the dashboard twice, side by side on one database: the code of ``--old`` (a git
revision that built every page with the session; default: the last one before pages were
built lazily), unpacked into a temporary folder, and the code of this working tree. A seed
run of the pipeline worker (``--seed-s`` seconds) stores transactions first, so the pages
have data. Then, ``--runs`` times, alternating old and new, Debian's Chromium opens the page
in a fresh browser context (a new session) and the clock runs from navigation to:

- first paint: the browser's first contentful paint (Performance API);
- header: the page's header is shown;
- tab bar: the fifth tab header is shown;
- Live ready: Live's "Transactions" KPI is shown (the page the analyst came for).

Server side, from each server's log (Panel's INFO lines): the session build, from "Session
launching" to "Session created" (the HTTP answer waits for it: the page stays blank), and
for the new code the first page's own build after the page is shown ("Live page built in").

Prints medians and each run; no pass/fail. The database ``wb_benchsess_<pid>`` is dropped at
the end (WITH (FORCE)), also on Ctrl-C.

Usage: python benchmarks/bench_session_start.py [--runs 8] [--old REV] [--seed-s 10] [--quick]
(--quick: 2 page loads each, 3 s of seed data.)
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from _db import admin_dsn, own_database
from _report import figure

# A sibling script (run as ``python benchmarks/...``: its folder is on the path).
from bench_dashboard import CHROMIUM, CHROMIUM_ARGS, free_port, stop, wait_server
from playwright.sync_api import sync_playwright

from workbench.storage import connect, upgrade

ROOT = Path(__file__).resolve().parents[1]
OLD_REV = "5246ee1"  # every page built with the session (before the lazy build)
LOAD_TIMEOUT_MS = 180_000
MARKS = (
    ("header", ".wb-header"),
    ("tab bar", ".bk-tab >> nth=4"),
    ("Live ready", ".kpi-processed"),
)
FCP_JS = """() => new Promise((done) => {
  const get = () => performance.getEntriesByName("first-contentful-paint")[0];
  const e = get();
  if (e) return done(e.startTime / 1000);
  new PerformanceObserver(() => done(get().startTime / 1000)).observe({type: "paint"});
})"""
# ``panel serve`` with the session module's INFO lines ("Live page built in ...") shown: Bokeh
# sets only its own logger's level.
SERVE_LOGGING = (
    "import logging, sys; from panel.command import main; "
    "h = logging.StreamHandler(sys.stdout); "
    "h.setFormatter(logging.Formatter('%(asctime)s %(name)s %(message)s')); "
    "log = logging.getLogger('workbench.dashboard.session'); "
    "log.addHandler(h); log.setLevel(logging.INFO); main(['panel', *sys.argv[1:]])"
)
LOG_TIME = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"


def unpack(rev: str, into: Path) -> Path:
    """The ``workbench`` package of ``rev`` under ``into`` (git archive, no checkout)."""
    data = subprocess.run(["git", "archive", rev, "workbench"], cwd=ROOT, capture_output=True,
                          check=True).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def serve(code: Path, env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    """``panel serve`` of the app in ``code`` (its own ``workbench`` package first on the
    path), Panel logging at INFO; returns the process and the app's URL once it answers."""
    port = free_port()
    cmd = [sys.executable, "-c", SERVE_LOGGING, "serve", "workbench/dashboard/app.py",
           "--setup", "workbench/dashboard/startup.py", "--port", str(port),
           "--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{port}"]  # fmt: skip
    env = {**env, "PYTHONPATH": str(code), "PANEL_LOG_LEVEL": "info"}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=code, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    wait_server(proc, port)
    return proc, f"http://127.0.0.1:{port}/app"


def open_once(browser, url: str) -> dict[str, float]:
    """Seconds from navigation to each mark, in a fresh context (a new session)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        started = time.monotonic()
        page.goto(url, timeout=LOAD_TIMEOUT_MS, wait_until="commit")
        seen = {}
        for name, selector in MARKS:
            page.locator(selector).first.wait_for(timeout=LOAD_TIMEOUT_MS)
            seen[name] = time.monotonic() - started
        seen["first paint"] = page.evaluate(FCP_JS)
        page.wait_for_timeout(1000)  # the session's first updates, before it is closed
        return seen
    finally:
        context.close()


def server_builds(log: Path) -> dict[str, list[float]]:
    """Seconds per session from the server's log: the build before the page is answered
    ("launching" -> "created"), and each lazily built page ("<Page> page built in")."""
    text = log.read_text(errors="replace")
    stamp = {}
    for when, sid, event in re.findall(LOG_TIME + r".*Session (\d+) (launching|created)", text):
        stamp.setdefault(sid, {})[event] = datetime.strptime(when, "%Y-%m-%d %H:%M:%S,%f")
    builds = [(s["created"] - s["launching"]).total_seconds() for s in stamp.values()
              if "created" in s and "launching" in s]  # fmt: skip
    pages = [float(s) for s in re.findall(r"Live page built in ([\d.]+) s", text)]
    return {"session": builds, "Live page": pages}


def bench(args, db_dsn: str, work: Path) -> None:
    with connect(db_dsn) as conn:
        upgrade(conn)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "PG"))}
    env.update(WORKBENCH_DATABASE_URL=db_dsn, WORKBENCH_RULES_DIR=str(ROOT / "rules"))
    if args.seed_s > 0:
        print(f"seeding: the worker runs {args.seed_s:g} s at 2,000 tx/s", flush=True)
        subprocess.run([sys.executable, "-m", "workbench", "run", "--rate", "2000",
                        "--duration", str(args.seed_s)], cwd=ROOT, env={**env, "PYTHONPATH":
                       str(ROOT)}, check=True, capture_output=True)  # fmt: skip
    codes = {"old": unpack(args.old, work / "old"), "new": ROOT}
    servers: dict[str, subprocess.Popen] = {}
    try:
        urls = {}
        for name, code in codes.items():
            servers[name], urls[name] = serve(code, env, work / f"{name}.log")
        results: dict[str, list[dict[str, float]]] = {name: [] for name in codes}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for name in codes:  # one unmeasured page each: imports and caches warmed up
                open_once(browser, urls[name])
            for run in range(args.runs):
                for name in codes if run % 2 == 0 else reversed(codes):
                    results[name].append(open_once(browser, urls[name]))
                    shown = ", ".join(f"{k} {v:.2f}" for k, v in results[name][-1].items())
                    print(f"   run {run + 1} {name}: {shown}", flush=True)
            browser.close()
        report(args, results, {name: server_builds(work / f"{name}.log") for name in codes})
    finally:
        for proc in servers.values():
            stop(proc)


def report(args, results: dict, builds: dict) -> None:
    print(f"\nmedian seconds over {args.runs} page loads each (old = {args.old}: every page "
          "built with the session; new = this tree: the first page built once shown)")  # fmt: skip
    keys = ["first paint", *(name for name, _ in MARKS)]
    print(f"   {'':40}{'old':>8}{'new':>8}")
    for key in keys:
        old, new = (np.median([r[key] for r in results[n]]) for n in ("old", "new"))
        print(f"   {'browser: ' + key:40}{old:8.2f}{new:8.2f}")
        if key in ("first paint", keys[-1]):
            figure(f"browser: {key}, median", new, "s", anchor=f"eager build ({args.old})",
                   ratio=new / old)  # fmt: skip
    for key in ("session", "Live page"):
        old, new = (np.median(builds[n][key]) if builds[n][key] else np.nan for n in ("old", "new"))
        label = "session build (blank page)" if key == "session" else "Live built after paint"
        print(f"   {'server: ' + label:40}{old:8.2f}{new:8.2f}")
    print(f"\n(load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs shared by the "
          "browser, both servers and PostgreSQL; old and new alternate)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=admin_dsn())
    parser.add_argument("--old", default=OLD_REV, help="git revision of the eager build")
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--seed-s", type=float, default=10.0, help="seconds of worker data")
    parser.add_argument("--quick", action="store_true", help="a brief run (make bench)")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.seed_s = min(args.runs, 2), min(args.seed_s, 3.0)
    with (
        own_database(args.dsn, "wb_benchsess") as dsn,
        tempfile.TemporaryDirectory(prefix="bench-session-") as work,
    ):
        bench(args, dsn, Path(work))


if __name__ == "__main__":
    main()
