"""The workers' health table: partitions and lag of Kafka workers, escaped text."""

from __future__ import annotations

import pandas as pd

from workbench.dashboard.workers import workers_html

NOW = pd.Timestamp("2026-01-01 12:00:00", tz="UTC")


def rows(**over) -> pd.DataFrame:
    base = {
        "worker": ["k1", "sim"],
        "source": ["kafka://b:9092/tx?group=g", "simulator"],
        "last_commit": [NOW - pd.Timedelta(seconds=2), NOW - pd.Timedelta(minutes=3)],
        "partitions": [[0, 2, 4], None],
        "lag": [1234, None],
        "batches": [10, 3],
    }
    return pd.DataFrame(base | over)


def test_kafka_worker_shows_partitions_lag_and_last_batch() -> None:
    text = str(workers_html(rows(), NOW))
    assert "<td>0, 2, 4</td>" in text
    assert ">1,234</td>" in text
    assert "<td>—</td>" in text  # the simulator worker has no partitions
    assert text.count("<tr>") == 3  # header + two workers


def test_hostile_worker_names_are_escaped() -> None:
    text = str(workers_html(rows(worker=["<script>alert(1)</script>", "a&b"]), NOW))
    assert "<script>" not in text
    assert "&lt;script&gt;" in text and "a&amp;b" in text


def test_no_worker() -> None:
    assert "No worker" in str(workers_html(pd.DataFrame(), NOW))
