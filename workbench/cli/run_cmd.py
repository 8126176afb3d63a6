"""``workbench run`` (a headless worker) and ``workbench up`` (the one-command main job)."""

from __future__ import annotations

import argparse
import asyncio
import signal

from workbench.errors import ConfigError
from workbench.pipeline.database import database
from workbench.pipeline.stats import PipelineStats
from workbench.pipeline.worker import build_pipeline, print_status, run_with_status
from workbench.settings import Settings
from workbench.sources.base import source_names


def add_parser(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="Run a headless pipeline worker.")
    run.add_argument(
        "--source",
        nargs="+",
        default=["simulator"],
        metavar="NAME [FILE]",
        help=f"Source: {' | '.join(source_names())}; replay takes a file (.csv or .parquet).",
    )
    run.add_argument(
        "--mapping",
        action="append",
        default=[],
        metavar="MAP",
        help="Replay column mapping: a YAML file, a built-in name (handbook) or "
        "FIELD=COLUMN; repeatable.",
    )
    _common(run)
    run.set_defaults(run=run_worker)

    up = sub.add_parser(
        "up",
        help="Start everything: database (embedded unless configured), migrations, a "
        "pipeline worker on the simulator and the dashboard.",
    )
    _common(up)
    up.set_defaults(run=run_up)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rate", type=float, help="Transactions per second (replay default: as fast as possible)."
    )
    p.add_argument("--rules", help="Rules directory (default: the rules_dir setting).")
    p.add_argument("--duration", type=float, help="Stop after this many seconds.")
    p.add_argument("--batch-rows", type=int, help="Transactions per batch.")


def _settings(args: argparse.Namespace, settings: Settings) -> Settings:
    changes = {"rules_dir": args.rules, "rate": args.rate, "batch_rows": args.batch_rows}
    return settings.replace(**{k: v for k, v in changes.items() if v is not None})


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    settings = _settings(args, settings)
    name, *rest = args.source
    options: dict = {}
    rate: float | None = settings.rate
    if name == "replay":
        if len(rest) != 1:
            raise ConfigError("--source replay needs one file: --source replay FILE")
        options = {
            "path": rest[0],
            "batch_rows": settings.batch_rows,
            "mapping": mapping_from_args(args.mapping),
        }
        rate = args.rate
    elif rest:
        raise ConfigError(f"--source {name} takes no file")
    with database(settings) as dsn:
        pipeline = build_pipeline(settings, dsn, source=name, source_options=options, rate=rate)
        stats = _run(pipeline, args.duration, print_status)
    _summary(stats)
    return 0


def run_up(args: argparse.Namespace, settings: Settings) -> int:
    """Database, a pipeline worker in its own process, and the dashboard in this one."""
    from workbench.cli.up_cmd import up

    return up(_settings(args, settings), duration=args.duration)


def mapping_from_args(values: list[str]):
    """One mapping from ``--mapping`` values: YAML files or built-in names, then FIELD=COLUMN."""
    from workbench.sources.mapping import ColumnMapping

    if not values:
        return None
    files = [v for v in values if "=" not in v]
    pairs = [v for v in values if "=" in v]
    mapping = None
    for name in files:
        loaded = ColumnMapping.from_yaml(name)
        mapping = loaded if mapping is None else mapping.merged(loaded)
    if pairs:
        extra = ColumnMapping.from_options(pairs)
        mapping = extra if mapping is None else mapping.merged(extra)
    return mapping


def _run(pipeline, duration: float | None, status) -> PipelineStats:
    async def main() -> PipelineStats:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, pipeline.stop)
        return await run_with_status(pipeline, duration=duration, status=status)

    return asyncio.run(main())


def _summary(stats: PipelineStats) -> None:
    print()
    print(
        f"records in {stats.records:,} = stored {stats.stored:,} + duplicates "
        f"{stats.duplicates:,} + dead letters {stats.dead:,}; alerts opened "
        f"{stats.alerts_opened:,} (+{stats.alerts_attached:,} attached); "
        f"{stats.batches:,} batches"
    )
