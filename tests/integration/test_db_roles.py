"""Least privilege: each component's role can do its job and nothing else (real PostgreSQL).

The test server trusts every connection, so these tests check privileges, not passwords
(``test_embedded_auth.py`` checks those on a server that asks for them). The roles are
cluster-wide and shared with every other test database on the server: they are never
dropped here, and making them again must be harmless.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo

from workbench.errors import ConfigError
from workbench.pipeline.database import database
from workbench.pipeline.reload import dry_run, rollback
from workbench.rules import parse_rules
from workbench.rules.files import read_directory
from workbench.settings import Settings
from workbench.storage import alerts, audit, rule_sets, tables
from workbench.storage.connection import connect
from workbench.storage.credentials import PasswordFile
from workbench.storage.roles import PRIVILEGES, ROLES, dsns, ensure
from workbench.storage.writer import BatchWriter

pytestmark = pytest.mark.integration

REFUSED = psycopg.errors.InsufficientPrivilege  # SQLSTATE 42501
RULES = Path(__file__).resolve().parents[2] / "rules"


@pytest.fixture
def roles(db_dsn: str, tmp_path: Path) -> dict[str, str]:
    """``{component: dsn}`` after ``db roles`` on this test's database."""
    return dsns(ensure(db_dsn, PasswordFile(tmp_path / "pgpass")))


def _as(dsn: str) -> psycopg.Connection:
    return connect(dsn)


def _dbname(dsn: str) -> str:
    return str(conninfo.conninfo_to_dict(dsn)["dbname"])


def test_every_table_has_a_decision_for_every_role() -> None:
    # A revision that adds a table (cases, lists) must say here who may do what with it.
    assert {t.name for t in tables.metadata.sorted_tables} <= set(PRIVILEGES)
    assert all(set(row) == set(ROLES) for row in PRIVILEGES.values())


def test_no_role_is_privileged_or_owns_anything(roles, db_dsn) -> None:
    with connect(db_dsn) as conn:
        rows = conn.execute(
            "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication,"
            " rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s) ORDER BY 1",
            (list(ROLES.values()),),
        ).fetchall()
        assert [r[0] for r in rows] == sorted(ROLES.values())
        assert all(r[1:6] == (False,) * 5 and r[6] for r in rows)
        owned = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
            " WHERE r.rolname = ANY(%s)",
            (list(ROLES.values()),),
        ).fetchone()
        assert owned == (0,)
    for dsn in roles.values():
        with _as(dsn) as conn, pytest.raises(REFUSED):
            conn.execute("CREATE TABLE mine (x int)")


def test_dsns_name_the_password_file_and_hold_no_password(roles, tmp_path) -> None:
    for component, dsn in roles.items():
        params = conninfo.conninfo_to_dict(dsn)
        assert params["user"] == ROLES[component] and "password" not in params
        assert params["passfile"] == str(tmp_path / "pgpass")
    text = (tmp_path / "pgpass").read_text()
    assert all(f":{role}:" in text for role in ROLES.values())
    assert (tmp_path / "pgpass").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO transactions (tx_id, ts, card_id, amount) VALUES ('x', now(), 'c', 1)",
        "UPDATE transactions SET amount = 0",
        "DELETE FROM transactions",
        "INSERT INTO rule_sets (version, status) VALUES ('v', 'accepted')",
        "UPDATE rule_sets SET status = 'rejected'",
        "DELETE FROM rule_sets",
        "UPDATE alerts SET risk_score = 0",
        "DELETE FROM alerts",
        "INSERT INTO transaction_ids VALUES ('x', 1)",
        "SELECT workbench_create_partitions(ARRAY[date '2030-01-01'])",
    ],
)
def test_the_dashboard_cannot_write_what_it_only_shows(roles, statement) -> None:
    with _as(roles["dashboard"]) as conn, pytest.raises(REFUSED):
        conn.execute(statement)


def test_the_pipeline_writes_whole_batches_and_the_dashboard_closes_alerts(
    roles, db_dsn, make_batch
) -> None:
    with _as(roles["pipeline"]) as conn:
        writer = BatchWriter(conn)
        # Two new days: the partitions come from the owner's definer function.
        batch = make_batch(200, start="2031-05-01T23:00:00Z", step_s=30.0, dead=[("r", "bad")])
        first = writer.write(batch, alert_dedup_s=600.0)
        assert first.stored == 200 and first.dead == 1 and first.alerts_opened > 0
        again = writer.write(batch, alert_dedup_s=600.0)  # the staging path: nothing new
        assert again.stored == 0 and again.duplicates == 200
        assert rule_sets.record(conn, "v1", {"a.yaml": "x"}, "worker", "rejected", "bad") > 0
        audit.record(conn, actor="worker", action="pipeline.start")
        # Retention, also through the owner's function.
        assert writer.retention(1, now=datetime(2031, 5, 3, tzinfo=UTC)) == [date(2031, 5, 1)]
        with pytest.raises(REFUSED):
            conn.execute("UPDATE alerts SET status = 'closed', closed_at = now()")
        with pytest.raises(REFUSED):
            conn.execute(
                "CREATE TABLE transactions_p20400101 PARTITION OF transactions"
                " FOR VALUES FROM ('2040-01-01Z') TO ('2040-01-02Z')"
            )
    with connect(db_dsn) as owner:
        owners = owner.execute(
            "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'transactions'::regclass"
        ).fetchall()
        assert owners == [(owner.info.user,)]  # the partition belongs to the schema owner
        alert_id = owner.execute("SELECT min(id) FROM alerts").fetchone()[0]
    with _as(roles["dashboard"]) as conn:
        alerts.set_disposition(conn, alert_id, "false_positive", "alice", "checked")
        audit.record(conn, actor="alice", action="alert.dispose", object=f"alert {alert_id}")
        row = conn.execute("SELECT status, assignee FROM alerts WHERE id = %s", (alert_id,))
        assert row.fetchone() == ("closed", "alice")
        with pytest.raises(REFUSED):
            conn.execute("UPDATE alerts SET risk_score = 0 WHERE id = %s", (alert_id,))


def test_the_publisher_publishes_and_rolls_back(roles, db_dsn) -> None:
    texts = read_directory(RULES)
    ruleset = parse_rules(texts)
    with _as(roles["publisher"]) as conn:
        dry_run(ruleset, conn)  # reads recent transactions
        assert rule_sets.publish(conn, ruleset.version, texts, "ann", "accepted") is not None
        assert rule_sets.publish(conn, "v-bad", texts, "ann", "rejected", "no") is not None
        audit.record(conn, actor="ann", action="rules.publish", object=ruleset.version)
        for statement in ("DELETE FROM rule_sets", "INSERT INTO alerts DEFAULT VALUES"):
            with pytest.raises(REFUSED):
                conn.execute(statement)
    assert rollback(roles["publisher"], ruleset.version, author="ann").version == ruleset.version
    with connect(db_dsn) as conn:
        newest = conn.execute("SELECT version, status FROM rule_sets ORDER BY id DESC LIMIT 1")
        assert newest.fetchone() == (ruleset.version, "accepted")


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET actor = 'm'", "DELETE FROM audit_log"])
def test_no_role_rewrites_the_audit_trail(roles, statement) -> None:
    for dsn in roles.values():
        with _as(dsn) as conn:
            audit.record(conn, actor="x", action="login")
            with pytest.raises(REFUSED):
                conn.execute(statement)


def test_making_roles_again_or_at_once_is_harmless(db_dsn, databases, template_db, tmp_path):
    passwords = PasswordFile(tmp_path / "pgpass")
    first = ensure(db_dsn, passwords)
    assert [c.new_password for c in ensure(db_dsn, passwords)] == [False] * len(ROLES)
    assert dsns(ensure(db_dsn, passwords)) == dsns(first)
    # Several databases of one server, several processes' worth of threads at once.
    errors: list[BaseException] = []
    with databases.fresh("wb_roles", template=template_db) as other:

        def run(dsn: str, i: int) -> None:
            try:
                ensure(dsn, PasswordFile(tmp_path / f"pgpass{i}"))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=((db_dsn, other)[i % 2], i)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        there = conninfo.make_conninfo(dsns(first)["dashboard"], dbname=_dbname(other))
        with connect(there) as conn:
            assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (0,)


def test_run_with_a_role_never_migrates(roles, empty_dsn, tmp_path) -> None:
    settings = Settings.load({"WORKBENCH_PIPELINE_DATABASE_URL": roles["pipeline"]})
    with database(settings, component="pipeline") as dsn:  # at head: nothing to do
        assert dsn == roles["pipeline"]
    # A database behind the code: one clear line, no DDL attempted.
    behind = conninfo.make_conninfo(roles["pipeline"], dbname=_dbname(empty_dsn))
    settings = Settings.load({"WORKBENCH_PIPELINE_DATABASE_URL": behind})
    with (
        pytest.raises(ConfigError, match="run `workbench db upgrade` as the owner"),
        database(settings, component="pipeline"),
    ):
        pass
    # Configured as the database URL itself: the migration is refused, with the same line.
    settings = Settings.load({"WORKBENCH_DATABASE_URL": behind})
    with (
        pytest.raises(ConfigError, match="run `workbench db upgrade` as the owner"),
        database(settings),
    ):
        pass
    with connect(empty_dsn) as owner:  # and nothing was created
        assert owner.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone() == (0,)


def test_the_dashboard_reads_everything_it_shows(roles, db_dsn, make_batch) -> None:
    from workbench.storage import Store

    with connect(db_dsn) as owner:
        BatchWriter(owner).write(make_batch(300, start="2031-06-01T00:00:00Z"))
    start, end = datetime(2031, 6, 1, tzinfo=UTC), datetime(2031, 6, 2, tzinfo=UTC)
    with Store(roles["dashboard"]) as store:
        assert len(store.transactions.recent(limit=10)) == 10
        assert len(store.transactions.load(start, end)) == 300
        assert len(store.transactions.recent_batch(limit=50)) == 50
        assert store.transactions.time_bounds() is not None
        assert not store.transactions.bucketed(start, end, "1h").empty
        page = store.alerts.page(status="open")
        assert len(store.alerts.hits(int(page["id"].iloc[0]))) >= 1
        assert store.alerts.open_count() == len(page)
        assert len(store.transactions.card_history(str(page["card_id"].iloc[0]))) > 0
        assert store.stats.pipeline_totals()["stored"] == 300
        assert store.stats.counts()["stored"] == 300
        store.rule_sets.history()
        store.rule_sets.last()
        store.dead_letters.recent()
        store.audit.recent()


def test_a_stray_pgpassword_is_refused_not_sent_for_a_role(roles) -> None:
    settings = Settings.load(
        {"WORKBENCH_PIPELINE_DATABASE_URL": roles["pipeline"], "PGPASSWORD": "owner's"}
    )
    with (
        pytest.raises(ConfigError, match="unset PGPASSWORD"),
        database(settings, component="pipeline"),
    ):
        pass
