"""``workbench warmup``: compile the feature kernels ahead of time, into the disk cache.

A worker's first batch otherwise waits for numba to compile them (seconds; see
:mod:`workbench.features.kernel_cache`). Run by ``make install`` and the Docker build; cheap
when the cache is already filled (the kernels are then only loaded).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.cli.checks import not_a_file
from workbench.settings import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "warmup",
        help="Compile the feature kernels into the disk cache, so that a worker's first "
        "batch does not wait for them.",
        description="Score a few simulated batches with the shipped default rules (and the "
        "rules directory, when it exists), which compiles every numba kernel of the feature "
        "engine and writes it to the cache (the numba_cache_dir setting; default numba's: "
        "next to the sources when writable, else the user's cache directory).",
    )
    p.add_argument(
        "--rules", type=not_a_file, help="Rules directory (default: the rules_dir setting)."
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from workbench.cli.init_cmd import RULES, shipped
    from workbench.scoring.warmup import warm_up

    dirs = [Path(str(shipped(RULES)))]
    mine = Path(args.rules or settings.rules_dir)
    if mine.is_dir() and any(mine.glob("*.yaml")) and mine.resolve() != dirs[0].resolve():
        dirs.append(mine)
    loaded = compiled = 0
    seconds = 0.0
    for rules in dirs:
        done = warm_up(rules)
        loaded, compiled, seconds = (
            loaded + done.loaded,
            compiled + done.compiled,
            seconds + done.seconds,
        )
    print(
        f"warmup: {compiled} kernel signature(s) compiled, {loaded} loaded from the cache, "
        f"in {seconds:.1f} s (rules: {', '.join(map(str, dirs))})"
    )
    for where in done.cache_dirs:
        print(f"cache: {where}")
    for name in done.missed:
        print(f"not compiled (no batch called it): {name}")
    return 0
