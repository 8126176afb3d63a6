"""Compiled (numba) turning of the raw outputs of :func:`passes.step` into feature values.

A group's specs become a small *program*: one line (code, argument, width, output row) per
spec, run by :func:`finish` over the batch in one compiled loop per spec, writing straight into
the engine's output matrices (one float64 and one bool row per feature, a column per batch
row). This replaces a dozen numpy expressions per group, each with its temporaries.

Standard deviations come from exact int64 sums of cents and of the limbs of the squared cents
(see :mod:`.passes`). The variance's numerator n·Σc² − (Σc)² is formed in double-double
arithmetic (about 106 bits, error-free products and sums; no fused multiply-add needed), so the
cancellation in it costs no precision a float64 result could show.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from workbench.features import passes as P

# program codes; the argument is a window (k), a distinct or percentile feature (j) or a value
# column (c)
(
    F_COUNT,
    F_SUM,
    F_MEAN,
    F_STD,
    F_MAX,
    F_MIN,
    F_FRAUD_COUNT,
    F_FRAUD_RATE,
    F_DISTINCT,
    F_IS_NEW,
    F_SECONDS,
    F_KM,
    F_KMH,
    F_PCT,
) = range(14)
CODES = {
    "count": F_COUNT,
    "sum": F_SUM,
    "mean": F_MEAN,
    "std": F_STD,
    "max": F_MAX,
    "min": F_MIN,
    "fraud_count": F_FRAUD_COUNT,
    "fraud_rate": F_FRAUD_RATE,
    "distinct": F_DISTINCT,
    "is_new": F_IS_NEW,
    "seconds_since_prev": F_SECONDS,
    "distance_km": F_KM,
    "speed_kmh": F_KMH,
    "median": F_PCT,
    "percentile": F_PCT,
}
PROGRAM_FIELDS = 4  # code, argument, width (ns; is_new), output row

EARTH_KM = 6371.0088
_SPLIT = 134217729.0  # 2^27 + 1 (Dekker's split of a float64 into two 26-bit halves)


@njit(inline="always")
def _two_sum(a, b):  # pragma: no cover - compiled
    s = a + b
    v = s - a
    return s, (a - (s - v)) + (b - v)


@njit(inline="always")
def _two_prod(a, b):  # pragma: no cover - compiled
    p = a * b
    c = _SPLIT * a
    ah = c - (c - a)
    al = a - ah
    c = _SPLIT * b
    bh = c - (c - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@njit(inline="always")
def _dd_add(ah, al, bh, bl):  # pragma: no cover - compiled
    s, e = _two_sum(ah, bh)
    e += al + bl
    return _two_sum(s, e)


@njit(inline="always")
def _dd_int(x):  # pragma: no cover - compiled
    """An int64 as an exact double-double (|x| < 2^62)."""
    hi = float(x)
    return hi, float(x - np.int64(hi))


@njit(inline="always")
def _dd_mul(ah, al, b):  # pragma: no cover - compiled
    p, e = _two_prod(ah, b)
    e += al * b
    return _two_sum(p, e)


@njit(inline="always")
def std_cents(n, s1, sq2, sq1, sq0):  # pragma: no cover - compiled
    """Population std (in units, not cents) of n amounts from the exact sums of their cents
    (s1) and of their squared cents (sq2·2^62 + sq1·2^32 + sq0); NaN when n == 0."""
    if n <= 0:
        return np.nan
    fn = float(n)
    if sq2 == 0 and sq1 == 0 and fn * float(sq0) < 2.0**62 and float(s1) * float(s1) < 2.0**62:
        var = (n * sq0 - s1 * s1) / (fn * fn)  # exact numerator: every cent below 2^31
        return math.sqrt(var) / 100.0 if var > 0.0 else 0.0
    h2, l2 = _dd_int(sq2)
    h1, l1 = _dd_int(sq1)
    h0, l0 = _dd_int(sq0)
    h, lo = _dd_add(h2 * 2.0**62, l2 * 2.0**62, h1 * 2.0**32, l1 * 2.0**32)
    h, lo = _dd_add(h, lo, h0, l0)
    nh, nl = _dd_mul(h, lo, fn)  # n·Σc²
    sh, sl = _dd_int(s1)
    qh, ql = _two_prod(sh, sh)  # (Σc)²
    ql += 2.0 * sh * sl + sl * sl
    dh, dl = _dd_add(nh, nl, -qh, -ql)
    var = (dh + dl) / (fn * fn)
    return math.sqrt(var) / 100.0 if var > 0.0 else 0.0


@njit(inline="always")
def haversine(lat1, lon1, lat2, lon2):  # pragma: no cover - compiled
    """Great-circle distance in km (NaN where a coordinate is missing)."""
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    if a < 0.0:  # rounding; comparisons are false for NaN, which passes through
        a = 0.0
    elif a > 1.0:
        a = 1.0
    return 2 * EARTH_KM * math.asin(math.sqrt(a))


@njit(cache=True, nogil=True)
def finish(
    program, rows, ts, fl, vknown, agg, ext, dist, vlast, pts, prev, pct, lookback, fout, bout
):  # pragma: no cover - compiled
    """Write the feature values of batch rows ``rows`` (the group's rows, i-th computed from
    the i-th raw outputs) into ``fout``/``bout`` (output row per program line, column per
    batch row)."""
    n = len(rows)
    km = None  # distances from the previous transaction, computed once for both features
    for q in range(len(program)):
        code = program[q, 0]
        k = program[q, 1]
        o = program[q, 3]
        if code == F_IS_NEW:
            w = program[q, 2]
            for i in range(n):
                bout[o, rows[i]] = vknown[k, i] and vlast[i, k] < ts[i] - w
        elif code == F_DISTINCT:
            for i in range(n):
                fout[o, rows[i]] = dist[i, k]
        elif code == F_PCT:
            for i in range(n):
                fout[o, rows[i]] = pct[i, k]
        elif code == F_COUNT:
            for i in range(n):
                fout[o, rows[i]] = agg[i, k, P.A_CNT]
        elif code == F_SUM:
            for i in range(n):
                fout[o, rows[i]] = agg[i, k, P.A_S1] / 100.0
        elif code == F_MEAN:
            for i in range(n):
                c = agg[i, k, P.A_CNT]
                fout[o, rows[i]] = agg[i, k, P.A_S1] / c / 100.0 if c > 0 else np.nan
        elif code == F_STD:
            for i in range(n):
                a = agg[i, k]
                fout[o, rows[i]] = std_cents(
                    a[P.A_CNT], a[P.A_S1], a[P.A_SQ2], a[P.A_SQ1], a[P.A_SQ0]
                )
        elif code == F_MAX:
            for i in range(n):
                fout[o, rows[i]] = ext[i, k, 0]
        elif code == F_MIN:
            for i in range(n):
                fout[o, rows[i]] = ext[i, k, 1]
        elif code == F_FRAUD_COUNT:
            for i in range(n):
                fout[o, rows[i]] = agg[i, k, P.A_FRAUD]
        elif code == F_FRAUD_RATE:
            for i in range(n):
                known = agg[i, k, P.A_KNOWN]
                fout[o, rows[i]] = agg[i, k, P.A_FRAUD] / known if known > 0 else np.nan
        else:  # the previous transaction: seconds, km, km/h
            if code != F_SECONDS and km is None:
                km = np.empty(n)
                for i in range(n):
                    km[i] = haversine(prev[i, 0], prev[i, 1], fl[i, 1], fl[i, 2])
            for i in range(n):
                t0 = pts[i]
                if t0 == P.NO_TS or t0 < ts[i] - lookback:
                    fout[o, rows[i]] = np.nan
                    continue
                seconds = (ts[i] - t0) / 1e9
                if code == F_SECONDS:
                    fout[o, rows[i]] = seconds
                elif code == F_KM:
                    fout[o, rows[i]] = km[i]
                elif seconds > 0.0:
                    fout[o, rows[i]] = km[i] / (seconds / 3600.0)
                else:  # no time between: infinitely fast, or undefined with no distance
                    fout[o, rows[i]] = np.inf if km[i] > 0.0 else np.nan
