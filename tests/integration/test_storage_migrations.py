"""Connection handling and versioned migrations, against a real PostgreSQL."""

from __future__ import annotations

import threading
from datetime import date

import psycopg
import pytest

from workbench.errors import StorageError
from workbench.schema import NAMES
from workbench.storage import connection, migrations
from workbench.storage.connection import connect, resolve_dsn


def test_resolve_dsn_prefers_explicit_url_then_workbench_url_then_libpq_variables():
    env = {"WORKBENCH_DATABASE_URL": "postgresql://a@h1/db1", "PGHOST": "h2", "PGUSER": "b"}
    assert resolve_dsn(env, url="postgresql://x@h0/db0") == "postgresql://x@h0/db0"
    assert resolve_dsn(env) == "postgresql://a@h1/db1"
    dsn = resolve_dsn({"PGHOST": "h2", "PGPORT": "6543", "PGDATABASE": "fraud", "HOME": "/"})
    assert dsn is not None
    assert psycopg.conninfo.conninfo_to_dict(dsn) == {
        "host": "h2",
        "port": "6543",
        "dbname": "fraud",
    }
    assert resolve_dsn({"HOME": "/root"}) is None


def test_describe_never_shows_the_password():
    where = connection.describe("postgresql://u:secret@db.example:6000/fraud")
    assert where == "db.example:6000/fraud"


@pytest.mark.integration
def test_unreachable_server_is_one_readable_line(pg_server):
    with pytest.raises(StorageError) as info:
        connect("postgresql://postgres@127.0.0.1:1/postgres", connect_timeout=2)
    message = str(info.value)
    assert message == "cannot connect to PostgreSQL at 127.0.0.1:1/postgres: connection refused"
    assert "\n" not in message


@pytest.mark.integration
def test_missing_database_is_one_readable_line(pg_server):
    dsn = psycopg.conninfo.make_conninfo(pg_server, dbname="wb_no_such_database")
    with pytest.raises(StorageError, match=r'database "wb_no_such_database" does not exist$'):
        connect(dsn)


@pytest.mark.integration
def test_upgrade_applies_each_migration_once_in_order(empty_dsn):
    with connect(empty_dsn) as conn:
        before = migrations.status(conn)
        assert [s.version for s in before] == [m.version for m in migrations.MIGRATIONS]
        assert all(s.applied_at is None for s in before)

        assert migrations.upgrade(conn) == [m.version for m in migrations.MIGRATIONS]
        assert migrations.upgrade(conn) == []  # idempotent

        after = migrations.status(conn)
        assert all(s.applied_at is not None for s in after)
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY 1").fetchall()
        assert rows == [(m.version, m.name) for m in migrations.MIGRATIONS]


@pytest.mark.integration
def test_upgrade_resumes_after_a_partial_history(empty_dsn):
    with connect(empty_dsn) as conn:
        migrations.upgrade(conn)
        # Pretend the last migration never ran: its objects and record vanish.
        conn.execute("DROP VIEW pipeline_throughput; DROP TABLE dead_letters, pipeline_stats")
        conn.execute("DELETE FROM schema_migrations WHERE version = 4")
        assert migrations.upgrade(conn) == [4]
        assert conn.execute("SELECT to_regclass('dead_letters')").fetchone()[0] is not None


@pytest.mark.integration
def test_concurrent_upgrades_do_not_race(empty_dsn):
    errors: list[BaseException] = []
    applied: list[list[int]] = []

    def run() -> None:
        try:
            with connect(empty_dsn) as conn:
                applied.append(migrations.upgrade(conn))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(v for versions in applied for v in versions) == [
        m.version for m in migrations.MIGRATIONS
    ]


@pytest.mark.integration
def test_non_autocommit_connection_is_left_idle(empty_dsn):
    with connect(empty_dsn, autocommit=False) as conn:
        migrations.upgrade(conn)
        migrations.status(conn)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


@pytest.mark.integration
def test_upgrade_refuses_a_connection_inside_a_transaction(empty_dsn):
    with connect(empty_dsn, autocommit=False) as conn:
        conn.execute("SELECT 1")
        with pytest.raises(StorageError, match="inside a transaction"):
            migrations.upgrade(conn)


@pytest.mark.integration
def test_reset_drops_everything_of_ours(conn):
    migrations.reset(conn)
    left = conn.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
    ).fetchall()
    assert left == []
    assert migrations.upgrade(conn) == [m.version for m in migrations.MIGRATIONS]


@pytest.mark.integration
def test_transactions_table_has_every_schema_column(conn):
    columns = {
        name: kind
        for name, kind in conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_name = 'transactions'"
        ).fetchall()
    }
    for name in NAMES:
        assert name in columns, f"schema column {name} missing from transactions"
    assert columns["ts"] == "timestamp with time zone"
    assert columns["is_fraud"] == "boolean"
    assert columns["rule_hits"] == "jsonb"
    partitioned = conn.execute(
        "SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'transactions'::regclass"
    ).fetchone()
    assert partitioned == ("r",)


@pytest.mark.integration
def test_migration_6_upgrades_a_wave_1_database_with_data(empty_dsn, monkeypatch, make_batch):
    from workbench.storage import partitions, queries
    from workbench.storage.writer import write_batch

    wave_1 = tuple(m for m in migrations.MIGRATIONS if m.version <= 4)
    with connect(empty_dsn) as conn:
        monkeypatch.setattr(migrations, "MIGRATIONS", wave_1)
        assert migrations.upgrade(conn) == [1, 2, 3, 4]
        monkeypatch.undo()
        partitions.ensure_days(conn, [date(2026, 1, 1), date(2026, 1, 2)])
        # Wave 1 keyed rows on (ts, tx_id): the same tx_id twice, and dead letters twice.
        conn.execute(
            "INSERT INTO transactions (tx_id, ts, card_id, amount) VALUES"
            " ('a', '2026-01-02T00:00:00Z', 'c1', 1), ('a', '2026-01-01T00:00:00Z', 'c1', 2),"
            " ('b', '2026-01-01T05:00:00Z', 'c2', 3), ('c', '2026-01-02T05:00:00Z', 'c2', 4)"
        )
        conn.execute(
            "INSERT INTO dead_letters (source, raw, reason) VALUES"
            " ('replay:x', '{\"a\": 1}', 'bad'), ('replay:x', '{\"a\": 1}', 'bad'),"
            " ('replay:x', '{\"a\": 1}', 'worse'), (NULL, 'r\\aw é', 'bad')"
        )

        assert migrations.upgrade(conn) == [
            m.version for m in migrations.MIGRATIONS if m.version > 4
        ]

        ids = dict(
            conn.execute(
                "SELECT tx_id, (to_timestamp(ts_us / 1e6) AT TIME ZONE 'UTC')::date::text"
                " FROM transaction_ids"
            ).fetchall()
        )
        assert ids == {"a": "2026-01-01", "b": "2026-01-01", "c": "2026-01-02"}
        rows = conn.execute("SELECT tx_id, amount FROM transactions ORDER BY tx_id").fetchall()
        assert rows == [("a", 2.0), ("b", 3.0), ("c", 4.0)]  # the oldest 'a' is kept
        dead = conn.execute("SELECT id, reason FROM dead_letters ORDER BY id").fetchall()
        assert dead == [(1, "bad"), (3, "worse"), (4, "bad")]
        # The fingerprint is the sha256 of the UTF-8 text, backslashes and all.
        same = conn.execute(
            "SELECT fingerprint = sha256(convert_to(chr(31) || raw || chr(31) || reason,"
            " 'UTF8')) FROM dead_letters WHERE id = 4"
        ).fetchone()
        assert same == (True,)

        # The upgraded database is written to like a new one.
        batch = make_batch(3, start="2026-01-02T00:00:00Z", prefix="new")
        batch.frame.loc[0, "tx_id"] = "a"  # stored already, with another ts
        result = write_batch(conn, batch, alert_min_band="none")
        assert (result.stored, result.duplicates) == (2, 1)
        assert queries.counts(conn)["stored"] == 5
