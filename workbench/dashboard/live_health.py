"""The live page's status line (live / stalled / waiting) and its pipeline-health panel.

Both are redrawn from a hub :class:`~workbench.dashboard.hub.Delta` by every update and, while
no batch arrives, every :data:`STATUS_EVERY_S` by the session, so a stopped worker shows as
stalled within seconds. Every value that comes from outside (a rule-load error quoting a rule
file, worker names) is escaped.
"""

from __future__ import annotations

import math
import time

import pandas as pd
import panel as pn

from workbench.dashboard import clock, safe
from workbench.dashboard.hub import Delta, Health
from workbench.dashboard.theme import BAND_COLORS, fmt_age, fmt_number
from workbench.dashboard.workers import WORKER_COLUMNS, workers_html

STATUS_EVERY_S = 1.0  # without new batches, rates and the worker status are re-read this often
STALLED_AFTER_S = 5.0  # no batch for this long: the pipeline is shown as stalled

_HEALTH_ROW = "<tr><th style='text-align:left;padding:2px 16px 2px 0'>{}</th><td>{}</td></tr>"


class StatusLine(pn.viewable.Viewer):
    """The line at the top of the page: live, stalled (since when) or waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.pane = safe.pane(css_classes=["live-status"])

    def __panel__(self) -> pn.viewable.Viewable:
        return self.pane

    def update(self, delta: Delta) -> None:
        safe.show(self.pane, status_html(delta.health))


class HealthPanel(pn.viewable.Viewer):
    """Database, rule sets, dead letters, alerts opened, last batch and workers."""

    def __init__(self) -> None:
        super().__init__()
        self.pane = safe.pane(sizing_mode="stretch_width", css_classes=["health"])
        self.card = pn.Column(
            safe.heading("Pipeline health"), self.pane, sizing_mode="stretch_width"
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self.card

    def update(self, delta: Delta) -> None:
        safe.show(self.pane, delta.derived("health_html", lambda: panel_html(delta)))


def panel_html(delta: Delta) -> safe.Html:
    """The health table and, when workers report, who runs (for a Kafka group, which
    partitions)."""
    html = health_html(delta)
    if delta.health.worker_rows:
        frame = pd.DataFrame(list(delta.health.worker_rows), columns=WORKER_COLUMNS)
        html = safe.join([html, workers_html(frame)])
    return html


def health_html(d: Delta) -> safe.Html:
    """The health panel: a two-column table whose values are escaped."""
    h = d.health
    reload: str | safe.Html = h.reload_status or "—"
    if h.reload_status == "rejected" and h.reload_error:
        reload = safe.html("<b>rejected</b>: {}", h.reload_error)
    elif h.reload_status:
        reload = f"{h.reload_status} ({h.reload_version})"
    rows = [
        ("Database", h.database),
        ("Rule set scoring", h.rule_set_version or "—"),
        ("Last rule-set load", reload),
        ("Dead letters", fmt_number(d.kpis.dead_letters)),
        ("Alerts opened", fmt_number(d.kpis.alerts_opened)),
        ("Last batch", _last_batch(h)),
        ("Workers", ", ".join(h.workers) or "—"),
    ]
    body = safe.join([safe.html(_HEALTH_ROW, k, v) for k, v in rows])
    # long values (a rule-set hash, an error) wrap inside the panel rather than widen the page
    return safe.html(
        "<table style='border-collapse:collapse;overflow-wrap:anywhere'>{}</table>", body
    )


def status_html(h: Health) -> safe.Html:
    """Live / stalled (no batch for :data:`STALLED_AFTER_S`, with the time of the last) /
    waiting for a first batch."""
    age = h.last_batch_age_s
    if age is None or math.isnan(age):
        return safe.html("<b>Waiting</b> for the first batch of the pipeline")
    if age < STALLED_AFTER_S:
        return safe.html("<b style='color:{}'>● live</b>", BAND_COLORS["Low"])
    return safe.html(
        "<b style='color:{}'>■ stalled</b>: no batch for {} (last at {})",
        BAND_COLORS["High"],
        fmt_age(age),
        _wall(age),
    )


def _last_batch(h: Health) -> str:
    """'live' while batches keep coming (so the panel is not redrawn every update), else
    how long ago and at what wall-clock time the last one came."""
    age = h.last_batch_age_s
    if age is None or math.isnan(age):
        return "—"
    if age < STALLED_AFTER_S:
        return f"live (< {STALLED_AFTER_S:.0f} s ago)"
    return f"{fmt_age(age)} ago, at {_wall(age)}"


def _wall(age_s: float) -> str:
    """The wall-clock time ``age_s`` seconds ago, labelled."""
    at = pd.Timestamp(time.time() - age_s, unit="s", tz="UTC")
    return f"{clock.stamp(at, '%H:%M:%S')} {clock.label(clock.WALL)}"
