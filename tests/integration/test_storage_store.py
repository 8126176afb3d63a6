"""One Store per process: pooled SQLAlchemy reads give what a plain connection gives."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from workbench import storage
from workbench.storage import shared_store, write_batch
from workbench.storage.store import Store, close_shared

pytestmark = pytest.mark.integration


def test_store_reads_equal_connection_reads_and_reuse_one_pooled_connection(
    conn, db_dsn, make_batch
):
    write_batch(conn, make_batch(300, step_s=20.0), alert_min_band="High")
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    # (noun, function, arguments): store.<noun>.<function>(*args) against the module function
    # on a plain connection and on a SQLAlchemy connection of the pool.
    frames = [
        ("transactions", "recent", (50,)),
        ("transactions", "card_history", ("card3",)),
        ("alerts", "page", ("open",)),
        ("alerts", "hits", (1,)),
        ("transactions", "bucketed", (start, end, "10m")),
        ("transactions", "load", (start, end)),
        ("transactions", "recent_batch", (40,)),
        ("dead_letters", "recent", ()),
    ]
    values = [
        ("stats", "counts", ()),
        ("stats", "pipeline_totals", ()),
        ("transactions", "time_bounds", ()),
        ("alerts", "open_count", ()),
        ("rule_sets", "last", ()),
    ]
    with Store(db_dsn) as store, store.connect() as sa:
        for noun, name, args in frames + values:
            via_store = getattr(getattr(store, noun), name)(*args)
            function = getattr(getattr(storage, noun), name)
            for expected in (function(conn, *args), function(sa, *args)):
                if isinstance(expected, pd.DataFrame):
                    pd.testing.assert_frame_equal(via_store, expected)
                else:
                    assert via_store == expected, (noun, name)
        sa.rollback()
    with Store(db_dsn) as store:
        for _ in range(20):  # dashboard clicks: no new connection each time
            store.alerts.open_count()
            store.transactions.load_hits(start, end)
        assert store.engine.pool.checkedout() == 0
        backends = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchone()[0]
        assert backends == 1  # one pooled connection served every read


def test_each_noun_of_the_store_binds_exactly_its_module_functions(db_dsn):
    import inspect

    with Store(db_dsn) as store:
        for noun in ("transactions", "alerts", "rule_sets", "dead_letters", "stats"):
            module = getattr(storage, noun)
            public = {
                name
                for name, value in vars(module).items()
                if inspect.isfunction(value)
                and value.__module__ == module.__name__
                and not name.startswith("_")
            }
            assert set(module.__all__) == public, noun
            assert dir(getattr(store, noun)) == sorted(public)
        with pytest.raises(AttributeError, match="no function 'nope'"):
            store.alerts.nope  # noqa: B018


def test_store_frames_have_the_schema_dtypes(db_dsn, conn, make_batch):
    write_batch(conn, make_batch(5))
    with Store(db_dsn) as store:
        frame = store.transactions.recent()
        alerts = store.alerts.page()
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
        alert_id = int(store.alerts.page().iloc[0]["id"])
        store.alerts.set_disposition(alert_id, "false_positive", "ana")
        assert store.rule_sets.publish("v1", {"a.yaml": "x"}, "ana", "accepted") > 0
        assert store.rule_sets.active()["version"] == "v1"
        assert store.rule_sets.files("v1") == {"a.yaml": "x"}
        with store.raw() as raw:
            assert raw.autocommit
        with store.connect() as sa:
            assert not sa.connection.driver_connection.autocommit  # given back as lent
    assert storage.alerts.page(conn, alert_id=alert_id).iloc[0]["disposition"] == "false_positive"
