"""Where the compiled feature kernels live on disk, and a log line whenever one is compiled.

The feature engine's hot loops are numba kernels (``@njit(cache=True)`` in :mod:`.passes`,
:mod:`.outputs`, :mod:`.since` and :mod:`.compiled`). numba compiles a kernel for each
argument-type signature at its first call: seconds per kernel, paid by the first batch of a
worker. With ``cache=True`` the machine code is written to disk and the next process loads it
in milliseconds, so ``workbench warmup`` (run by ``make install`` and the Docker build) calls
every kernel once to fill the cache before any worker starts.

Where the cache is: numba's choice by default (``NUMBA_CACHE_DIR`` when set, else
``__pycache__`` next to the sources when that is writable, else the user's cache directory,
e.g. ``~/.cache/numba``). The ``numba_cache_dir`` setting names a directory instead;
:func:`use_cache_dir` applies it at any time before the first call (numba picks a kernel's
cache location when it is decorated, at import, so the setting cannot wait for an
environment variable read before the import). numba needs the directory writable even to
load from it (it checks with a temporary file), so a read-only one is skipped like an
unwritable ``__pycache__``.

The other ``@njit`` functions of the package are ``inline="always"`` helpers and
``@intrinsic``\\s: they are compiled into the kernels that call them and cached with them,
never on their own.

numba's cache knows only a kernel's own source file (its time stamp and size): an edit of a
helper in another file that the kernel inlines (``quantiles.py`` into ``passes.step``) would
leave it loading stale machine code. :func:`ensure_fresh` (called once per process by the
first :class:`~workbench.features.FeatureEngine`) guards that: each cache directory holds a
digest of every source file of the package's numba code (``workbench-kernels.sha256``);
when it differs, the kernels' cache entries there are dropped (they are compiled again, and
logged) and the new digest is written.

How a compilation is seen: :class:`CompileLog` listens to numba's ``numba:compile`` event,
which numba fires only when it really compiles (a signature loaded from the disk cache fires
none), and logs one line per kernel and signature with the time it took.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import threading
import time
from pathlib import Path

import numba
from numba.core import event
from numba.core.caching import NullCache
from numba.core.dispatcher import Dispatcher

log = logging.getLogger(__name__)

KERNEL_MODULES = (
    "workbench.features.compiled",
    "workbench.features.passes",
    "workbench.features.outputs",
    "workbench.features.since",
)
"""The modules that hold the package's numba kernels."""


def kernels() -> list[Dispatcher]:
    """Every disk-cached numba kernel of the package (a dispatcher with ``cache=True``)."""
    found = []
    for name in KERNEL_MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                isinstance(value, Dispatcher)
                and value.py_func.__module__ == name
                and not isinstance(value._cache, NullCache)
            ):
                found.append(value)
    return found


def use_cache_dir(path: str | Path) -> None:
    """Cache (and look up) every kernel under ``path`` from now on; ``""`` keeps numba's
    choice. Call it before a kernel's first call: a signature already compiled or loaded in
    this process stays as it is."""
    path = str(path)
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
    numba.config.CACHE_DIR = path
    for kernel in kernels():
        kernel.enable_caching()  # a new locator, chosen with the new CACHE_DIR
    global _checked
    _checked = False


def cache_dirs() -> list[str]:
    """The directories the kernels are cached in (one per source directory)."""
    return sorted({kernel.stats.cache_path for kernel in kernels()})


def cache_counts() -> tuple[int, int]:
    """Signatures of the package's kernels (loaded from the disk cache, compiled) so far in
    this process."""
    hits = misses = 0
    for kernel in kernels():
        stats = kernel.stats
        hits += sum(stats.cache_hits.values())
        misses += sum(stats.cache_misses.values())
    return hits, misses


DIGEST_FILE = "workbench-kernels.sha256"


def sources_digest() -> str:
    """SHA-256 of every source file of the package's numba code (the kernels and what they
    inline), in name order."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for path in sorted(here.glob("*.py")):
        text = path.read_bytes()
        if b"@njit" in text or b"@intrinsic" in text:
            digest.update(path.name.encode() + b"\0" + text + b"\0")
    return digest.hexdigest()


_checked = False


def ensure_fresh() -> list[str]:
    """Drop the kernels' cache entries filled from other sources than these (see the module
    docstring); the cache directories where that happened. Once per process (again after
    :func:`use_cache_dir`)."""
    global _checked
    if _checked:
        return []
    _checked = True
    digest = sources_digest()
    by_dir: dict[str, list[Dispatcher]] = {}
    for kernel in kernels():
        by_dir.setdefault(kernel.stats.cache_path, []).append(kernel)
    dropped = []
    for where, group in by_dir.items():
        marker = Path(where) / DIGEST_FILE
        try:
            known = marker.read_text().strip()
        except OSError:
            known = None
        if known == digest:
            continue
        if any(Path(where).glob("*.nbi")):  # entries of unknown or other sources
            for kernel in group:
                kernel._cache.flush()  # empties its index: the next call compiles
            dropped.append(where)
            log.info(
                "feature kernel sources differ from those the cache in %s was filled from: "
                "dropped its kernels, they compile again at first use",
                where,
            )
        try:
            marker.write_text(digest + "\n")
        except OSError:
            log.debug("cannot write %s", marker, exc_info=True)
    return dropped


class CompileLog(event.Listener):
    """Logs each numba compilation started outside another one: a kernel and signature not
    found in the disk cache. (The library functions numba compiles into that kernel meanwhile
    fire events too; they are part of the kernel's line, not lines of their own.)"""

    def __init__(self, logger: logging.Logger = log) -> None:
        self.logger = logger
        self._local = threading.local()

    def on_start(self, ev: event.Event) -> None:
        started = getattr(self._local, "started", None)
        if started is None:
            started = self._local.started = []
        started.append(time.perf_counter())

    def on_end(self, ev: event.Event) -> None:
        started = getattr(self._local, "started", None)
        if not started:
            return
        began = started.pop()
        if started:  # nested in the compilation of a kernel
            return
        dispatcher = ev.data["dispatcher"]
        func = dispatcher.py_func
        cache = dispatcher.stats.cache_path
        where = f"not in the disk cache {cache}" if cache else "not cached"
        self.logger.info(
            "compiled numba kernel %s.%s (first use, %s) in %.2f s; `workbench warmup` "
            "compiles ahead of time",
            func.__module__,
            func.__qualname__,
            where,
            time.perf_counter() - began,
        )


_installed: CompileLog | None = None


def log_compilations() -> CompileLog:
    """Log every numba compilation in this process from now on (once, however often
    called)."""
    global _installed
    if _installed is None:
        _installed = CompileLog()
        event.register("numba:compile", _installed)
    return _installed
