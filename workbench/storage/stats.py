"""Counts and pipeline totals: the numbers the CLI and the dashboard's KPIs start from.

Through a store: ``store.stats.counts()``, ``store.stats.pipeline_totals()``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

from workbench.storage import tables
from workbench.storage.frames import Source, fetch, one, select_rows

__all__ = ["counts", "pipeline_totals", "stored_offsets", "workers"]


def counts(source: Source, *, estimate: bool = False) -> dict[str, int]:
    """Row counts: stored, dead, alerts_open, alerts_closed, rule_sets, batches, partitions.

    ``estimate=True`` takes ``stored`` from the planner statistics instead of counting, for
    tables too large to count on every refresh.
    """
    stored = (
        (
            "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'transactions'::regclass"
        )
        if estimate
        else "SELECT count(*) FROM transactions"
    )
    query = f"""
    SELECT ({stored}),
           (SELECT count(*) FROM dead_letters),
           (SELECT count(*) FROM alerts WHERE status = 'open'),
           (SELECT count(*) FROM alerts WHERE status = 'closed'),
           (SELECT count(*) FROM rule_sets),
           (SELECT count(*) FROM pipeline_stats),
           (SELECT count(*) FROM pg_inherits WHERE inhparent = 'transactions'::regclass)
    """
    row = one(source, sa.text(query), "cannot count rows")
    keys = ("stored", "dead", "alerts_open", "alerts_closed", "rule_sets", "batches", "partitions")
    return dict(zip(keys, (int(v) for v in row), strict=True))  # type: ignore[union-attr]


def pipeline_totals(source: Source) -> dict[str, Any]:
    """Totals over every committed batch (from ``pipeline_stats``): ``stored``, ``dead``,
    ``alerts_opened``, ``batches`` and ``last_commit`` (None before the first batch)."""
    p = tables.pipeline_stats.c
    query = sa.select(
        sa.func.coalesce(sa.func.sum(p.stored), 0),
        sa.func.coalesce(sa.func.sum(p.dead), 0),
        sa.func.coalesce(sa.func.sum(p.alerts_opened), 0),
        sa.func.count(),
        sa.func.max(p.committed_at),
    )
    stored, dead, opened, batches, last = one(source, query, "cannot read pipeline totals")
    return {
        "stored": int(stored),
        "dead": int(dead),
        "alerts_opened": int(opened),
        "batches": int(batches),
        "last_commit": last,
    }


def workers(source: Source, *, within_s: float = 300.0) -> pd.DataFrame:
    """One row per worker that committed a batch in the last ``within_s`` seconds, newest
    first: ``worker``, ``source``, ``last_commit``, ``partitions`` (a Kafka worker's, else
    None), ``lag`` (messages behind, else None) and ``batches`` in that span."""
    p = tables.pipeline_stats.c
    since = sa.func.clock_timestamp() - sa.func.make_interval(0, 0, 0, 0, 0, 0, within_s)
    recent = (
        sa.select(
            p.worker,
            p.source,
            p.committed_at.label("last_commit"),
            p.partitions,
            p.lag,
            sa.func.count().over(partition_by=p.worker).label("batches"),
            sa.func.row_number().over(partition_by=p.worker, order_by=p.id.desc()).label("n"),
        )
        .where(p.committed_at >= since)
        .subquery()
    )
    query = (
        sa.select(*(c for c in recent.c if c.name != "n"))
        .where(recent.c.n == 1)
        .order_by(recent.c.last_commit.desc())
    )
    return fetch(source, query, "cannot read the workers' health")


def stored_offsets(source: Source, label: str) -> dict[int, int]:
    """For a partitioned source (its ``label``), the highest next offset per partition among
    the batches committed from it, by any worker."""
    query = sa.text(
        "SELECT o.key::int, max(o.value::bigint) FROM pipeline_stats p,"
        " jsonb_each_text(p.offsets) o WHERE p.source = :label AND p.offsets IS NOT NULL"
        " GROUP BY o.key"
    ).bindparams(label=label)
    rows, _ = select_rows(source, query, "cannot read the stored offsets")
    return {int(p): int(o) for p, o in rows}
