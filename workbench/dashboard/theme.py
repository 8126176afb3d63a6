"""Colours and formats shared by every view (one place, so pages and notebooks agree)."""

from __future__ import annotations

import math

BAND_COLORS = {"Low": "#2e7d32", "Medium": "#ef8f00", "High": "#c62828"}
ACCENT = "#1f4e79"
REFRESH_MS = 500  # how often a session pulls from the hub


def fmt_number(value: float, digits: int = 0, unit: str = "") -> str:
    """``1,234`` / ``12.5 ms``; an em dash when there is no value yet."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}{unit}"


def fmt_money(value: float | None, currency: str | None = None) -> str:
    """``1,234.50 EUR``: two decimals always (amounts are whole cents); an em dash for none."""
    text = fmt_number(value, 2)
    return f"{text} {currency}" if currency and text != "—" else text


# Tabulator's own money formatter: thousands separated, always two decimals.
MONEY_FORMATTER = {"type": "money", "decimal": ".", "thousand": ",", "precision": 2}


def fmt_age(seconds: float) -> str:
    """How long ago, for the health panel: ``0.4 s``, ``3 min``; an em dash for never."""
    if seconds is None or math.isnan(seconds):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
