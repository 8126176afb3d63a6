"""Running counts of one pipeline worker: what came in, what was stored, what was refused."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class PipelineStats:
    """Counts conserve: ``records == stored + duplicates + dead``."""

    records: int = 0
    stored: int = 0
    duplicates: int = 0
    dead: int = 0
    alerts_opened: int = 0
    alerts_attached: int = 0
    batches: int = 0
    eval_errors: int = 0
    db_failures: int = 0
    waiting_for_db: bool = False
    started: float = field(default_factory=time.monotonic)
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=2000))
    _recent: deque = field(default_factory=lambda: deque(maxlen=64))

    def committed(
        self,
        *,
        records: int,
        stored: int,
        duplicates: int,
        dead: int,
        alerts_opened: int,
        alerts_attached: int,
        latency_ms: float,
        eval_errors: int = 0,
    ) -> None:
        self.records += records
        self.stored += stored
        self.duplicates += duplicates
        self.dead += dead
        self.alerts_opened += alerts_opened
        self.alerts_attached += alerts_attached
        self.eval_errors += eval_errors
        self.batches += 1
        self.latencies_ms.append(latency_ms)
        self._recent.append((time.monotonic(), records))

    @property
    def rate(self) -> float:
        """Records per second over the last few seconds of commits."""
        now = time.monotonic()
        recent = [(t, n) for t, n in self._recent if now - t <= 5.0]
        if len(recent) < 2:
            return 0.0
        # The oldest commit only opens the interval: its rows were made before it.
        span = max(now - recent[0][0], 1.0)
        return sum(n for _, n in recent[1:]) / span

    def latency_ms(self, q: float) -> float:
        """Quantile ``q`` of batch latency (creation to commit), in milliseconds."""
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def line(self) -> str:
        """One status line for the terminal."""
        state = "  WAITING FOR DATABASE" if self.waiting_for_db else ""
        return (
            f"{self.rate:8,.0f} tx/s | stored {self.stored:,} | alerts {self.alerts_opened:,}"
            f" | dead letters {self.dead:,} | latency p50 {self.latency_ms(0.5):.0f} ms "
            f"p99 {self.latency_ms(0.99):.0f} ms{state}"
        )
