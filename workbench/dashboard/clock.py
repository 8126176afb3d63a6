"""The dashboard's clocks: which time zone times are shown in, and how they are labelled.

Two clocks are shown: the *event time* of transactions (history, tables, trends of events)
and the *wall clock* (when a batch was received, a case opened or is due, an audit entry).
Both are stored in UTC (``timestamptz``); the dashboard shows them in the display zone
(setting ``display_timezone``, default UTC) and every column, axis and input that shows one
names the clock and the zone: ``event time (Europe/Paris)``.

The zone is the process's: read from the settings on first use (a bad name was already
refused, in one line, when the settings were loaded at startup); :func:`configure` sets it
(tests, notebooks).

Date inputs are read in the display zone (:func:`from_input`): a naive ``2026-03-01 09:00``
typed by an analyst in Paris is 08:00 UTC. A wall time that happens twice (the hour the
clocks go back) is read as the first; one that never happens (the hour they go forward) as
the offset before the change (PEP 495, ``fold=0``).

>>> configure("Europe/Paris")
>>> label(EVENT)
'event time (Europe/Paris)'
>>> stamp(pd.Series(pd.to_datetime(["2026-07-01T10:00:00Z"]))).tolist()
['2026-07-01 12:00:00']
>>> from_input(datetime(2026, 1, 15, 9, 0)).isoformat()
'2026-01-15T08:00:00+00:00'
>>> configure(None)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from workbench.settings import Settings

EVENT = "event time"
WALL = "wall clock"
SECONDS = "%Y-%m-%d %H:%M:%S"
MINUTES = "%Y-%m-%d %H:%M"

_zone: ZoneInfo | None = None


def configure(name: str | None) -> None:
    """Show times in the IANA zone ``name`` from now on in this process (None: the
    ``display_timezone`` setting again). Raises ``ConfigError`` for an unknown name."""
    global _zone
    _zone = (
        None
        if name is None
        else ZoneInfo(Settings.load({}, display_timezone=name).display_timezone)
    )


def zone() -> ZoneInfo:
    """The display zone."""
    global _zone
    if _zone is None:
        _zone = ZoneInfo(Settings.load().display_timezone)
    return _zone


def label(kind: str = EVENT) -> str:
    """``kind`` (:data:`EVENT`, :data:`WALL` or a column's own name) with the zone:
    ``"wall clock (UTC)"``."""
    return f"{kind} ({zone().key})"


def to_display(value: Any) -> Any:
    """``value`` (a Series, index, Timestamp or datetime; naive means UTC, as stored) as
    aware times in the display zone."""
    if isinstance(value, pd.Series | pd.Index):
        return (
            _utc(value).tz_convert(zone())
            if isinstance(value, pd.Index)
            else (_utc(value).dt.tz_convert(zone()))
        )
    ts = pd.Timestamp(value)
    return (ts.tz_localize(UTC) if ts.tzinfo is None else ts).tz_convert(zone())


def naive(value: Any) -> Any:
    """The display zone's wall time of ``value``, without zone: for plot axes (Bokeh draws
    datetimes as UTC) and for a date input's value."""
    shown = to_display(value)
    if isinstance(shown, pd.Series):
        return shown.dt.tz_localize(None)
    if isinstance(shown, pd.Index):
        return shown.tz_localize(None)
    return shown.tz_localize(None).to_pydatetime()


def axis_ms(epoch_s: Any) -> np.ndarray:
    """Epoch seconds as the milliseconds a Bokeh datetime axis shows as the display zone's
    wall time (each point's own offset: a range across a clock change stays right)."""
    seconds = np.asarray(epoch_s, dtype="float64")
    if zone().key == "UTC" or not len(seconds):
        return seconds * 1000.0
    index = pd.to_datetime(seconds, unit="s", utc=True)
    offsets = index.tz_convert(zone()).tz_localize(None) - index.tz_localize(None)
    return seconds * 1000.0 + offsets.total_seconds().to_numpy() * 1000.0


def stamp(value: Any, fmt: str = SECONDS) -> Any:
    """``value`` as text in the display zone: a Series gives a Series (missing stays NaN),
    a single time a string ('' for none)."""
    if isinstance(value, pd.Series):
        return to_display(value).dt.strftime(fmt)
    if value is None or value is pd.NaT:
        return ""
    return to_display(value).strftime(fmt)


def from_input(value: datetime | None) -> datetime | None:
    """A date input's value as an aware UTC datetime: naive means the display zone's wall
    time; aware keeps its instant. None stays None."""
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone())
    return value.astimezone(UTC)


def _utc(values: Any) -> Any:
    """Stored times as aware UTC (naive values are UTC; text is ISO 8601)."""
    if isinstance(values, pd.Series) and not isinstance(values.dtype, pd.DatetimeTZDtype):
        return pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
    if isinstance(values, pd.Index) and not isinstance(values.dtype, pd.DatetimeTZDtype):
        return pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
    return values
