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

Features by other entities than the card (customer, terminal) span partitions: each worker
sees only the rows of its own partitions for them, plus, at each rebuild, every stored row.
See the README (architecture, scale-out) for what that means and its bound.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from workbench import schema
from workbench.bands import Band
from workbench.scoring.detector import Detector
from workbench.scoring.result import ScoredBatch
from workbench.sources.base import SourceBatch
from workbench.sources.partitioner import partition_of
from workbench.storage import shared_store
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
            return 0
        self.owned = set(owned)
        # the challenger's own features too: under a rollout they decide for its cards
        engines = [detector.features]
        if detector.shadow_features is not None:
            engines.append(detector.shadow_features)
        for engine in engines:
            engine.reset_windows()
        self.rebuilds += 1
        store = shared_store(self.dsn)
        bounds = time_bounds(store)
        if bounds is None or not owned:
            self.known = pd.Index([], dtype=object)
            return 0
        newest = pd.Timestamp(bounds[1])
        span = timedelta(seconds=max(e.lookback_s + e.allowed_lateness_s for e in engines))
        # No upper bound: rows committed since ``newest`` was read are in the history too, so
        # what it holds of a partition is what was committed of it, up to one offset (a row
        # left out by a bound, then read again, could otherwise be fed after a later one).
        history = load(store, (newest - span).to_pydatetime(), _END)
        if len(history):
            mine = np.isin(
                partition_of(history[self.card_column].astype(str).tolist(), self.partitions),
                np.asarray(owned, dtype=np.int64),
            )
            history = history.loc[mine, list(schema.NAMES)].reset_index(drop=True)
        for engine in engines if len(history) else ():
            engine.compute_arrays(history)
        self.known = pd.Index(history["tx_id"].astype(str)) if len(history) else self.known[:0]
        self.rows_read += len(history)
        log.info(
            "feature state rebuilt for partitions %s from %d stored transaction(s)",
            owned,
            len(history),
        )
        return len(history)

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
