"""``workbench simulate``: write a simulated, labelled data set to CSV or Parquet.

``--kind workbench`` (default): the product's own stream simulator, sized by rows or
duration. ``--kind handbook``: the Fraud Detection Handbook's simulator
(:mod:`workbench.sources.simulator.handbook`), sized by customers, terminals and days, in the
book's columns (replay it with ``--mapping handbook``)."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from workbench.cli.checks import positive_float, positive_int, timestamp
from workbench.errors import ConfigError
from workbench.settings import Settings
from workbench.sources.replay import write_dataset
from workbench.sources.simulator import Simulator

KINDS = ("workbench", "handbook")
_ONLY = {
    "workbench": ("rate", "duration", "rows", "speedup"),
    "handbook": ("customers", "terminals", "days", "start"),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="Generate a labelled data set (as fast as possible, no waiting).",
        description="Generate simulated transactions with labelled fraud scenarios and write "
        "them to a .csv or .parquet file. The data set spans DURATION seconds of the stream "
        "at RATE tx/s (RATE x DURATION rows), i.e. DURATION x SPEEDUP simulated seconds.",
    )
    p.add_argument("--out", required=True, help="Output file, .csv or .parquet.")
    p.add_argument(
        "--kind",
        choices=KINDS,
        default="workbench",
        help="workbench: the product's simulator (default); handbook: the Fraud Detection "
        "Handbook's simulator, in its columns (replay with --mapping handbook).",
    )
    p.add_argument("--rate", type=positive_float, help="Transactions per second of stream time.")
    p.add_argument(
        "--duration",
        type=positive_float,
        help="Seconds of stream time to generate (default 60).",
    )
    p.add_argument("--rows", type=positive_int, help="Rows to generate (overrides --duration).")
    p.add_argument("--speedup", type=positive_float, help="Simulated seconds per stream second.")
    p.add_argument("--seed", type=int, help="Random seed.")
    hb = p.add_argument_group("--kind handbook (defaults: the book's data set)")
    hb.add_argument("--customers", type=positive_int, help="Customers (default 5000).")
    hb.add_argument("--terminals", type=positive_int, help="Terminals (default 10000).")
    hb.add_argument("--days", type=positive_int, help="Days to simulate (default 183).")
    hb.add_argument("--start", type=timestamp, help="First day (default 2018-04-01).")
    p.set_defaults(run=run, check=check)


def check(args: argparse.Namespace) -> None:
    if not args.out.endswith((".csv", ".parquet")):
        raise ConfigError(f"--out must end in .csv or .parquet: {args.out}")
    if not Path(args.out).parent.is_dir():
        raise ConfigError(f"--out: no such directory: {Path(args.out).parent}")
    for kind, names in _ONLY.items():
        given = [f"--{n}" for n in names if getattr(args, n) is not None]
        if kind != args.kind and given:
            raise ConfigError(f"{', '.join(given)}: only with --kind {kind}")
    if args.kind == "handbook":
        _handbook_config(args)  # refuses a population too small for the daily compromises


def _handbook_config(args: argparse.Namespace):
    from workbench.sources.simulator.handbook import HandbookConfig

    given = {n: getattr(args, n) for n in ("customers", "terminals", "days", "seed")}
    if args.start is not None:
        given["start"] = args.start
    return HandbookConfig(**{k: v for k, v in given.items() if v is not None})


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.kind == "handbook":
        return _run_handbook(args)
    settings = settings.replace(
        **{
            k: v
            for k, v in (("rate", args.rate), ("seed", args.seed), ("sim_speedup", args.speedup))
            if v is not None
        }
    )
    duration = 60.0 if args.duration is None else args.duration
    rows = args.rows if args.rows is not None else math.ceil(settings.rate * duration)
    if rows <= 0:
        raise ConfigError("nothing to generate: --rows/--duration must be positive")
    sim = Simulator(settings)
    started = time.perf_counter()
    counts: dict[str, int] = {}
    first_ts = last_ts = None

    def batches():
        nonlocal first_ts, last_ts
        left = rows
        while left > 0:
            frame = sim.next_batch(min(left, 50_000)).frame
            left -= len(frame)
            first_ts = frame["ts"].iloc[0] if first_ts is None else first_ts
            last_ts = frame["ts"].iloc[-1]
            for name, n in frame["fraud_scenario"].value_counts().items():
                counts[name] = counts.get(name, 0) + int(n)
            yield frame

    write_dataset(batches(), args.out)
    took = time.perf_counter() - started
    fraud = sum(n for name, n in counts.items() if name)
    print(
        f"wrote {rows} transactions to {args.out} in {took:.1f}s "
        f"({rows / took:,.0f} tx/s); simulated {first_ts} .. {last_ts}"
    )
    print(
        f"fraud: {fraud} ({fraud / rows:.2%})"
        + "".join(f", {name} {n}" for name, n in sorted(counts.items()) if name)
    )
    return 0


def _run_handbook(args: argparse.Namespace) -> int:
    from workbench.sources.simulator.handbook import frames, simulate

    config = _handbook_config(args)
    started = time.perf_counter()
    data = simulate(config)
    write_dataset(frames(data), args.out)
    took = time.perf_counter() - started
    rows = len(data)
    counts = data["TX_FRAUD_SCENARIO"].value_counts()
    fraud = int(data["TX_FRAUD"].sum())
    span = f"{data['TX_DATETIME'].iloc[0]} .. {data['TX_DATETIME'].iloc[-1]}" if rows else "-"
    print(
        f"wrote {rows} handbook transactions to {args.out} in {took:.1f}s "
        f"({config.customers} customers, {config.terminals} terminals, {config.days} days: "
        f"{span}); replay with --mapping handbook"
    )
    print(
        f"fraud: {fraud} ({fraud / max(rows, 1):.2%})"
        + "".join(f", scenario {s} {int(counts.get(s, 0))}" for s in (1, 2, 3))
    )
    return 0
