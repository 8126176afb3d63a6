"""Several workers in one consumer group on a real Kafka-protocol broker, and a late joiner.

Three workers share a 6-partition topic, a fourth joins mid-stream (a cooperative-sticky
rebalance moves partitions to it; each new owner rebuilds its cards' feature state from
stored history). Every transaction is stored once, each card's transactions are stored in
their order, and every transaction was scored with the same card features as one worker
alone gives (its alert evidence records them: the rules read every card feature and fire on
every row).
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.integration.test_kafka_exactly_once import produce, start_worker, stored, wait_for
from tests.kafka_broker import broker_fixture  # noqa: F401 (fixture)
from tests.processes import stop_group

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RULES = Path(__file__).resolve().parent / "kafka_rules"
ROWS = 3000


def scored(dsn: str) -> dict[str, tuple]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT t.tx_id, t.risk_score, e.evidence FROM transactions t"
            " LEFT JOIN alert_evidence e USING (tx_id)"
        ).fetchall()
    return {tx: (score, evidence) for tx, score, evidence in rows}


def test_three_workers_and_a_late_joiner_equal_one_worker(broker, databases, template_db, tmp_path):
    broker.create_topic("tx", 6)
    produce(broker, "", ROWS)
    log = tmp_path / "workers.log"
    with (
        databases.fresh("wb_one", template=template_db) as one_dsn,
        databases.fresh("wb_many", template=template_db) as many_dsn,
    ):
        # A worker reads its partitions at different paces, so their event times drift apart:
        # the allowed lateness must cover that drift (README, Scale-out on Kafka), or rows
        # arriving later than it are scored as late, differently in each grouping.
        late_ok = {"WORKBENCH_ALLOWED_LATENESS": "30d"}
        alone = start_worker(broker, one_dsn, "alone", log, group="alone", rules=RULES, **late_ok)
        try:
            wait_for(lambda: stored(one_dsn) >= ROWS, "the single worker's run", [alone])
        finally:
            stop_group(alone, 20)

        # Paced (per worker) so that the stream is still flowing when the fourth member joins.
        paced = {"group": "many", "rules": RULES, "rate": "40", "batch": 40, **late_ok}
        workers = [start_worker(broker, many_dsn, f"w{i}", log, **paced) for i in (1, 2, 3)]
        late_log = tmp_path / "late.log"
        try:
            wait_for(lambda: stored(many_dsn) >= ROWS // 10, "a tenth stored", workers)
            workers.append(start_worker(broker, many_dsn, "late", late_log, **paced))
            wait_for(lambda: _assigned(late_log), "partitions assigned to the late joiner", workers)
            wait_for(lambda: stored(many_dsn) >= ROWS, "every transaction stored", workers)
        finally:
            for w in workers:
                stop_group(w, 20)

        with psycopg.connect(many_dsn) as conn:
            total, ids = conn.execute(
                "SELECT count(*), count(DISTINCT tx_id) FROM transactions"
            ).fetchone()
            by_worker = dict(
                conn.execute("SELECT worker, sum(stored) FROM pipeline_stats GROUP BY worker")
            )
            # A card's later transaction never committed before an earlier one.
            out_of_order = conn.execute(
                "SELECT count(*) FROM (SELECT stored_at, lag(stored_at) OVER"
                " (PARTITION BY card_id ORDER BY ts, tx_id) AS before FROM transactions) s"
                " WHERE before > stored_at"
            ).fetchone()[0]
        assert total == ids == ROWS
        assert sum(by_worker.values()) == ROWS
        assert by_worker.get("late", 0) > 0, by_worker  # the joiner took partitions over
        assert out_of_order == 0
        one, many = scored(one_dsn), scored(many_dsn)
    assert one.keys() == many.keys()
    assert all(evidence is not None for _, evidence in one.values())
    differ = [tx for tx in one if one[tx] != many[tx]]
    assert not differ, f"{len(differ)} transactions scored differently, e.g. {differ[:3]}"
    assert "feature state rebuilt" in late_log.read_text()


def _assigned(log: Path) -> bool:
    """The worker logging to ``log`` has been assigned at least one partition."""
    text = log.read_text() if log.exists() else ""
    return any(
        line.partition("kafka: assigned [")[2] not in ("", "]") for line in text.splitlines()
    )
