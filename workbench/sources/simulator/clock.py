"""Simulated time with a daily rhythm: few transactions at night, peaks at mid-day and evening.

People pay by *local* time, so the rhythm is per country (fixed UTC offsets, no DST) and the
world's intensity at a UTC instant is the activity-weighted sum over countries. Time is kept as
float seconds since the UTC midnight of the start day. ``W(t)``, the integral of the normalized
intensity (mean slope 1), is periodic-plus-linear and tabulated per minute, so both ``W`` and
its inverse are one ``np.interp``. A batch of ``n`` rows advances ``W`` by ``n / mean rate`` and
draws its timestamps as ``n`` sorted uniforms in ``W``-space mapped back: a Poisson process
conditioned on ``n`` events, whose simulated time runs faster at night.
"""

from __future__ import annotations

import numpy as np

DAY = 86_400.0
_MINUTES = 1440


def local_rhythm(hours: np.ndarray) -> np.ndarray:
    """Relative activity at local time ``hours`` (0..24): low at night, morning, noon, evening."""

    def bump(center: float, width: float) -> np.ndarray:
        d = (hours - center + 12.0) % 24.0 - 12.0  # circular distance in hours
        return np.exp(-0.5 * (d / width) ** 2)

    return 0.06 + 0.35 * bump(8.5, 1.2) + 1.0 * bump(12.5, 1.6) + 0.9 * bump(18.5, 2.0)


def _floor_div(x: np.ndarray, unit: float) -> np.ndarray:
    """``np.floor_divide(x, unit)`` (float) for integral ``unit``, without its slow ``fmod``.

    A correctly rounded ``x / unit`` is never below the true quotient's floor; it could only
    round up onto the next integer, and as ``q * unit`` is exact, one comparison rules that out.
    """
    q = np.floor(x / unit)
    return q - (q * unit > x)


def _days(x: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """``np.divmod(x, DAY)``, bit for bit: ``x - day * DAY`` is the exact ``fmod`` remainder
    (Sterbenz), or for negative ``x`` the same single rounding ``np.remainder`` makes."""
    x = np.asarray(x, dtype=np.float64)
    day = _floor_div(x, DAY)
    return day, x - day * DAY


class Clock:
    """Maps expected transaction counts to simulated time for a population's time zones."""

    def __init__(self, country_weight: np.ndarray, utc_offset_h: np.ndarray) -> None:
        minutes = np.arange(_MINUTES)
        local_min = (minutes[:, None] + 60 * utc_offset_h[None, :]) % _MINUTES
        # minute of the UTC day x country: activity of that country's people at that minute
        self.country_rate = local_rhythm((local_min + 0.5) / 60.0) * country_weight[None, :]
        total = self.country_rate.sum(axis=1)
        self._cum = np.concatenate([[0.0], np.cumsum(total)])
        self._cum *= DAY / self._cum[-1]  # mean slope 1: W advances one second per second
        self._edges = np.arange(_MINUTES + 1) * 60.0
        self._country_cdf = np.cumsum(self.country_rate, axis=1)
        # country_at's binary search: each minute's CDF padded with +inf to a power of two
        # columns, flattened, so every step of the search is one gather for the whole batch.
        n_countries = self._country_cdf.shape[1]
        self._width = 1 << n_countries.bit_length()  # > n_countries: at least one +inf
        table = np.full((_MINUTES, self._width), np.inf)
        table[:, :n_countries] = self._country_cdf
        self._cdf_flat = table.ravel()
        self._cdf_total = self._country_cdf[:, -1].copy()

    def warp(self, t: np.ndarray | float) -> np.ndarray:
        """``W(t)``: rhythm-weighted seconds elapsed since midnight of day 0."""
        day, rest = _days(t)
        return day * DAY + np.interp(rest, self._edges, self._cum)

    def unwarp(self, w: np.ndarray | float) -> np.ndarray:
        """Inverse of :meth:`warp`."""
        day, rest = _days(w)
        return day * DAY + np.interp(rest, self._cum, self._edges)

    def country_at(self, rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
        """A country per timestamp (``t >= 0``), drawn by who is awake and shopping at that UTC
        minute: the number of CDF entries ``<= u``, found by a branch-free binary search."""
        # floor((t % DAY) / 60) == floor(t / 60) % 1440 for t >= 0 (DAY is 1440 minutes)
        minute = _floor_div(t, 60.0).astype(np.int64) % _MINUTES
        u = rng.random(len(t)) * self._cdf_total[minute]
        row = minute * self._width - 1  # flat index of "column -1": nothing counted yet
        at, step = row, self._width // 2
        while step:
            probe = at + step
            at = np.where(self._cdf_flat[probe] <= u, probe, at)
            step //= 2
        return np.minimum(at - row, self._country_cdf.shape[1] - 1)
