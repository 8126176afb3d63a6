"""Features that span partitions follow the rows other workers commit (pipeline/tail.py).

Two workers share a 2-partition topic. A terminal is used by a card of each worker's
partition: once worker B has committed its card's transactions at the terminal, worker A's
later transaction there is scored with a terminal count that includes them. Both workers
rebuilt their (empty) state before B's rows existed, so only the tail can bring them to A;
with the tail switched off (``WB_TEST_NO_TAIL``) the same transaction counts none of them,
which the second case checks, so the first can fail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from tests.integration.test_kafka_exactly_once import ROOT, start_worker, stored, wait_for
from tests.kafka_broker import Broker, broker_fixture, worker_env  # noqa: F401 (fixture)
from tests.processes import stop_group
from workbench.sources.partitioner import partition_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RULES = """\
bands: {medium: 40, high: 70}
alert: {min_band: high, dedup: 10m}
features:
  terminal_tx_1d: {agg: count, by: terminal_id, window: 1d}
rules:
  - id: terminal_seen
    description: Reads the terminal's count, fires on every transaction
    when: terminal_tx_1d >= 0
    score: 80
    examples:
      match: [{terminal_tx_1d: 0}]
"""
T0 = pd.Timestamp("2026-03-02 12:00", tz="UTC")
B_ROWS = 3


def card_in(partition: int, prefix: str) -> str:
    """A card id whose transactions go to ``partition`` (of two)."""
    names = [f"{prefix}-{i}" for i in range(64)]
    return next(n for n, p in zip(names, partition_of(names, 2), strict=True) if p == partition)


def send(b: Broker, dsn: str, rules: Path, rows: pd.DataFrame, path: Path) -> None:
    rows.to_csv(path, index=False)
    env = worker_env(dsn, rules, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "produce", "--from", "replay", str(path),
         "--to", b.url("tx")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def has(log: Path, text: str) -> bool:
    return log.exists() and text in log.read_text()


def running(workers, logs: list[Path]):
    """A ``wait_for`` condition wrapper failing at once when a worker has ended."""

    def check(condition):
        def holds() -> bool:
            if any(w.poll() is not None for w in workers):
                tails = "\n".join(log.read_text()[-2000:] for log in logs if log.exists())
                pytest.fail(f"a worker ended:\n{tails}")
            return condition()

        return holds

    return check


def owned(log: Path) -> int:
    """The partition the worker logging to ``log`` was assigned last (one of two)."""
    line = [x for x in log.read_text().splitlines() if "kafka: assigned [" in x][-1]
    return int(line.rpartition("[")[2].rstrip("]").split(",")[0])


@pytest.mark.parametrize("tail", [True, False], ids=["tail", "no-tail"])
def test_a_terminal_feature_counts_the_other_workers_rows(broker, db_dsn, tmp_path, tail):
    broker.create_topic("tx", 2)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "terminal.yaml").write_text(RULES)
    env = {} if tail else {"WB_TEST_NO_TAIL": "1"}
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = start_worker(broker, db_dsn, "a", log_a, rules=rules, batch=10, **env)
    workers = [a]
    alive = running(workers, [log_a, log_b])
    try:
        wait_for(alive(lambda: has(log_a, "feature state rebuilt")), "a's state rebuilt")
        workers.append(start_worker(broker, db_dsn, "b", log_b, rules=rules, batch=10, **env))
        wait_for(alive(lambda: has(log_b, "feature state rebuilt")), "b's state rebuilt")
        wait_for(alive(lambda: has(log_a, "kafka: revoked [")), "a partition moved to b")
        card_b, card_a = card_in(owned(log_b), "b"), card_in(1 - owned(log_b), "a")

        at_b = pd.DataFrame({
            "tx_id": [f"b{i}" for i in range(B_ROWS)],
            "ts": [T0 + pd.Timedelta(minutes=i) for i in range(B_ROWS)],
            "card_id": card_b, "terminal_id": "T-shared", "amount": 10.0,
        })  # fmt: skip
        send(broker, db_dsn, rules, at_b, tmp_path / "b.csv")
        wait_for(alive(lambda: stored(db_dsn) >= B_ROWS), "b's rows committed")

        at_a = pd.DataFrame({
            "tx_id": ["a0"], "ts": [T0 + pd.Timedelta(minutes=10)],
            "card_id": card_a, "terminal_id": "T-shared", "amount": 10.0,
        })  # fmt: skip
        send(broker, db_dsn, rules, at_a, tmp_path / "a.csv")
        wait_for(alive(lambda: stored(db_dsn) >= B_ROWS + 1), "a's row committed")
    finally:
        for w in workers:
            stop_group(w, 20)

    with psycopg.connect(db_dsn) as conn:
        by = dict(conn.execute("SELECT worker, sum(stored) FROM pipeline_stats GROUP BY worker"))
        seen = conn.execute(
            "SELECT (evidence -> 'terminal_seen' ->> 'terminal_tx_1d')::float"
            " FROM alert_evidence WHERE tx_id = 'a0'"
        ).fetchone()[0]
    assert by == {"a": 1, "b": B_ROWS}  # each card scored by its partition's owner
    assert seen == (B_ROWS if tail else 0)
