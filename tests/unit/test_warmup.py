"""``workbench warmup`` fills numba's disk cache with every feature kernel, so that a new
process loads them instead of compiling; a compilation that happens anyway is logged."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numba
import pytest

from workbench.features import kernel_cache

ROOT = Path(__file__).resolve().parents[2]
COMPILED = "compiled numba kernel"


def warmup(cache: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "NUMBA_"))}
    env |= {"WORKBENCH_NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "workbench", "warmup"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def counts(stdout: str) -> tuple[int, int]:
    found = re.search(r"(\d+) kernel signature\(s\) compiled, (\d+) loaded", stdout)
    assert found, stdout
    return int(found[1]), int(found[2])


def test_every_cached_kernel_of_the_package_is_known() -> None:
    """Each ``@njit(cache=True)`` in the sources is a kernel the warm-up accounts for."""
    declared = sum(
        len(re.findall(r"^@njit\([^)]*cache=True", p.read_text(), re.M))
        for p in (ROOT / "workbench").rglob("*.py")
    )
    names = [k.py_func.__name__ for k in kernel_cache.kernels()]
    assert len(names) == declared == len(set(names))
    assert {"step", "evict", "finish", "hash_strings", "latest"} <= set(names)


@pytest.mark.slow
def test_warmup_compiles_once_and_a_new_process_loads_every_kernel(tmp_path: Path) -> None:
    cache = tmp_path / "numba"
    first = warmup(cache)
    assert first.returncode == 0, first.stderr
    kernels = len(kernel_cache.kernels())
    assert counts(first.stdout) == (kernels, 0)
    assert "not compiled" not in first.stdout
    assert f"cache: {cache}" in first.stdout
    # one log line per kernel compiled (the library code compiled into it has none)
    logged = [line for line in first.stderr.splitlines() if COMPILED in line]
    assert len(logged) == kernels, first.stderr
    assert any(".passes.step " in line and str(cache) in line for line in logged)
    assert list(cache.rglob("*.nbi")), "nothing written to the cache directory"

    second = warmup(cache)
    assert second.returncode == 0, second.stderr
    assert counts(second.stdout) == (0, kernels)
    assert COMPILED not in second.stderr

    # A cache filled from other sources (a helper another file inlines was edited: numba
    # would not notice) is dropped and compiled again.
    (marker,) = cache.rglob(kernel_cache.DIGEST_FILE)
    assert marker.read_text().strip() == kernel_cache.sources_digest()
    marker.write_text("0" * 64 + "\n")
    third = warmup(cache)
    assert third.returncode == 0, third.stderr
    assert counts(third.stdout) == (kernels, 0)
    assert "sources differ" in third.stderr
    assert marker.read_text().strip() == kernel_cache.sources_digest()


def test_use_cache_dir_points_every_kernel_at_the_directory(tmp_path: Path) -> None:
    before, setting = kernel_cache.cache_dirs(), numba.config.CACHE_DIR
    try:
        kernel_cache.use_cache_dir(tmp_path / "here")
        (where,) = kernel_cache.cache_dirs()
        assert where.startswith(str(tmp_path / "here"))
    finally:
        kernel_cache.use_cache_dir(setting)
    assert kernel_cache.cache_dirs() == before
