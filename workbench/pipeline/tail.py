"""Following the rows other workers commit, for the features that span partitions.

In a consumer group (:mod:`workbench.pipeline.rebuild`) a worker reads the partitions it
owns, so it scores only its own cards' transactions; features by ``customer_id`` or
``terminal_id`` (window aggregates, simulator-label ``time_since_fraud``) also need the rows
of those customers' and terminals' other cards, which other workers score. PostgreSQL is the
shared store: before each batch is scored (in the detect node's thread, like the stored
labels), :meth:`CommittedTail.feed` reads the rows other workers committed since its last
read and adds them to the window state of those entities only — never to the card groups:
those cards belong to other partitions, and holding them would make every worker hold the
whole stream's cards.

The cursor is a PostgreSQL snapshot (:mod:`workbench.storage.committed`): each read returns
the batches committed after the previous read's snapshot, each batch once, whatever order
their transactions started or committed in. A rebuild (:class:`StateRebuild`) reads the
stored history in one snapshot and restarts the cursor there (:meth:`restart`), so the rows
it fed are not fed again and none committed after it is skipped. Rows of the partitions this
worker owns are left out (its own stream brings them, redelivered ones included: see
:attr:`StateRebuild.known`, which holds those only), and so are the rows of its own batches
(by its worker name, unique in the group: it scored those rows itself, whichever
partitions it owned then).

Staleness bound. A row of another worker reaches this worker's state at its first batch
after that worker's commit: a transaction scored here counts another partition's earlier
row of the same terminal unless that row was not committed yet when this batch started,
i.e. the bound is the other worker's read-to-commit latency (its batch read, scored and
written: p50/p99 event→commit in the README's benchmarks) plus this worker's wait for its
next batch. The rows arrive out of event-time order with respect to this worker's stream;
the engine inserts a row older than the entity's newest query at its place (the late path
of :mod:`workbench.features.passes`), so later queries see it. A row more than
``allowed_lateness`` behind the entity's newest row may find the rows it needs evicted
(the same limit as for a worker's own late rows), and rows older than the features' longest
look-back (plus the lateness) before the batch are not read at all: no later query can
count them.

Cost: one indexed query per batch, only while the active or challenger rules declare a
feature by another entity than the card and this worker does not own every partition; its
rows are the other workers' batches since the last read. A failed read is logged and retried
with the next batch (the cursor does not move), the batch being scored with the state held.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import numpy as np
import pandas as pd

from workbench import schema
from workbench.features.engine import FeatureEngine
from workbench.scoring.detector import Detector
from workbench.sources.partitioner import partition_of
from workbench.storage import committed, shared_store

log = logging.getLogger(__name__)


class CommittedTail:
    """Feeds other workers' committed rows to a detector's cross-partition feature groups."""

    def __init__(
        self, dsn: str, partitions: int, worker: str, *, card_column: str = "card_id"
    ) -> None:
        self.dsn = dsn
        self.partitions = int(partitions)
        self.worker = worker
        self.card_column = card_column
        self.cursor: str | None = None  # the snapshot of the last read (None: no rebuild yet)
        self.owned: set[int] = set()
        self.reads = 0  # queries made (for figures and tests)
        self.rows_fed = 0

    def restart(self, snapshot: str, owned: list[int]) -> None:
        """Go on from ``snapshot`` (what a rebuild read) for a worker owning ``owned``."""
        self.cursor = snapshot
        self.owned = set(owned)

    def own(self, owned: list[int]) -> None:
        """The worker now owns ``owned`` (partitions revoked, no rebuild: the state of the
        rows already fed stays valid)."""
        self.owned = set(owned)

    def spanning(self, engine: FeatureEngine | None) -> set[str]:
        """The entity columns of ``engine`` that span partitions (all but the card's)."""
        if engine is None:
            return set()
        return engine.entity_columns - {self.card_column}

    def feed(self, detector: Detector, batch: pd.DataFrame) -> int:
        """Add the rows other workers committed since the last read to the active engine's
        (and the challenger's) cross-partition groups; the rows fed."""
        engines = [
            (e, cols)
            for e in (detector.features, detector.shadow_features)
            if (cols := self.spanning(e))
        ]
        if not engines or self.cursor is None or batch.empty:
            return 0
        if len(self.owned) >= self.partitions:  # a lone worker: no one else commits rows
            return 0
        span = max(e.lookback_s + e.allowed_lateness_s for e, _ in engines)
        floor = (pd.Timestamp(batch["ts"].min()) - timedelta(seconds=span)).to_pydatetime()
        try:
            with committed.snapshot(shared_store(self.dsn)) as (conn, now):
                rows = committed.since(conn, self.cursor, worker=self.worker, ts_from=floor)
        except Exception:  # never stop the stream: score with the state held, retry next batch
            log.exception("reading other workers' committed rows failed; retrying next batch")
            return 0
        self.cursor = now
        self.reads += 1
        if len(rows) and self.owned:
            theirs = ~np.isin(
                partition_of(rows[self.card_column].astype(str).tolist(), self.partitions),
                np.fromiter(self.owned, dtype=np.int64),
            )
            rows = rows.loc[theirs, list(schema.NAMES)].reset_index(drop=True)
        if not len(rows):
            return 0
        for engine, cols in engines:
            engine.feed(rows, cols)
        self.rows_fed += len(rows)
        return len(rows)
