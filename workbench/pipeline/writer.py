"""The store node's writer: one committed database transaction per batch, retried until done.

What a failure means is decided by its SQLSTATE (:func:`workbench.storage.connection.classify`):

- the database is unreachable, dropped the connection or is short of resources
  (:class:`DatabaseUnavailable`): the same batch is written again after a backoff (0.2 s
  doubling to 10 s) on a fresh connection. Writes are idempotent on ``tx_id``, so a batch
  whose commit succeeded but whose answer was lost is stored once. Meanwhile the pipeline
  pulls nothing from its source: memory stays bounded;
- the database refused some rows for their values (:class:`DataRefused`): retrying would
  fail forever, so the batch is split until those rows are isolated
  (:mod:`workbench.storage.isolation`); they become dead letters with the SQLSTATE and
  message, every other row is stored, and the stream goes on. A part already committed is
  not written again after an outage in the middle of this;
- anything else (:class:`SchemaError`: an unknown column, a dropped table; or a bug) means
  the code or the schema is wrong: it is raised, and stops the worker with one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from workbench.bands import Band
from workbench.errors import DatabaseUnavailable, DataRefused, StorageError
from workbench.pipeline.stats import PipelineStats
from workbench.scoring.result import ScoredBatch
from workbench.storage import BatchWriter, PreparedBatch, WriteResult, connect
from workbench.storage.connection import usable
from workbench.storage.isolation import Isolation
from workbench.storage.writer import CASE_SLA_S

log = logging.getLogger(__name__)

BACKOFF_START_S = 0.2
BACKOFF_MAX_S = 10.0
RETENTION_EVERY_S = 60.0


def scored_of(batch: ScoredBatch | PreparedBatch) -> ScoredBatch:
    """The scored batch, prepared for storage or not."""
    return batch.scored if isinstance(batch, PreparedBatch) else batch


class RetryingWriter:
    """Writes scored batches to PostgreSQL at ``dsn``; owns one connection at a time, and one
    :class:`~workbench.storage.BatchWriter` for it (what that connection's writes remember:
    staging-path stickiness, temp tables, known partition days)."""

    def __init__(
        self,
        dsn: str,
        *,
        source: str,
        worker: str,
        alert_min_band: Band | str = Band.HIGH,
        alert_dedup_s: float = 600.0,
        case_sla_s: float = CASE_SLA_S,
        stats: PipelineStats | None = None,
        retention_days: int = 0,
        binary_copy: bool = True,
    ) -> None:
        self.dsn = dsn
        # False: COPY the rows as CSV, as before binary COPY (kept to measure the two side by side)
        self.binary_copy = binary_copy
        self.source = source
        self.worker = worker
        self.alert_min_band = alert_min_band
        self.alert_dedup_s = alert_dedup_s
        self.case_sla_s = case_sla_s
        self.stats = stats or PipelineStats()
        self.stopping = False
        self.last_result: WriteResult | None = None
        self.retention_days = retention_days
        self._conn = None
        self._writer: BatchWriter | None = None
        # () -> (partitions owned, messages behind): a partitioned source's, for health rows
        self.source_state = None
        self._newest_ts = None
        self._retention_due = 0.0
        self._wake: asyncio.Event | None = None  # set by stop(): ends a backoff wait early

    def prepare(
        self, scored: ScoredBatch, alert_min_band: Band | str | None = None
    ) -> PreparedBatch:
        """The batch with its COPY payloads built (any thread; pass the result to
        :meth:`write`), alerting from ``alert_min_band`` (default: the writer's)."""
        band = self.alert_min_band if alert_min_band is None else alert_min_band
        batch = PreparedBatch(
            scored,
            alert_min_band=band,
            source=self.source,
            worker=self.worker,
            binary=self.binary_copy,
        )
        if self.source_state is not None:
            batch.partitions, batch.lag = self.source_state()
        return batch.build()

    def _write_sync(self, batch: ScoredBatch | PreparedBatch) -> tuple[WriteResult, float]:
        """Write (in a worker thread); the result and the wall-clock time of the commit."""
        if self._conn is None or self._conn.closed or self._writer is None:
            self._conn = connect(self.dsn)
            self._writer = BatchWriter(self._conn)
        result = self._writer.write(
            batch,
            alert_min_band=self.alert_min_band,
            alert_dedup_s=self.alert_dedup_s,
            case_sla_s=self.case_sla_s,
            source=self.source,
            worker=self.worker,
        )
        committed_at = time.time()
        try:
            self._apply_retention(scored_of(batch))
        except StorageError as exc:
            # The batch is committed: writing it again would count its rows as duplicates.
            # Retention is tried again when next due.
            log.warning("retention failed: %s", exc)
            if not usable(self._conn):
                self._drop_connection()
        return result, committed_at

    def _apply_retention(self, scored: ScoredBatch) -> None:
        # Age is measured in event time (the newest stored transaction), so replayed or
        # simulated history is not dropped because the wall clock is far ahead of it.
        if not self.retention_days or not len(scored.frame):
            return
        newest = scored.frame["ts"].max()
        self._newest_ts = newest if self._newest_ts is None else max(newest, self._newest_ts)
        now = time.monotonic()
        if now >= self._retention_due:
            self._retention_due = now + RETENTION_EVERY_S
            assert self._writer is not None
            dropped = self._writer.retention(
                self.retention_days, now=self._newest_ts.to_pydatetime()
            )
            if dropped:
                log.info("retention dropped partitions of %s", ", ".join(map(str, dropped)))

    async def write(self, batch: ScoredBatch | PreparedBatch) -> bool:
        """Write one batch, retrying on failure; False only if stopped before it was stored.

        Raises :class:`~workbench.errors.StorageError` (e.g. ``SchemaError``) when the
        database refuses the batch for a reason no retry and no isolation can fix."""
        backoff = BACKOFF_START_S
        scored = scored_of(batch)
        parts = Isolation(batch)
        committed_at = time.time()
        while not parts.done:
            try:
                result, committed_at = await asyncio.to_thread(self._write_sync, parts.next())
            except DatabaseUnavailable as exc:
                self.stats.db_failures += 1
                self.stats.waiting_for_db = True
                log.warning("write failed, retrying in %.1fs: %s", backoff, exc)
                self._drop_connection()
                if self.stopping:
                    return False
                if self._wake is None:
                    self._wake = asyncio.Event()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=backoff)
                if self.stopping:
                    return False
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            except DataRefused as exc:
                if not parts.refusals:
                    log.warning("batch refused for its data, isolating the rows: %s", exc)
                self.stats.waiting_for_db = False
                self._drop_connection_if_busy()
                parts.refused(exc)  # raises when no row is to blame
                continue
            self.stats.waiting_for_db = False
            parts.stored(result)
        if parts.poison_rows:
            log.warning(
                "%d row(s) refused by the database became dead letters (%d writes)",
                parts.poison_rows,
                parts.parts_written + parts.refusals,
            )
        result = parts.result
        self.last_result = result
        self.stats.committed(
            records=scored.records,
            stored=result.stored,
            duplicates=result.duplicates,
            dead=result.dead,
            alerts_opened=result.alerts_opened,
            alerts_attached=result.alerts_attached,
            latency_ms=(committed_at - scored.created_at) * 1000.0,
            eval_errors=sum(scored.eval_errors.values()),
        )
        return True

    def stop(self) -> None:
        """Stop retrying: a write waiting for the database gives up at once (its batch is
        not stored and its source position not acknowledged). Call it from the event loop's
        thread."""
        self.stopping = True
        if self._wake is not None:
            self._wake.set()

    def _drop_connection_if_busy(self) -> None:
        # A refused write rolls its transaction back; a connection left in any other state
        # is not trusted with the next part.
        if self._conn is not None and not usable(self._conn):
            self._drop_connection()

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # a broken connection may fail to close; it is gone either way
                log.debug("closing a failed connection", exc_info=True)
            self._conn = None
            self._writer = None  # its memory was of that connection

    def close(self) -> None:
        self._drop_connection()
