"""Assemble and run one pipeline worker from settings: rules, source, detector, writer."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

from workbench.pipeline.graph import Pipeline
from workbench.pipeline.stats import PipelineStats
from workbench.pipeline.writer import RetryingWriter
from workbench.rules import load_rules
from workbench.scoring.detector import Detector
from workbench.settings import Settings
from workbench.sources.base import create_source
from workbench.storage import connect, record_rule_set

log = logging.getLogger(__name__)


def worker_name(settings: Settings) -> str:
    return settings.worker_id or f"{socket.gethostname()}:{os.getpid()}"


def build_pipeline(
    settings: Settings,
    dsn: str,
    *,
    source: str = "simulator",
    source_options: dict[str, Any] | None = None,
    rate: float | None = None,
) -> Pipeline:
    """A ready pipeline; the rule set is loaded (and recorded) first, so bad rules fail here."""
    ruleset = load_rules(settings.rules_dir)
    with connect(dsn) as conn:
        record_rule_set(
            conn, ruleset.version, ruleset.texts, author=_author(), status="accepted", error=None
        )
    options = dict(source_options or {})
    if source == "simulator":
        options.setdefault("settings", settings)
    src = create_source(source, **options)
    writer = RetryingWriter(
        dsn,
        source=source,
        worker=worker_name(settings),
        alert_min_band=ruleset.alert.min_band.capitalize(),
        alert_dedup_s=ruleset.alert.dedup_s,
        stats=PipelineStats(),
        retention_days=settings.retention_days,
    )
    detector = Detector(ruleset, allowed_lateness_s=settings.allowed_lateness)
    return Pipeline(src, detector, writer, rate=rate)


async def run_with_status(
    pipeline: Pipeline,
    *,
    duration: float | None,
    status: Callable[[PipelineStats], None] | None = None,
    every_s: float = 1.0,
) -> PipelineStats:
    """Run the pipeline; call ``status`` every ``every_s`` seconds meanwhile."""
    task = asyncio.ensure_future(pipeline.run(duration=duration))

    async def report() -> None:
        while True:
            await asyncio.sleep(every_s)
            if status is not None:
                status(pipeline.stats)

    reporter = asyncio.ensure_future(report())
    try:
        return await task
    finally:
        reporter.cancel()


def print_status(stats: PipelineStats) -> None:
    """Overwrite one terminal line with the current counts (or print lines when piped)."""
    end = "\r" if sys.stdout.isatty() else "\n"
    print(stats.line(), end=end, flush=True)


def _author() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # no user name (container without passwd entry)
        return "anonymous"
