from __future__ import annotations

from workbench.pipeline.stats import PipelineStats


def test_rate_counts_the_rows_committed_within_the_interval(monkeypatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("workbench.pipeline.stats.time.monotonic", lambda: clock[0])
    stats = PipelineStats()
    for _ in range(5):  # 1000 rows committed every second
        stats.committed(
            records=1000,
            stored=1000,
            duplicates=0,
            dead=0,
            alerts_opened=0,
            alerts_attached=0,
            latency_ms=10.0,
        )
        clock[0] += 1.0
    clock[0] -= 1.0
    assert stats.rate == 1000.0
    assert stats.records == stats.stored == 5000


def test_quantiles_of_latency() -> None:
    stats = PipelineStats()
    for ms in range(1, 101):
        stats.committed(
            records=1,
            stored=1,
            duplicates=0,
            dead=0,
            alerts_opened=0,
            alerts_attached=0,
            latency_ms=float(ms),
        )
    assert stats.latency_ms(0.5) == 51.0
    assert stats.latency_ms(0.99) == 100.0
