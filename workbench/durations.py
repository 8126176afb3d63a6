"""Durations written the way analysts write them: ``90s``, ``10m``, ``1h30m``, ``7d``, ``2w``."""

from __future__ import annotations

import re

import numpy as np

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")

NS_PER_S = 1_000_000_000


def parse_duration(text: object) -> float:
    """Seconds in a duration such as ``"10m"`` or ``"1h30m"``; a bare number is seconds.

    >>> parse_duration("1h30m"), parse_duration("7d"), parse_duration(45)
    (5400.0, 604800.0, 45.0)

    Raises ``ValueError`` with a readable message for anything else.
    """
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, int | float):
        if not np.isfinite(text) or text < 0:
            raise ValueError(f"not a duration: {text!r}")
        return float(text)
    if not isinstance(text, str):
        raise ValueError(f"not a duration: {text!r}")
    s = text.strip().lower().replace(" ", "")
    if not s or len(s) > 32:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 10m, 1h30m, 7d)")
    pos, total = 0, 0.0
    for match in _PART.finditer(s):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(s):
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 10m, 1h30m, 7d)")
    return total


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: ``format_duration(600) == "10m"``."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
