"""``workbench run`` (a headless worker) and ``workbench up`` (the one-command main job)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from workbench.cli.checks import not_a_file, positive_float, positive_int
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
    run.set_defaults(run=run_worker, check=check_worker)

    up = sub.add_parser(
        "up",
        help="Start everything: database (embedded unless configured), migrations, a "
        "pipeline worker on the simulator and the dashboard.",
    )
    _common(up)
    up.set_defaults(run=run_up)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rate",
        type=positive_float,
        help="Transactions per second (replay default: as fast as possible).",
    )
    p.add_argument(
        "--rules", type=not_a_file, help="Rules directory (default: the rules_dir setting)."
    )
    p.add_argument("--duration", type=positive_float, help="Stop after this many seconds.")
    p.add_argument("--batch-rows", type=positive_int, help="Transactions per batch.")


def _settings(args: argparse.Namespace, settings: Settings) -> Settings:
    changes = {"rules_dir": args.rules, "rate": args.rate, "batch_rows": args.batch_rows}
    return settings.replace(**{k: v for k, v in changes.items() if v is not None})


def check_worker(args: argparse.Namespace) -> None:
    """Everything ``run`` is told, checked before the database is touched."""
    from workbench.cli.checks import data_file

    name, *rest = args.source
    known = source_names()
    if name not in known:
        raise ConfigError(f"unknown source '{name}' (known: {', '.join(known)})")
    if name == "replay":
        if len(rest) != 1:
            raise ConfigError("--source replay needs one file: --source replay FILE")
        try:
            data_file(rest[0])
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"--source replay: {exc}") from None
    elif rest:
        raise ConfigError(f"--source {name} takes no file")
    if args.mapping and name != "replay":
        raise ConfigError(f"--mapping applies to --source replay only, not to {name}")
    # Building the mapping reads and checks its YAML files; nothing is written.
    mapping_from_args(args.mapping)


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    settings = _settings(args, settings)
    name, *rest = args.source
    options: dict = {}
    rate: float | None = settings.rate
    if name == "replay":
        options = {
            "path": rest[0],
            "batch_rows": settings.batch_rows,
            "mapping": mapping_from_args(args.mapping),
        }
        rate = args.rate
    with database(settings) as dsn:
        pipeline = build_pipeline(settings, dsn, source=name, source_options=options, rate=rate)
        stats = _run(pipeline, args.duration, print_status)
    _summary(stats)
    return 0


def run_up(args: argparse.Namespace, settings: Settings) -> int:
    """Database, a pipeline worker in its own process, and the dashboard in this one."""
    from workbench.cli.init_cmd import init_project
    from workbench.cli.up_cmd import up

    settings = _settings(args, settings)
    rules_dir = Path(settings.rules_dir)
    if not rules_dir.exists():
        # First run in an empty directory (a pip-installed workbench): editable copies of the
        # shipped rules and notebooks, as `workbench init` makes them.
        print(f"no {rules_dir}/ here: creating it (as `workbench init` does)")
        for line in init_project(rules_dir, Path("notebooks")):
            print(line)
    return up(settings, duration=args.duration)


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
