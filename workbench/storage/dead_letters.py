"""Dead letters: records that could not be stored, with their reason.

They are written inside the batch write (:mod:`workbench.storage.writer`); this is the read.
Through a store: ``store.dead_letters.recent()``.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from workbench.storage import tables
from workbench.storage.frames import Source, fetch

__all__ = ["recent"]


def recent(source: Source, limit: int = 100) -> pd.DataFrame:
    """The newest dead letters: id, received_at, source, worker, raw, reason."""
    d = tables.dead_letters.c
    query = (
        sa.select(d.id, d.received_at, d.source, d.worker, d.raw, d.reason)
        .order_by(d.id.desc())
        .limit(int(limit))
    )
    return fetch(source, query, "cannot read dead letters")
