"""The audit trail: rows appended and read back; UPDATE, DELETE and TRUNCATE refused."""

from __future__ import annotations

import psycopg
import pytest

from workbench.storage import Store


def test_rows_are_appended_and_read_newest_first(db_dsn):
    with Store(db_dsn) as store:
        first = store.audit.record(
            actor="alice",
            role="analyst",
            action="alert.dispose",
            object="alert 7",
            after={"disposition": "false_positive"},
        )
        second = store.audit.record(
            actor="bob",
            role="viewer",
            action="rules.publish",
            outcome="refused",
            detail="needs admin",
        )
        rows = store.audit.recent()
        assert list(rows["id"]) == [second, first]
        assert rows.iloc[1]["after"] == {"disposition": "false_positive"}
        refused = store.audit.recent(outcome="refused")
        assert list(refused["actor"]) == ["bob"]
        assert list(store.audit.recent(action="rules.")["id"]) == [second]


def test_hostile_values_are_bounded_not_refused(db_dsn):
    with Store(db_dsn) as store:
        store.audit.record(
            actor="x" * 10_000, action="login", object="nul\x00byte", outcome="refused"
        )
        row = store.audit.recent(limit=1).iloc[0]
        assert len(row["actor"]) == 200 and row["object"] == "nul\ufffdbyte"


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log", "TRUNCATE audit_log"],
)
def test_the_database_refuses_rewriting_the_trail(db_dsn, statement):
    with Store(db_dsn) as store:
        store.audit.record(actor="alice", action="login")
    # the owner, a superuser here: refused all the same
    with (
        psycopg.connect(db_dsn) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"),
    ):
        conn.execute(statement)
    with Store(db_dsn) as store:
        assert list(store.audit.recent()["actor"]) == ["alice"]
