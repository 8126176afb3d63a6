"""One line per headline figure, so ``make bench`` can gather every benchmark into one table.

A benchmark prints its own readable report as before and, for each figure worth a row in the
summary table, calls :func:`figure`. That prints one line starting with :data:`PREFIX`
followed by JSON::

    BENCH-FIGURE {"bench": "bench_pipeline", "name": "worker, max rate", "value": 61234.0,
                  "unit": "rows/s", "anchor": "raw COPY", "ratio": 0.61}

``anchor`` and ``ratio`` say what the figure is compared with in the same run (a raw COPY,
hand-written numpy, per-row Python, a target); both are optional. ``benchmarks/run_all.py``
reads these lines from each script's output; nothing else parses the readable report.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

PREFIX = "BENCH-FIGURE "


def figure(
    name: str,
    value: float,
    unit: str,
    *,
    anchor: str | None = None,
    ratio: float | None = None,
    bench: str | None = None,
) -> None:
    """Print one machine-readable figure line (see the module docstring)."""
    record = {
        "bench": bench or Path(sys.argv[0]).stem,
        "name": name,
        "value": _finite(value),
        "unit": unit,
        "anchor": anchor,
        "ratio": _finite(ratio),
    }
    print(PREFIX + json.dumps(record), flush=True)


def parse(line: str) -> dict | None:
    """The figure on ``line``, or None for any other line."""
    if not line.startswith(PREFIX):
        return None
    try:
        record = json.loads(line[len(PREFIX) :])
    except ValueError:
        return None
    return record if isinstance(record, dict) and "name" in record else None


def _finite(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
