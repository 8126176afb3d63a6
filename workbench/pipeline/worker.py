"""Assemble and run one pipeline worker from settings: rules, source, detector, writer.

The worker starts on the active rule set (after publishing its rules directory, see
:mod:`~workbench.pipeline.reload`) and hot-reloads while it runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.pipeline.graph import Pipeline
from workbench.pipeline.lists import ListFollower
from workbench.pipeline.reload import HotReload
from workbench.pipeline.stats import PipelineStats
from workbench.pipeline.writer import RetryingWriter
from workbench.scoring.detector import Detector
from workbench.settings import Settings
from workbench.sources.base import create_source
from workbench.storage import connect
from workbench.storage.transactions import stream_position

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
    """A ready pipeline on the active rule set, with hot reload attached (``pipeline.reload``,
    started by :func:`run_with_status`). The rules directory is published first: when it is
    refused the last accepted rule set is used, and with none the error is raised here."""
    reload = HotReload(dsn, settings.rules_dir)
    ruleset = reload.initial()
    options = dict(source_options or {})
    if source == "simulator":
        options.setdefault("settings", settings)
    src = create_source(source, **options)
    if source == "simulator":
        resume_simulator(src, dsn)
    writer = RetryingWriter(
        dsn,
        source=getattr(src, "label", source),
        worker=worker_name(settings),
        alert_min_band=ruleset.alert.min_band,
        alert_dedup_s=ruleset.alert.dedup_s,
        case_sla_s=settings.case_sla,
        stats=PipelineStats(),
        retention_days=settings.retention_days,
    )
    follower = ListFollower(dsn, lambda overlay: None, lists_dir=Path(settings.rules_dir) / "lists")
    overlay = follower.initial()
    detector = Detector(
        ruleset,
        allowed_lateness_s=settings.allowed_lateness,
        overlay=overlay,
        feature_threads=settings.feature_threads,
    )
    pipeline = Pipeline(src, detector, writer, rate=rate)
    follower.apply = pipeline.swap_overlay
    pipeline.reload = reload
    pipeline.lists = follower
    if hasattr(src, "take_assignment"):  # a partitioned log: state follows the partitions
        from workbench.pipeline.rebuild import StateRebuild
        from workbench.pipeline.tail import CommittedTail

        pipeline.rebuild = StateRebuild(dsn, src.partition_count())
        # Features by customer or terminal follow the other workers' commits (staleness: their
        # read-to-commit latency; README, Scale-out on Kafka). Costs nothing without them.
        tail = CommittedTail(dsn, src.partition_count(), worker_name(settings))
        pipeline.rebuild.tail = pipeline.tail = tail
        writer.source_state = src.health
    return pipeline


def resume_simulator(sim: Any, dsn: str) -> None:
    """Continue the simulator after its last stored batch rather than replay its seed.

    Its ``tx_id`` numbers are positions in its stream, so the stored rows of its last
    committed batches say where it stopped (see :meth:`Simulator.resume` for what a resumed
    stream equals).
    """
    with connect(dsn) as conn:
        found = stream_position(conn, sim.name, sim.tx_prefix)
    if found is None:
        return
    position, newest = found
    sim.resume(position, after=newest)
    log.info("simulator resumes at position %d (simulated time %s)", position, sim.sim_time)


async def run_with_status(
    pipeline: Pipeline,
    *,
    duration: float | None,
    status: Callable[[PipelineStats], None] | None = None,
    every_s: float = 1.0,
) -> PipelineStats:
    """Run the pipeline (with its hot reload, if any); call ``status`` every ``every_s``
    seconds meanwhile."""
    reload = pipeline.reload
    if reload is not None:
        reload.start(pipeline.swap_rules, pipeline.detector.ruleset.version, pipeline.swap_shadow)
    lists = getattr(pipeline, "lists", None)
    if lists is not None:
        lists.start()
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
        if reload is not None:
            await asyncio.to_thread(reload.stop)
        if lists is not None:
            await asyncio.to_thread(lists.stop)


def print_status(stats: PipelineStats) -> None:
    """Overwrite one terminal line with the current counts (or print lines when piped)."""
    end = "\r" if sys.stdout.isatty() else "\n"
    print(stats.line(), end=end, flush=True)
