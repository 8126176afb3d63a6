"""Rebuilding a worker's feature state from stored history when its partitions change.

A consumer-group member owns some partitions of the topic, and with them the cards whose
transactions they carry (:mod:`workbench.sources.partitioner`). When the group rebalances
(a worker joins, leaves or dies), the pipeline, between two batches and after the write in
flight has committed, calls :meth:`StateRebuild.rebuild` with the partitions it owns now:
the window state is emptied, then fed, in one batch, the stored transactions of the owned
partitions' cards over the features' longest look-back before the newest stored one. So a
card's features continue exactly as in a single-worker run, whoever scored its earlier
transactions.

The rows read are remembered until the next rebuild: a batch whose offsets the previous
owner had not committed yet (it was killed, or its partition was revoked between its
database commit and its offset commit) comes again, and its rows, already in the state,
must not be added twice. :meth:`StateRebuild.split` takes them out of the batch before
scoring; they are handed to the writer unscored and counted as duplicates (stored already,
they store nothing).

Features by other entities than the card (customer, terminal) span partitions. With a
:class:`~workbench.pipeline.tail.CommittedTail` attached (``tail``), the rebuild feeds those
entities' groups every stored row of the look-back (all partitions), the card groups only
the owned partitions' rows, all read in one snapshot; the tail then goes on from that very
snapshot, adding each batch other workers commit afterwards exactly once, so the worker's
view of a terminal lags the others' commits by their read-to-commit latency at most (see
:mod:`workbench.pipeline.tail` for the bound). :attr:`StateRebuild.known` holds the owned
partitions' rows only: other partitions' rows never come in this worker's batches (when
one of them is assigned to it, a rebuild starts over). Without a tail (no feature spans
partitions), only the owned partitions' rows are read into the state.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from workbench import schema
from workbench.bands import Band
from workbench.pipeline.tail import CommittedTail
from workbench.scoring.detector import Detector
from workbench.scoring.result import ScoredBatch
from workbench.sources.base import SourceBatch
from workbench.sources.partitioner import partition_of
from workbench.storage import shared_store
from workbench.storage.committed import snapshot
from workbench.storage.stats import stored_offsets
from workbench.storage.transactions import load, time_bounds

log = logging.getLogger(__name__)

_END = datetime(9999, 12, 31, tzinfo=UTC)


class StateRebuild:
    """Rebuilds a detector's window state for the partitions a worker owns."""

    def __init__(self, dsn: str, partitions: int, *, card_column: str = "card_id") -> None:
        self.dsn = dsn
        self.partitions = int(partitions)
        self.card_column = card_column
        self.known = pd.Index([], dtype=object)
        self.owned: set[int] = set()
        self.rebuilds = 0
        self.rows_read = 0
        self.redelivered = 0  # rows of batches seen again after a rebuild
        self.tail: CommittedTail | None = None  # follows other workers' commits, if attached

    def check_log(self, source, label: str) -> None:
        """Tell a newly assigned ``source`` the offsets stored with committed batches, so a
        partition that starts again below them (a broker that lost messages) is reported
        whoever committed them."""
        try:
            source.expect(stored_offsets(shared_store(self.dsn), label))
        except Exception:  # a report only: never stop the stream for it
            log.exception("reading the stored offsets failed")

    def rebuild(self, detector: Detector, owned: list[int]) -> int:
        """Empty the window state and feed it the stored history of the ``owned`` partitions'
        cards; returns the rows fed."""
        if set(owned) <= self.owned:  # only revoked: the kept cards' state is intact
            self.owned = set(owned)
            if self.tail is not None:
                self.tail.own(owned)
            return 0
        self.owned = set(owned)
        # the challenger's own features too: under a rollout they decide for its cards
        engines = [detector.features]
        if detector.shadow_features is not None:
            engines.append(detector.shadow_features)
        for engine in engines:
            engine.reset_windows()
        self.rebuilds += 1
        tail = self.tail
        # One snapshot for the bounds, the history and the tail's cursor: a batch committed
        # meanwhile is either in the history or after the cursor, never both nor neither.
        with snapshot(shared_store(self.dsn)) as (conn, taken):
            bounds = time_bounds(conn)
            history = None
            if bounds is not None and owned:
                newest = pd.Timestamp(bounds[1])
                span = timedelta(seconds=max(e.lookback_s + e.allowed_lateness_s for e in engines))
                history = load(conn, (newest - span).to_pydatetime(), _END)
        if tail is not None:
            tail.restart(taken, owned)
        if history is None:
            self.known = pd.Index([], dtype=object)
            log.info("feature state rebuilt for partitions %s: nothing stored", owned)
            return 0
        history = history[list(schema.NAMES)]
        mine = np.isin(
            partition_of(history[self.card_column].astype(str).tolist(), self.partitions),
            np.asarray(owned, dtype=np.int64),
        )
        fed = history.loc[mine].reset_index(drop=True)
        spanning_any = False
        for engine in engines:
            spanning = tail.spanning(engine) if tail is not None else set()
            if spanning and len(history):
                spanning_any = True
                engine.feed(history, spanning)  # every partition's rows, these entities only
                engine.feed(fed, engine.entity_columns - spanning)
            elif len(fed):
                engine.compute_arrays(fed)
        self.known = pd.Index(fed["tx_id"].astype(str)) if len(fed) else self.known[:0]
        read = len(history) if spanning_any else len(fed)
        self.rows_read += read
        log.info(
            "feature state rebuilt for partitions %s from %d stored transaction(s) (%d of them"
            " for the features that span partitions only)",
            owned,
            read,
            len(history) - len(fed) if spanning_any else 0,
        )
        return read

    def split(self, batch: SourceBatch) -> tuple[SourceBatch, pd.DataFrame]:
        """The batch without the rows the rebuilt state holds already, and those rows."""
        if not len(self.known) or not len(batch.frame):
            return batch, batch.frame.iloc[:0]
        seen = batch.frame["tx_id"].astype(str).isin(self.known).to_numpy()
        if not seen.any():
            return batch, batch.frame.iloc[:0]
        self.redelivered += int(seen.sum())
        fresh = SourceBatch(
            frame=batch.frame.loc[~seen].reset_index(drop=True),
            dead=batch.dead,
            position=batch.position,
            created_at=batch.created_at,
        )
        return fresh, batch.frame.loc[seen].reset_index(drop=True)


def with_stored(scored: ScoredBatch, stored: pd.DataFrame, version: str) -> ScoredBatch:
    """``scored`` with the rows known to be stored already appended unscored: the writer
    finds their ids stored and counts them as duplicates (hit positions stay valid, as
    they come after every scored row)."""
    if not len(stored):
        return scored
    extra = stored.assign(risk_score=0.0, band=Band.LOW.label, rule_set_version=version)
    frame = pd.concat([scored.frame, extra[list(scored.frame.columns)]], ignore_index=True)
    scored.frame = frame
    return scored
