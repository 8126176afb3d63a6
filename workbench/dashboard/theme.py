"""Colours and formats shared by every view (one place, so pages and notebooks agree)."""

from __future__ import annotations

import math

# Band colours are also text colours (the band column): each has a WCAG AA contrast of at least
# 4.5:1 on white (tests/unit/test_dashboard_theme.py computes it). Medium was #ef8f00 (2.4:1).
BAND_COLORS = {"Low": "#2e7d32", "Medium": "#a65c00", "High": "#c62828"}
ACCENT = "#1f4e79"
TEXT = "#212121"
BACKGROUND = "#ffffff"
REFRESH_MS = 500  # how often a session pulls from the hub

# Times (event time, wall clock) are shown and labelled by workbench.dashboard.clock.


def contrast_ratio(foreground: str, background: str = BACKGROUND) -> float:
    """The WCAG 2 contrast ratio of two ``#rrggbb`` colours (AA text needs >= 4.5)."""

    def luminance(color: str) -> float:
        rgb = [int(color.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
        lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


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
# Ids (case, alert, rule set, audit entry) as typed: digits only, never "19,812".
ID_FORMATTER = {"type": "plaintext"}


def fmt_age(seconds: float) -> str:
    """How long ago, for the health panel: ``0.4 s``, ``3 min``; an em dash for never."""
    if seconds is None or math.isnan(seconds):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
