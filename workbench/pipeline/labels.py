"""Feeding stored labels to a worker's label-aware features, incrementally and bounded.

Before each batch is scored (in the detect node's thread), :meth:`LabelFeed.feed` reads the
label rows written since the last read — keyset on the labels' id, a page at a time — and
adds them to the detector's feature engine. Only an engine that declares ``labels:``
features costs a query. The engine applies known_at itself (a label counts only for rows
after it), so reading a label early is harmless; reading it late is what would make the
stream differ from a backtest. A disposition's known_at is the newest stored ts when it was
written, and every batch reads the labels first: only rows of the batch being scored while
the disposition commits can miss it (documented in :mod:`workbench.storage.labels`).

Labels of transactions older than the features' longest window (plus the allowed
lateness) before the batch are not read at all, so a worker starting on a database with
years of labels holds only the recent ones. A rule set with other features (a new engine)
starts again from id 0 with that floor. A failed read is logged and retried with the next
batch; the batch is scored with the labels held.
"""

from __future__ import annotations

import logging

import pandas as pd

from workbench.scoring.detector import Detector
from workbench.storage import labels, shared_store

log = logging.getLogger(__name__)

PAGE = 50_000


class LabelFeed:
    """Reads new label rows from ``dsn`` into a detector's feature engine."""

    def __init__(self, dsn: str, page: int = PAGE) -> None:
        self.dsn = dsn
        self.page = page
        self.read = 0  # label rows read so far (for figures and tests)

    def feed(self, detector: Detector, batch: pd.DataFrame) -> int:
        """Add the label rows written since the last call (to the active set's engine and
        the challenger's own, if any); how many were read."""
        got = self._feed(detector.features, batch)
        if detector.shadow_features is not None:
            got += self._feed(detector.shadow_features, batch)
        return got

    def _feed(self, engine, batch: pd.DataFrame) -> int:
        book = engine.labels
        if book is None or batch.empty:
            return 0
        floor = batch["ts"].min() - pd.Timedelta(book.horizon_ns + book.lateness_ns, unit="ns")
        store = shared_store(self.dsn)
        got = 0
        try:
            while True:
                rows = labels.since(store, book.last_id, self.page, ts_from=floor)
                engine.add_labels(rows)
                if len(rows):
                    book.last_id = max(book.last_id, int(rows["id"].max()))
                got += len(rows)
                if len(rows) < self.page:
                    break
        except Exception:  # never stop the stream: score with the labels held
            log.exception("labels: reading new labels failed; retrying with the next batch")
        self.read += got
        return got
