"""Champion against challenger on live traffic: what the shadow rule set would have done.

The stream scores every transaction with the active rule set (``transactions``) and, while a
challenger is set (``workbench rules shadow set``), with it too (``shadow_scores``). This
compares the two over the same transactions — nothing is re-scored, so the figures are what
each set decided at the time, with the features and lists of that moment.

Two ground truths are kept apart and named: **simulator truth** (``is_fraud``, ``sim_*``)
and **analyst labels** (the current ``analyst`` label, ``analyst_*``). A transaction is
*flagged* by a side when its band is High.

>>> # from workbench.analysis import shadow_compare
>>> # kpis = shadow_compare(since="2026-01-01")
>>> # kpis.migration          # active band x shadow band, counts
>>> # kpis.rules              # hits per rule on each side, precision on both truths
>>> # kpis.flagged            # High per side, precision on both truths
"""

from __future__ import annotations

from datetime import datetime

from workbench.analysis.database import database_url
from workbench.analysis.labels import _utc
from workbench.storage import shared_store
from workbench.storage.shadow_kpis import ShadowComparison, comparison

__all__ = ["ShadowComparison", "shadow_compare"]


def shadow_compare(
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    *,
    version: str | None = None,
    dsn: str | None = None,
    conn=None,
) -> ShadowComparison:
    """Active against challenger over the transactions with ``since <= ts < until`` (event
    time; naive = UTC): band migration, hits per rule, precision on simulator truth and on
    analyst labels (:class:`~workbench.storage.shadow_kpis.ShadowComparison`). ``version``:
    the challenger to compare; default the one in effect, else the newest scored."""
    source = conn if conn is not None else shared_store(dsn or database_url())
    return comparison(source, _utc(since), _utc(until), version=version)
