"""The streaming graph of one worker: source -> detect (features + rules) -> store -> ack.

This is the only module that knows streamz. The graph is built inside the worker's own
asyncio loop (``Stream(asynchronous=True)``) and each batch is pushed with an awaited
``emit``. Scoring and writing both run in worker threads, so the loop stays free: a write
that commits while the next batch is being scored is acknowledged (and counted) at once,
not after that scoring. The store node lets one write run while the next batch is scored,
and no more: a slow or unreachable database holds the source back instead of piling batches
up in memory (at most two batches are held). The detector is used by one batch at a time,
always from the detect node; change it only between batches: :meth:`Pipeline.swap_rules`
(callable from any thread) leaves the new rule set for the detect node, which switches
before it scores its next batch. The store node then writes that batch with the alert
policy of the rule set that scored it.

A node never lets an exception escape (streamz would stop the whole stream): a batch that
cannot be scored becomes dead letters with the reason; a write that fails is retried with
backoff by the store node until it succeeds or the worker is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from typing import Any

from streamz import Stream

from workbench.pipeline.labels import LabelFeed
from workbench.pipeline.rebuild import with_stored
from workbench.pipeline.stats import PipelineStats
from workbench.pipeline.writer import RetryingWriter, scored_of
from workbench.rules import RuleSet
from workbench.scoring.detector import Detector
from workbench.scoring.result import ScoredBatch, as_dead_letters
from workbench.sources.base import Pacer, Source, SourceBatch
from workbench.storage import PreparedBatch

log = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.0005
"""GIL switch interval while a pipeline runs (Python's default is 5 ms). The writer thread
needs the GIL for short moments between its waits on the server (starting the COPY, reading
results, building the NOTIFY); each of them may otherwise wait up to the whole interval
behind the scoring thread's pandas work, lengthening every write."""


class Pipeline:
    """One worker's pipeline. ``await pipeline.run(duration=...)`` inside an asyncio loop."""

    def __init__(
        self,
        source: Source,
        detector: Detector,
        writer: RetryingWriter,
        *,
        rate: float | None = None,
    ) -> None:
        self.source = source
        self.detector = detector
        self.writer = writer
        self.rate = rate
        self.stats = writer.stats
        self._stop: asyncio.Event | None = None  # created inside the loop, in run()
        self._pending: asyncio.Future | None = None
        self._next_rules: RuleSet | None = None
        self._next_overlay: Any = None
        self._next_shadow: tuple[RuleSet | None] | None = None
        self._rules_lock = threading.Lock()
        self.reload: Any = None  # HotReload started and stopped around run() by the worker
        dsn = getattr(writer, "dsn", None)
        # Stored labels for label-aware features (a query per batch only if any is declared)
        self.labels = LabelFeed(dsn) if dsn else None
        self.lists: Any = None  # ListFollower, likewise (lists and snoozes)
        # StateRebuild for a source whose partitions change (take_assignment), else None
        self.rebuild: Any = None
        # CommittedTail of the same sources (attached to the rebuild, which restarts it)
        self.tail: Any = None

    def swap_rules(self, ruleset: RuleSet) -> None:
        """Score from the next batch on with ``ruleset`` (the batch in flight keeps the rules
        it started with). Thread-safe; when several arrive between batches, the last wins."""
        with self._rules_lock:
            self._next_rules = ruleset

    def swap_shadow(self, ruleset: RuleSet | None, rollout: int = 0) -> None:
        """Score from the next batch on with challenger ``ruleset`` beside the active set
        (None: stop), deciding for ``rollout`` percent of the cards. Thread-safe; the last
        one wins."""
        with self._rules_lock:
            self._next_shadow = (ruleset, rollout)

    def swap_overlay(self, overlay: Any) -> None:
        """Score from the next batch on with these lists and snoozes (an
        :class:`~workbench.scoring.overlay.Overlay`). Thread-safe; the last one wins."""
        with self._rules_lock:
            self._next_overlay = overlay

    def _take_rules(self) -> None:
        with self._rules_lock:
            ruleset, self._next_rules = self._next_rules, None
            overlay, self._next_overlay = self._next_overlay, None
            shadow, self._next_shadow = self._next_shadow, None
        if overlay is not None and overlay.version != self.detector.overlay.version:
            self.detector.swap_overlay(overlay)
            log.info("lists: now scoring with lists and snoozes %s", overlay.version)
        if ruleset is not None and ruleset.version != self.detector.ruleset.version:
            was = self.detector.ruleset.version
            self.detector.swap(ruleset)
            log.info("rules: now scoring with version %s (was %s)", ruleset.version, was)
        if shadow is not None:
            self.detector.set_shadow(shadow[0], rollout=shadow[1])

    def stop(self) -> None:
        """Ask the worker to finish the batch in flight and stop."""
        if self._stop is not None:
            self._stop.set()
        self.writer.stop()

    def _build(self) -> Stream:
        source = Stream(asynchronous=True, stream_name="source")
        scored = self._detect_node = _ThreadMap(
            source, self._detect, after=self._maintain, stream_name="features+rules"
        )
        scored.sink(self._store, stream_name="store+ack")
        return source

    def _maintain(self) -> None:
        try:
            self.detector.maintain()
        except Exception:  # the next batch's scoring does it (or reports it) instead
            log.exception("feature-state maintenance failed")

    def _detect(self, batch: SourceBatch) -> tuple[ScoredBatch | PreparedBatch, RuleSet]:
        try:
            self._take_rules()
        except Exception:  # a rule set that cannot be swapped in: keep scoring with the old
            log.exception("rules: swapping the rule set failed; the previous one keeps scoring")
        ruleset = self.detector.ruleset
        if self.labels is not None:
            self.labels.feed(self.detector, batch.frame)
        if self.tail is not None:  # other workers' rows, for the features spanning partitions
            self.tail.feed(self.detector, batch.frame)
        stored = batch.frame.iloc[:0]
        if self.rebuild is not None:
            batch, stored = self.rebuild.split(batch)
        try:
            scored = self.detector.process(batch)
            scored = with_stored(scored, stored, ruleset.version)
        except Exception as exc:  # a bad batch becomes data, never a stopped stream
            log.exception("scoring failed; the batch goes to dead letters")
            scored = as_dead_letters(batch, f"scoring failed: {type(exc).__name__}: {exc}")
        # Built here, the COPY payloads are ready before the previous write ends.
        try:
            band = ruleset.alert.min_band
            return self.writer.prepare(scored, band), ruleset
        except Exception:  # the store node writes (or dead-letters) it unprepared instead
            log.exception("preparing the batch for storage failed")
            return scored, ruleset

    async def _store(self, item: tuple[ScoredBatch | PreparedBatch, RuleSet]) -> None:
        # Wait for the previous write, then start this one and return: the next batch is read
        # and scored while this one is written. Writes (and acks) stay in order and at most
        # two batches are held at once.
        scored, ruleset = item
        await self._drain()
        self.writer.alert_min_band = ruleset.alert.min_band
        self.writer.alert_dedup_s = ruleset.alert.dedup_s
        self._pending = asyncio.ensure_future(self._write_and_ack(scored))

    async def _write_and_ack(self, batch: ScoredBatch | PreparedBatch) -> None:
        if await self.writer.write(batch):
            scored = scored_of(batch)
            self.source.ack(scored.position)

    async def _drain(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending
        node = getattr(self, "_detect_node", None)
        if node is not None and node._after is not None:
            after, node._after = node._after, None
            await after

    async def _next_batch(self) -> SourceBatch | None:
        """The source's next batch; one that waits on the network (``blocking``) is read in
        a thread, so the write in flight is acknowledged meanwhile. When its partitions
        changed, the feature state is rebuilt for them first, once the write in flight has
        committed (the rebuilt history then holds every row this worker stored)."""
        if not getattr(self.source, "blocking", False):
            return self.source.next_batch()
        batch = await asyncio.to_thread(self.source.next_batch)
        owned = self.source.take_assignment() if self.rebuild is not None else None
        if owned is not None:
            await self._drain()
            await asyncio.to_thread(self.rebuild.rebuild, self.detector, owned)
            label = getattr(self.source, "label", "")
            await asyncio.to_thread(self.rebuild.check_log, self.source, label)
        return batch

    async def run(
        self, *, duration: float | None = None, max_records: int | None = None
    ) -> PipelineStats:
        """Pull, score and store batches until the source ends, time is up or stop()."""
        self._stop = asyncio.Event()
        head = self._build()
        pacer = Pacer(self.rate)
        deadline = None if duration is None else time.monotonic() + duration
        switch = sys.getswitchinterval()
        sys.setswitchinterval(min(switch, SWITCH_INTERVAL_S))
        try:
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if max_records is not None and self.stats.records >= max_records:
                    break
                batch = await self._next_batch()
                if batch is None:
                    break
                if not batch.records:  # a log with nothing new: ask again
                    continue
                await head.emit(batch)
                wait = pacer.delay(batch.records)
                if wait:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), timeout=wait)
            await self._drain()
        finally:
            if self._pending is not None:  # stopped by an error: let the write in flight end
                with contextlib.suppress(Exception):
                    await self._drain()
            self.writer.close()
            self.source.close()
            sys.setswitchinterval(switch)
        return self.stats


class _ThreadMap(Stream):
    """``map`` whose function runs in a worker thread; the emit that feeds it awaits the
    result and everything downstream of it, so batches stay in order, one at a time.

    ``after`` (optional) runs in a worker thread once a result has been handed on, while
    the store writes it and the source reads the next batch; the next call of ``func``
    waits for it, so the two never overlap (feature-state maintenance)."""

    def __init__(self, upstream: Stream, func, after=None, **kwargs) -> None:
        self.func, self.after = func, after
        self._after: asyncio.Future | None = None
        super().__init__(upstream, **kwargs)

    def update(self, x, who=None, metadata=None):
        return self._run(x, metadata)

    async def _run(self, x, metadata) -> None:
        if self._after is not None:
            after, self._after = self._after, None
            await after
        result = await asyncio.to_thread(self.func, x)
        await asyncio.gather(*self._emit(result, metadata=metadata))
        if self.after is not None:
            self._after = asyncio.ensure_future(asyncio.to_thread(self.after))
