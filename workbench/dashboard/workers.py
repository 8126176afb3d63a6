"""The pipeline workers' health, one row each: source, partitions, lag, last batch.

Rendered from :func:`workbench.storage.stats.workers` (the newest ``pipeline_stats`` row of
each worker that committed recently): a Kafka worker shows the partitions it owns and the
messages behind the end of their logs (the client's cached figure, for display only); other
sources show a dash there. Every value is text from the database and is escaped
(:mod:`workbench.dashboard.safe`).
"""

from __future__ import annotations

import math

import pandas as pd

from workbench.dashboard import safe
from workbench.dashboard.theme import fmt_age

WORKER_COLUMNS = ["worker", "source", "partitions", "lag", "last_commit"]
"""The columns :func:`workers_html` reads (those of :func:`workbench.storage.stats.workers`)."""

_ROW = "<tr><td>{}</td><td>{}</td><td>{}</td><td style='text-align:right'>{}</td><td>{}</td></tr>"
_HEAD = (
    "<tr><th style='text-align:left'>Worker</th><th style='text-align:left'>Source</th>"
    "<th style='text-align:left'>Partitions</th><th>Lag</th>"
    "<th style='text-align:left'>Last batch</th></tr>"
)


def _partitions(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return ", ".join(str(int(p)) for p in value) or "none"


def _lag(value) -> str:
    if value is None or pd.isna(value):
        return "—"
    return f"{int(value):,}"


def _age(seconds: float) -> str:
    """Whole seconds under a minute: the panel is redrawn when its text changes, and a
    tenth of a second would change it at every update."""
    return f"{max(seconds, 0):.0f} s" if 0 <= seconds < 60 else fmt_age(seconds)


def workers_html(rows: pd.DataFrame, now: pd.Timestamp | None = None) -> safe.Html:
    """A table of the workers of ``rows`` (columns of :func:`~workbench.storage.stats.workers`)."""
    if rows is None or not len(rows):
        return safe.html("No worker has committed a batch recently.")
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    body = safe.join(
        [
            safe.html(
                _ROW,
                r.worker,
                r.source,
                _partitions(r.partitions),
                _lag(r.lag),
                f"{_age((now - pd.Timestamp(r.last_commit)).total_seconds())} ago",
            )
            for r in rows.itertuples(index=False)
        ]
    )
    # Cells apart (12 px), the first column still flush with the panel's other rows.
    return safe.html(
        "<table style='border-collapse:separate;border-spacing:12px 2px;margin-left:-12px'>"
        "{}{}</table>",
        safe.html(_HEAD),
        body,
    )
