"""Run every benchmark briefly and print one table of its headline figures (``make bench``).

Each ``benchmarks/bench_*.py`` (sorted by name) runs as a subprocess with ``--quick`` (the
contract: a brief run, about a minute at most, that still measures subject and anchor side
by side) under a per-script timeout. Only one progress line per script is shown; the
figures come from the ``BENCH-FIGURE`` lines the scripts print (``_report.figure``), and
the result is one table -- bench | figure | value | unit | anchor | ratio -- with the
machine it ran on and its load before and after. A script that fails, times out or prints
no figure gets a row saying so and the run goes on. There is no pass/fail: the exit code is
0 however poor a figure is, non-zero only when the runner itself cannot work.

    python benchmarks/run_all.py                      # everything
    python benchmarks/run_all.py --only bench_scoring bench_features
    python benchmarks/run_all.py --skip bench_kafka --json figures.json --readme README.md

``--readme`` replaces what lies between the markers :data:`START` and :data:`END` in the
given file with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from _report import parse

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
START = "<!-- bench-table:start -->"
END = "<!-- bench-table:end -->"
COLUMNS = ("bench", "figure", "value", "unit", "anchor", "ratio")


@dataclass
class Run:
    """One script's run: how it ended and the figures it printed."""

    bench: str
    status: str  # "ok", or why there is no (complete) result
    seconds: float
    figures: list[dict] = field(default_factory=list)


def discover(directory: Path | None = None) -> list[str]:
    """The benchmark scripts' names (``bench_*.py`` without the suffix), sorted."""
    return sorted(p.stem for p in (directory or HERE).glob("bench_*.py"))


def select(names: list[str], only: list[str] | None, skip: list[str] | None) -> list[str]:
    """``names`` narrowed by ``--only`` and ``--skip``; an unknown name is an error."""
    wanted = [_stem(n) for n in (only or [])] + [_stem(n) for n in (skip or [])]
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise SystemExit(f"error: no such benchmark: {', '.join(unknown)}")
    if only:
        names = [n for n in names if n in {_stem(o) for o in only}]
    return [n for n in names if n not in {_stem(s) for s in skip or []}]


def _stem(name: str) -> str:
    return Path(name).stem


def collect(bench: str, output: str, returncode: int | None, seconds: float, errors: str) -> Run:
    """A :class:`Run` from one script's captured output (``returncode`` None: timed out)."""
    figures = [f for f in map(parse, output.splitlines()) if f is not None]
    if returncode is None:
        status = f"timed out after {seconds:.0f} s"
    elif returncode != 0 and "unrecognized arguments: --quick" in errors:
        status = "no --quick"
    elif returncode != 0:
        last = next((ln.strip() for ln in reversed(errors.splitlines()) if ln.strip()), "")
        status = f"failed (exit {returncode})" + (f": {last[:100]}" if last else "")
    elif not figures:
        status = "no figure printed"
    else:
        status = "ok"
    return Run(bench, status, round(seconds, 1), figures)


def run_script(bench: str, timeout: float) -> Run:
    """Run ``benchmarks/<bench>.py --quick`` in its own process group and collect it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # Files, not pipes: a chatty script cannot fill a pipe while the runner waits on it.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, str(HERE / f"{bench}.py"), "--quick"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            returncode: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # The whole group: a benchmark may have started a broker, a server or a browser.
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            returncode = None
        seconds = timeout if returncode is None else time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return collect(bench, out.read(), returncode, seconds, err.read())


def machine(dsn: str) -> dict:
    """CPU model, cores, Python and PostgreSQL versions (load is added around the run)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "postgresql": _postgres_version(dsn),
    }


def _postgres_version(dsn: str) -> str:
    try:
        import sqlalchemy as sa

        url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
        engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
        try:
            with engine.connect() as conn:
                return str(conn.exec_driver_sql("SHOW server_version").scalar())
        finally:
            engine.dispose()
    except Exception as exc:  # the table is still worth printing without it
        return f"unknown ({type(exc).__name__})"


def _number(x: float | None, digits: int = 3) -> str:
    """``x`` to ``digits`` significant figures, thousands separated; empty for None."""
    if x is None:
        return ""
    if x == 0:
        return "0"
    rounded = float(f"{x:.{digits}g}")
    if abs(rounded) >= 10 ** (digits - 1):
        return f"{rounded:,.0f}"
    return f"{rounded:.{digits}g}"


def rows(runs: list[Run]) -> list[tuple[str, ...]]:
    """The table's rows: one per figure, or one saying why a script has none."""
    out = []
    for run in runs:
        for f in run.figures:
            out.append(
                (
                    run.bench,
                    str(f.get("name", "")),
                    _number(f.get("value")),
                    str(f.get("unit") or ""),
                    str(f.get("anchor") or ""),
                    _number(f.get("ratio")),
                )
            )
        if run.status != "ok":
            out.append((run.bench, f"({run.status})", "", "", "", ""))
    return out


def table(runs: list[Run]) -> str:
    """The Markdown table of every figure (numeric columns right-aligned)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---|---|---:|---|---|---:|"]
    for row in rows(runs):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)


def footer(info: dict) -> str:
    """The machine, its load before and after, and the total time, as one paragraph."""
    before = " ".join(f"{x:.2f}" for x in info["load_before"])
    after = " ".join(f"{x:.2f}" for x in info["load_after"])
    return (
        f"Machine: {info['cpu']}, {info['cores']} cores; Python {info['python']}; "
        f"PostgreSQL {info['postgresql']}. Load average (1/5/15 min) before {before}, "
        f"after {after}. Total {info['total_seconds']:.0f} s "
        f"(`--quick` runs, {info['date']})."
    )


def report(runs: list[Run], info: dict) -> str:
    return table(runs) + "\n\n" + footer(info)


def rewrite_readme(text: str, body: str) -> str:
    """``text`` with what lies between :data:`START` and :data:`END` replaced by ``body``."""
    head, sep, rest = text.partition(START)
    if not sep or END not in rest:
        raise ValueError(f"the markers {START} ... {END} are missing")
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{body.strip()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--skip", nargs="+", metavar="NAME", help="do not run these")
    parser.add_argument("--timeout", type=float, default=180, help="seconds per script")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument("--readme", metavar="FILE", help="rewrite the table in this file")
    parser.add_argument("--dsn", default=os.environ.get("WORKBENCH_BENCH_DSN", DEFAULT_DSN))
    args = parser.parse_args(argv)
    if args.readme and START not in Path(args.readme).read_text():
        parser.error(f"{args.readme} has no {START} marker")

    names = select(discover(), args.only, args.skip)
    info = machine(args.dsn)
    info["load_before"] = list(os.getloadavg())
    info["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    start = time.perf_counter()
    runs = []
    for i, bench in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {bench} ...", end=" ", flush=True)
        run = run_script(bench, args.timeout)
        count = f"{len(run.figures)} figure" + ("" if len(run.figures) == 1 else "s")
        print(f"{run.status}, {count}, {run.seconds:.0f} s", flush=True)
        runs.append(run)
    info["total_seconds"] = time.perf_counter() - start
    info["load_after"] = list(os.getloadavg())

    text = report(runs, info)
    print()
    print(text)
    if args.json:
        payload = {"machine": info, "runs": [asdict(r) for r in runs]}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    if args.readme:
        path = Path(args.readme)
        path.write_text(rewrite_readme(path.read_text(), text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
