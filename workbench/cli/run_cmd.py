"""``workbench run`` (a headless worker) and ``workbench up`` (the one-command main job)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
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
        help=f"Source: {' | '.join(n for n in source_names() if n != 'kafka')}; replay takes "
        "a file (.csv, .csv.gz, .parquet, or - for CSV on standard input); a Kafka topic is "
        "kafka://host:port/topic?group=NAME (other parameters: client options).",
    )
    run.add_argument(
        "--encoding",
        default="utf-8",
        help="Text encoding of a replayed CSV file (default utf-8; e.g. latin-1, cp1252). "
        "Bytes that are not valid in it make their line a dead letter, never replaced.",
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
    up.add_argument(
        "--address",
        help="Address the dashboard listens on (default 127.0.0.1, WORKBENCH_DASHBOARD_ADDRESS); "
        "any other than a loopback one needs a login (workbench users add, or OAuth).",
    )
    up.add_argument(
        "--no-auth",
        action="store_true",
        help="Serve a non-loopback address without a login anyway (a loud warning is logged).",
    )
    up.set_defaults(run=run_up, check=check_up)


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
    p.add_argument(
        "--batch-rows",
        type=positive_int,
        help="Transactions per batch (a replay without it picks its own from the input).",
    )


def _settings(args: argparse.Namespace, settings: Settings) -> Settings:
    changes = {"rules_dir": args.rules, "rate": args.rate, "batch_rows": args.batch_rows}
    return settings.replace(**{k: v for k, v in changes.items() if v is not None})


def check_worker(args: argparse.Namespace) -> None:
    """Everything ``run`` is told, checked before the database is touched."""
    from workbench.cli.checks import data_file

    name, *rest = args.source
    known = source_names()
    if "://" in name:
        scheme = name.split("://", 1)[0]
        if scheme not in known:
            raise ConfigError(f"unknown source URL scheme '{scheme}' (known: kafka)")
        if rest:
            raise ConfigError(f"--source {scheme}://... takes no file")
        if args.mapping:
            raise ConfigError("--mapping applies to --source replay only")
        _check_url(name)
        return
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
        rate = args.rate
        options = replay_options(
            rest[0],
            settings,
            rate=rate,
            mapping=mapping_from_args(args.mapping),
            encoding=getattr(args, "encoding", "utf-8"),  # `workbench replay` has none
        )
    elif "://" in name:
        options = {"batch_rows": settings.batch_rows, "settings": settings}
        rate = args.rate
    with database(settings, component="pipeline") as dsn:
        pipeline = build_pipeline(settings, dsn, source=name, source_options=options, rate=rate)
        status = print_status
        progress = getattr(pipeline.source, "progress", None)
        if progress is not None and sys.stderr.isatty():
            status = ReplayProgress(progress, sys.stderr)
        stats = _run(pipeline, args.duration, status)
        if isinstance(status, ReplayProgress):
            status(stats, final=True)
    _summary(stats)
    return 0


def replay_options(
    path: str, settings: Settings, *, rate: float | None, mapping=None, encoding: str = "utf-8"
) -> dict:
    """The options of the replay source of ``workbench run --source replay`` and ``workbench
    replay``; the batch size is chosen from the input unless it was set
    (:func:`~workbench.sources.replay.auto_batch_rows`)."""
    from workbench.sources.replay import auto_batch_rows

    return {
        "path": path,
        "batch_rows": auto_batch_rows(path, rate=rate, settings=settings),
        "mapping": mapping,
        "settings": settings,
        "encoding": encoding,
    }


def _check_url(url: str) -> None:
    from workbench.errors import SourceError
    from workbench.sources.kafka import KafkaAddress

    try:
        address = KafkaAddress.parse(url)
    except SourceError as exc:
        raise ConfigError(str(exc)) from None
    if not address.group:
        raise ConfigError(f"{address.label}: a consumer group is needed (?group=NAME)")


class ReplayProgress:
    """The status line of a replay on a terminal: rows, share of the file, rate, ETA."""

    def __init__(self, progress, out, clock=time.monotonic) -> None:
        self._progress, self._out, self._clock = progress, out, clock
        self._start = clock()

    def line(self, stats: PipelineStats) -> str:
        elapsed = max(self._clock() - self._start, 1e-9)
        rate = stats.records / elapsed
        share = self._progress()
        text = f"replay: {stats.records:,} rows"
        if share is not None:
            text += f", {share:6.1%}"
        text += f", {rate:,.0f} rows/s"
        if share is not None and 0 < share < 1:
            text += f", ETA {_clock_text(elapsed * (1 - share) / share)}"
        elif share is not None and share >= 1:
            text += f", done in {_clock_text(elapsed)}"
        return text + f" | dead letters {stats.dead:,}"

    def __call__(self, stats: PipelineStats, final: bool = False) -> None:
        end = "\n" if final else "\r"
        print(self.line(stats).ljust(78), end=end, file=self._out, flush=True)


def _clock_text(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def run_up(args: argparse.Namespace, settings: Settings) -> int:
    """Database, a pipeline worker in its own process, and the dashboard in this one."""
    from workbench.cli.init_cmd import init_project
    from workbench.cli.up_cmd import up

    settings = _settings(args, settings)
    if args.address is not None:
        settings = settings.replace(dashboard_address=args.address)
    rules_dir = Path(settings.rules_dir)
    if not rules_dir.exists():
        # First run in an empty directory (a pip-installed workbench): editable copies of the
        # shipped rules and notebooks, as `workbench init` makes them.
        print(f"no {rules_dir}/ here: creating it (as `workbench init` does)")
        for line in init_project(rules_dir, Path("notebooks")):
            print(line)
    return up(settings, duration=args.duration, no_auth=args.no_auth)


def check_up(args: argparse.Namespace) -> None:
    """A non-loopback address without a login is refused before the database is started."""
    from workbench.auth.login_config import LoginConfig, check_bind

    settings = Settings.load()
    address = args.address if args.address is not None else settings.dashboard_address
    check_bind(address, LoginConfig.from_settings(settings).mode, no_auth=args.no_auth, warn=False)


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
