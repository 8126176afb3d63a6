"""``workbench simulate``: write a simulated, labelled data set to CSV or Parquet."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from workbench.cli.checks import positive_float, positive_int
from workbench.errors import ConfigError
from workbench.settings import Settings
from workbench.sources.replay import write_dataset
from workbench.sources.simulator import Simulator


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="Generate a labelled data set (as fast as possible, no waiting).",
        description="Generate simulated transactions with labelled fraud scenarios and write "
        "them to a .csv or .parquet file. The data set spans DURATION seconds of the stream "
        "at RATE tx/s (RATE x DURATION rows), i.e. DURATION x SPEEDUP simulated seconds.",
    )
    p.add_argument("--out", required=True, help="Output file, .csv or .parquet.")
    p.add_argument("--rate", type=positive_float, help="Transactions per second of stream time.")
    p.add_argument(
        "--duration",
        type=positive_float,
        default=60.0,
        help="Seconds of stream time to generate (default 60).",
    )
    p.add_argument("--rows", type=positive_int, help="Rows to generate (overrides --duration).")
    p.add_argument("--speedup", type=positive_float, help="Simulated seconds per stream second.")
    p.add_argument("--seed", type=int, help="Random seed.")
    p.set_defaults(run=run, check=check)


def check(args: argparse.Namespace) -> None:
    if not args.out.endswith((".csv", ".parquet")):
        raise ConfigError(f"--out must end in .csv or .parquet: {args.out}")
    if not Path(args.out).parent.is_dir():
        raise ConfigError(f"--out: no such directory: {Path(args.out).parent}")


def run(args: argparse.Namespace, settings: Settings) -> int:
    settings = settings.replace(
        **{
            k: v
            for k, v in (("rate", args.rate), ("seed", args.seed), ("sim_speedup", args.speedup))
            if v is not None
        }
    )
    rows = args.rows if args.rows is not None else math.ceil(settings.rate * args.duration)
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
