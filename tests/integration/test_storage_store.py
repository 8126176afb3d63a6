"""One Store per process: pooled SQLAlchemy reads give what a plain connection gives."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from workbench.storage import queries, shared_store, write_batch
from workbench.storage.store import Store, close_shared

pytestmark = pytest.mark.integration


def test_store_reads_equal_connection_reads_and_reuse_one_pooled_connection(
    conn, db_dsn, make_batch
):
    write_batch(conn, make_batch(300, step_s=20.0), alert_min_band="High")
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    with Store(db_dsn) as store:
        for read in (
            lambda s: queries.recent_transactions(s, limit=50),
            lambda s: queries.card_history(s, "card3"),
            lambda s: queries.alerts(s, status="open"),
            lambda s: queries.bucketed(s, start, end, "10m"),
            lambda s: queries.load_transactions(s, start, end),
            lambda s: queries.dead_letters(s),
        ):
            pd.testing.assert_frame_equal(read(store), read(conn))
        assert queries.counts(store) == queries.counts(conn)
        assert queries.pipeline_totals(store) == queries.pipeline_totals(conn)
        assert queries.time_bounds(store) == queries.time_bounds(conn)
        for _ in range(20):  # dashboard clicks: no new connection each time
            queries.open_alert_count(store)
            queries.load_hits(store, start, end)
        assert store.engine.pool.checkedout() == 0
        backends = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchone()[0]
        assert backends == 1  # one pooled connection served every read


def test_store_frames_have_the_schema_dtypes(db_dsn, conn, make_batch):
    write_batch(conn, make_batch(5))
    with Store(db_dsn) as store:
        frame = queries.recent_transactions(store)
        alerts = queries.alerts(store)
    assert str(frame["ts"].dtype) == "datetime64[ns, UTC]"
    assert frame["amount"].dtype == "float64"
    assert str(frame["is_fraud"].dtype) == "boolean"
    assert frame["tx_id"].dtype == "str"
    assert alerts.empty and str(alerts["id"].dtype) == "int64"


def test_one_shared_store_per_database_and_process(db_dsn):
    try:
        assert shared_store(db_dsn) is shared_store(db_dsn)
    finally:
        close_shared()


def test_writes_through_the_store_use_a_pooled_session(db_dsn, conn, make_batch):
    write_batch(conn, make_batch(100), alert_min_band="High")
    with Store(db_dsn) as store:
        alert_id = int(queries.alerts(store).iloc[0]["id"])
        queries.set_disposition(store, alert_id, "false_positive", "ana")
        assert queries.publish_rule_set(store, "v1", {"a.yaml": "x"}, "ana", "accepted") > 0
        assert queries.active_rule_set(store)["version"] == "v1"
        with store.raw() as raw:
            assert raw.autocommit
        with store.connect() as sa:
            assert not sa.connection.driver_connection.autocommit  # given back as lent
    assert queries.alerts(conn, alert_id=alert_id).iloc[0]["disposition"] == "false_positive"
