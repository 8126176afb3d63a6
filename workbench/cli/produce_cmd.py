"""``workbench produce``: send simulated or replayed transactions to a Kafka topic."""

from __future__ import annotations

import argparse
import time

from workbench.cli.checks import positive_int
from workbench.errors import ConfigError, SourceError
from workbench.settings import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "produce",
        help="Send transactions to a Kafka topic, keyed by card_id.",
        description="Send simulated transactions, or a replayed file's valid ones, to the topic "
        "of a kafka://host:port/topic URL (other query parameters are client options). Each "
        "message is one transaction as JSON, keyed by its card_id, in the partition Kafka's "
        "default (murmur2) partitioner gives that key, so a card's transactions stay in order.",
    )
    p.add_argument(
        "--from",
        dest="origin",
        nargs="+",
        required=True,
        metavar="simulator | replay FILE",
        help="simulator, or replay FILE (.csv, .csv.gz, .parquet).",
    )
    p.add_argument("--to", required=True, metavar="URL", help="kafka://host:port/topic")
    p.add_argument("--rows", type=positive_int, help="Simulated rows to send (default 10000).")
    p.add_argument("--batch-rows", type=positive_int, help="Rows per batch read (default 10000).")
    p.set_defaults(run=run, check=check)


def check(args: argparse.Namespace) -> None:
    from workbench.sources.kafka import KafkaAddress

    kind, *rest = args.origin
    if kind == "simulator" and rest:
        raise ConfigError("--from simulator takes no file")
    if kind == "replay" and len(rest) != 1:
        raise ConfigError("--from replay needs one file: --from replay FILE")
    if kind not in ("simulator", "replay"):
        raise ConfigError(f"--from must be simulator or replay FILE, not {kind!r}")
    if kind == "replay" and args.rows is not None:
        raise ConfigError("--rows applies to --from simulator only")
    try:
        KafkaAddress.parse(args.to)
    except SourceError as exc:
        raise ConfigError(str(exc)) from None


def run(args: argparse.Namespace, settings: Settings) -> int:
    from workbench.sources.kafka import produce

    kind, *rest = args.origin
    batch_rows = args.batch_rows or 10_000
    dead = 0

    def batches():
        nonlocal dead
        if kind == "simulator":
            from workbench.sources.simulator import Simulator

            sim, left = Simulator(settings), args.rows or 10_000
            while left > 0:
                frame = sim.next_batch(min(left, batch_rows)).frame
                left -= len(frame)
                yield frame
            return
        from workbench.sources.replay import ReplaySource

        with ReplaySource(rest[0], batch_rows=batch_rows, settings=settings) as src:
            while (batch := src.next_batch()) is not None:
                dead += len(batch.dead)
                yield batch.frame

    started = time.perf_counter()
    sent = produce(batches(), args.to)
    took = max(time.perf_counter() - started, 1e-9)
    print(
        f"sent {sent:,} transactions to {args.to.split('?')[0]} in {took:.1f}s "
        f"({sent / took:,.0f} msg/s); {dead:,} invalid row(s) not sent"
    )
    return 0
