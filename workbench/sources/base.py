"""What every transaction source gives the pipeline, and the registry that names sources.

A source hands out :class:`SourceBatch` objects: a typed batch (see :mod:`workbench.schema`),
the dead letters found while reading it, and an opaque ``position``. The pipeline calls
:meth:`Source.ack` with that position only after the batch is committed, so a source that can
replay (a file, later a Kafka topic) resumes from the last acknowledged position after a crash.

Sources never sleep: :func:`pace` says how long the caller should wait to hold a target rate,
so a synchronous CLI loop and an asyncio pipeline can both use them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from workbench.errors import SourceError


@dataclass
class SourceBatch:
    """One batch read from a source."""

    frame: pd.DataFrame
    dead: pd.DataFrame
    position: Any
    created_at: float = field(default_factory=time.time)
    """Wall-clock time (epoch s) the batch was read or generated, for latency figures."""

    @property
    def records(self) -> int:
        """Records read: stored rows plus dead letters (counts must conserve)."""
        return len(self.frame) + len(self.dead)


class Source(Protocol):
    """The protocol every source follows."""

    name: str
    label: str
    """What the stored rows, dead letters and pipeline statistics name as their origin: the
    source's name, plus what tells two inputs of the same source apart (a replayed file's
    path). A re-run of the same input has the same label, so its dead letters are recognised
    as stored already."""

    def next_batch(self) -> SourceBatch | None:
        """The next batch, or ``None`` when the source is exhausted."""

    def ack(self, position: Any) -> None:
        """Everything up to ``position`` is committed and need not be read again."""

    def close(self) -> None:
        """Release files or connections."""


_REGISTRY: dict[str, Callable[..., Source]] = {}


def register_source(name: str) -> Callable[[Callable[..., Source]], Callable[..., Source]]:
    """Class decorator: make a source available by name (``--source NAME``)."""

    def add(factory: Callable[..., Source]) -> Callable[..., Source]:
        _REGISTRY[name] = factory
        return factory

    return add


def create_source(name: str, **options: Any) -> Source:
    """Build the source registered under ``name``; a URL (``kafka://...``) is the source
    registered under its scheme, given the URL as ``url``."""
    _load_builtins()
    if "://" in name:
        options = {"url": name, **options}
        name = name.split("://", 1)[0]
    try:
        factory = _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise SourceError(f"unknown source '{name}' (known: {known})") from None
    return factory(**options)


def source_names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def _load_builtins() -> None:
    # Importing the built-in modules registers them, the same way an add-on would.
    from workbench.sources import kafka, replay, simulator  # noqa: F401


class Pacer:
    """Holds a target rate: ``wait = pacer.delay(rows)`` after each batch, then sleep ``wait``.

    ``rate=None`` means as fast as possible (delay always 0).
    """

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._start: float | None = None
        self._rows = 0

    def delay(self, rows: int) -> float:
        now = self._clock()
        if self._start is None:
            self._start = now
        self._rows += rows
        if not self.rate:
            return 0.0
        due = self._start + self._rows / self.rate
        if due < now - 1.0:  # fell behind by more than a second: don't try to catch up in a burst
            self._start, self._rows = now, 0
            return 0.0
        return max(0.0, due - now)
