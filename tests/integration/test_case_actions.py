"""Case actions through Actions: roles checked on the server, every change and refusal in the
audit trail, a close closing the case's alerts in the same transaction."""

from __future__ import annotations

import pytest

from tests.case_seed import seed_cases
from workbench.auth.roles import AccessDenied, Identity, Role
from workbench.dashboard.actions import Actions
from workbench.errors import StorageError
from workbench.storage import audit, cases
from workbench.storage.connection import connect

pytestmark = pytest.mark.integration

VIEWER = Identity("vera", Role.VIEWER, provider="basic")
ANA = Identity("ana", Role.ANALYST, provider="basic")
BEN = Identity("ben", Role.ANALYST, provider="basic")
ADMIN = Identity("ada", Role.ADMIN, provider="basic")


@pytest.fixture
def free(conn) -> list[int]:
    seed_cases(conn, 30)
    rows = conn.execute("SELECT id FROM cases WHERE assignee IS NULL ORDER BY id").fetchall()
    return [r[0] for r in rows]


def audited(conn, action: str) -> list[tuple]:
    frame = audit.recent(conn, 100, action=action)
    return list(zip(frame["actor"], frame["outcome"], frame["object"], strict=True))


def test_a_viewer_changes_nothing_and_each_refusal_is_audited(conn, db_dsn, free):
    act = Actions(VIEWER, db_dsn)
    case_id = free[0]
    for call in (
        lambda: act.claim_case(case_id),
        lambda: act.note_case(case_id, "hi"),
        lambda: act.set_case_status(case_id, "investigating"),
        lambda: act.close_case(case_id, "false_positive"),
    ):
        with pytest.raises(AccessDenied):
            call()
    state = conn.execute("SELECT status, assignee FROM cases WHERE id = %s", (case_id,))
    assert state.fetchone() == ("open", None)
    refused = audit.recent(conn, 100, outcome="refused")
    assert set(refused["action"]) == {"case.claim", "case.note", "case.status", "case.close"}
    assert set(refused["actor"]) == {"vera"}


def test_claim_race_second_analyst_is_refused_with_the_holder(conn, db_dsn, free):
    case_id = free[0]
    assert Actions(ANA, db_dsn).claim_case(case_id)["assignee"] == "ana"
    with pytest.raises(cases.CaseHeld, match="held by ana"):
        Actions(BEN, db_dsn).claim_case(case_id)
    with pytest.raises(cases.CaseHeld):
        Actions(BEN, db_dsn).release_case(case_id)
    assert audited(conn, "case.claim") == [
        ("ben", "refused", f"case {case_id}"),
        ("ana", "ok", f"case {case_id}"),
    ]
    # An admin may take it back; an analyst may assign only to themself.
    Actions(ADMIN, db_dsn).release_case(case_id)
    with pytest.raises(AccessDenied):
        Actions(BEN, db_dsn).assign_case(case_id, "ana")
    assert Actions(BEN, db_dsn).assign_case(case_id, "ben")["assignee"] == "ben"
    assert Actions(ADMIN, db_dsn).assign_case(case_id, "ana")["assignee"] == "ana"
    kinds = cases.events(conn, case_id)["kind"].tolist()
    assert kinds == ["claim", "release", "assign", "assign"]


def test_closing_a_case_closes_its_alerts_with_the_outcome(conn, db_dsn, free):
    case_id = free[0]
    act = Actions(ANA, db_dsn)
    act.set_case_status(case_id, "investigating")
    act.note_case(case_id, "<script>alert(1)</script> card seen in a breach")
    after = act.close_case(case_id, "confirmed_fraud", "called the customer")
    assert after["status"] == "closed" and after["outcome"] == "confirmed_fraud"
    alerts = conn.execute(
        "SELECT status, disposition, assignee FROM alerts WHERE case_id = %s", (case_id,)
    ).fetchall()
    assert alerts and set(alerts) == {("closed", "confirmed_fraud", "ana")}
    with pytest.raises(StorageError, match="closed already"):
        act.close_case(case_id, "valuable")
    assert [o for _, o, _ in audited(conn, "case.close")] == ["failed", "ok"]
    with pytest.raises(StorageError):
        act.close_case(free[1], "not_an_outcome")
    with pytest.raises(StorageError, match="control"):
        act.note_case(free[1], "\x00nul")


def test_bulk_close_is_one_transaction_with_one_audit_row_per_case(conn, db_dsn, free):
    act = Actions(ANA, db_dsn)
    done = act.close_cases(free[:5], "false_positive")
    assert [d["id"] for d in done] == sorted(free[:5])
    rows = audited(conn, "case.close")
    assert sorted(o for _, _, o in rows) == sorted(f"case {i}" for i in free[:5])
    # All or none: one closed case in the list fails the whole bulk close.
    with pytest.raises(StorageError):
        act.close_cases([free[5], free[0]], "false_positive")
    status = conn.execute("SELECT status FROM cases WHERE id = %s", (free[5],)).fetchone()
    assert status != ("closed",)


def test_the_database_roles_work_cases_with_only_their_privileges(db_dsn, tmp_path, make_batch):
    """The pipeline's role opens and joins cases; the dashboard's claims, notes and closes
    them (with their alerts); neither may rewrite what is the other's."""
    import psycopg

    from workbench.storage.credentials import PasswordFile
    from workbench.storage.roles import dsns, ensure
    from workbench.storage.writer import BatchWriter

    roles = dsns(ensure(db_dsn, PasswordFile(tmp_path / "pgpass")))
    with connect(roles["pipeline"]) as conn:
        BatchWriter(conn).write(make_batch(200, cards=[f"r{k % 5}" for k in range(200)]))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE cases SET assignee = 'mallory'")
    act = Actions(ANA, roles["dashboard"])
    with connect(roles["dashboard"]) as conn:
        case_id = conn.execute("SELECT min(id) FROM cases").fetchone()[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE cases SET max_score = 0")
    act.claim_case(case_id)
    act.note_case(case_id, "checked with the cardholder")
    assert act.close_case(case_id, "confirmed_fraud")["status"] == "closed"
    with connect(db_dsn) as owner:
        open_alerts = owner.execute(
            "SELECT count(*) FROM alerts WHERE case_id = %s AND status = 'open'", (case_id,)
        ).fetchone()[0]
        assert open_alerts == 0
