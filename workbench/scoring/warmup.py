"""Compile every feature kernel ahead of time by scoring a few simulated batches.

A fresh install has no compiled kernels on disk, so a worker's first batch waits for numba to
compile them (about 10 s on a quiet machine, far more under load). :func:`warm_up` runs small
batches through the code a worker runs (:class:`~workbench.scoring.detector.Detector` on a
rule set: features, rules, evidence), then the eviction a long-running stream makes and the
offline pass of backtests, so that every kernel of
:func:`~workbench.features.kernel_cache.kernels` is compiled and written to the disk cache
(or found there: then it costs well under a second). ``workbench warmup`` calls it; so do
``make install`` and the Docker build.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from workbench.features import compute_features, kernel_cache
from workbench.rules import load_rules
from workbench.scoring.detector import Detector
from workbench.sources.simulator import Simulator

BATCHES = 3
ROWS = 200


@dataclass(frozen=True)
class Warmup:
    """What a warm-up did: signatures loaded from the cache and compiled, in seconds."""

    loaded: int
    compiled: int
    seconds: float
    missed: tuple[str, ...]
    """Kernels no batch called (their first real call will compile)."""
    cache_dirs: tuple[str, ...]


def warm_up(rules_dir: str | Path, *, batches: int = BATCHES, rows: int = ROWS) -> Warmup:
    """Score ``batches`` simulated batches of ``rows`` with the rules of ``rules_dir`` the
    way a worker does, so that every kernel they call is in the disk cache afterwards."""
    started = time.perf_counter()
    before = kernel_cache.cache_counts()
    ruleset = load_rules(rules_dir)
    detector = Detector(ruleset)
    sim = Simulator(seed=1, batch_rows=rows)
    frames = []
    for _ in range(batches):
        batch = sim.next_batch(rows)
        detector.process(batch)
        detector.maintain()
        frames.append(batch.frame)
    # A worker also evicts what left the windows (after its deferred batches): one batch
    # committed without deferral makes that pass run, whatever is due.
    detector.features.compute(sim.next_batch(rows).frame)
    # Backtests and what-if compute a whole history at once.
    compute_features(ruleset.features, pd.concat(frames, ignore_index=True))
    loaded, compiled = kernel_cache.cache_counts()
    missed = tuple(
        f"{k.py_func.__module__}.{k.py_func.__qualname__}"
        for k in kernel_cache.kernels()
        if not k.signatures
    )
    return Warmup(
        loaded=loaded - before[0],
        compiled=compiled - before[1],
        seconds=time.perf_counter() - started,
        missed=missed,
        cache_dirs=tuple(kernel_cache.cache_dirs()),
    )
