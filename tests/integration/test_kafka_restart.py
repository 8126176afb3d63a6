"""A broker restart mid-stream: the workers wait and go on; what the broker lost is reported.

The test broker keeps its log in memory only: a restart loses the topic, its messages and the
group's offsets. Workers keep running while it is away, rejoin when it is back (the topic made
again), store everything sent after the restart once, and log, per partition they had
committed, that the log starts again below their offset: the messages not consumed before
the restart are lost, and said to be.
"""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from tests.integration.test_kafka_exactly_once import ROOT, produce, start_worker, stored, wait_for
from tests.kafka_broker import broker_fixture, worker_env  # noqa: F401 (fixture)
from tests.processes import stop_group

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BEFORE, AFTER = 3000, 1000


def count(dsn: str, prefix: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT count(*) FROM transactions WHERE tx_id LIKE %s", (prefix + "%",)
        ).fetchone()[0]


def test_broker_restart_mid_stream(broker, db_dsn, tmp_path):
    broker.create_topic("tx", 6)
    produce(broker, db_dsn, BEFORE)  # seed 7: tx ids sim7-...
    logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
    paced = {"rate": "100", "batch": 50, "options": {"reconnect.backoff.max.ms": "500"}}
    workers = [start_worker(broker, db_dsn, f"w{i}", log, **paced) for i, log in enumerate(logs, 1)]
    try:
        wait_for(lambda: stored(db_dsn) >= BEFORE // 5, "a fifth stored", workers)
        broker.restart()  # memory-only: topic, messages and offsets are gone
        kept = stored(db_dsn)
        broker.create_topic("tx", 6)
        env = worker_env(db_dsn, ROOT / "rules", PYTHONPATH=str(ROOT), WORKBENCH_SEED="8")
        sent = subprocess.run(
            [sys.executable, "-m", "workbench", "produce", "--from", "simulator", "--rows",
             str(AFTER), "--to", broker.url("tx")],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        wait_for(
            lambda: count(db_dsn, "sim8-") >= AFTER, "the rows sent after the restart", workers
        )
        assert all(w.poll() is None for w in workers)  # they waited; none gave up
    finally:
        for w in workers:
            stop_group(w, 20)

    with psycopg.connect(db_dsn) as conn:
        total, ids = conn.execute(
            "SELECT count(*), count(DISTINCT tx_id) FROM transactions"
        ).fetchone()
    before = count(db_dsn, "sim7-")
    assert total == ids  # nothing stored twice
    assert count(db_dsn, "sim8-") == AFTER
    assert kept <= before < BEFORE  # what was not consumed before the restart is gone
    reports = "".join(log.read_text() for log in logs)
    assert "the broker lost messages" in reports
