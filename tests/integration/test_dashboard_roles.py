"""Roles checked on the server and every action audited, against a real PostgreSQL and a real
rules directory. The pages' callbacks are called directly, bypassing the browser (where a
disabled button would have stopped an honest user): a session whose role may not act must
change nothing — alert still open, ``rule_sets`` and the rule file unchanged — and leave a
``refused`` row in the audit trail naming the user and the action."""

from __future__ import annotations

import asyncio
import html
import re
from pathlib import Path

import pytest
from conftest import build_scored

from workbench.analysis import audit_log
from workbench.auth.roles import AccessDenied, Identity, Role
from workbench.dashboard.actions import Actions
from workbench.dashboard.alerts_page import AlertsView
from workbench.dashboard.audit_page import AuditView
from workbench.dashboard.editor import EditorView
from workbench.dashboard.hub import Hub
from workbench.dashboard.publishing import propose_publish, propose_rollback, unified_diff
from workbench.dashboard.session import ALERTS_TAB, EDITOR_TAB, Session
from workbench.pipeline.reload import Publisher
from workbench.rules import load_rules
from workbench.settings import Settings
from workbench.storage import audit, rule_set_history, shared_store, write_batch
from workbench.storage.rule_sets import active as active_rule_set

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RISKY_OLD = "merchant_category in risky_mcc and amount > 200\n    score: 20"
RISKY_NEW = "merchant_category in risky_mcc and amount > 50\n    score: 45"

VIEWER = Identity("vera", Role.VIEWER, provider="basic", address="10.0.0.7")
ANALYST = Identity("ana", Role.ANALYST, provider="basic")
AUTHOR = Identity("rui", Role.RULE_AUTHOR, provider="oauth")
ADMIN = Identity("ada", Role.ADMIN, provider="basic")


@pytest.fixture
def alert_id(conn) -> int:
    """An open alert on transactions scored by a recorded real rule set."""
    batch = build_scored(200, version=load_rules("rules").version)
    write_batch(conn, batch)
    row = conn.execute("SELECT id FROM alerts WHERE status = 'open' ORDER BY id LIMIT 1")
    return int(row.fetchone()[0])


def audit_rows(conn, **filters):
    return audit.recent(conn, 100, **filters)


def alert_state(conn, alert_id: int) -> tuple:
    return conn.execute(
        "SELECT status, disposition, assignee, notes FROM alerts WHERE id = %s", (alert_id,)
    ).fetchone()


def editor(db_dsn: str, rules_dir: Path, who: Identity) -> EditorView:
    view = EditorView(db_dsn, rules_dir, identity=who)
    asyncio.run(view.load())
    return view


def test_a_viewer_can_dispose_of_nothing_even_through_the_callback(conn, db_dsn, alert_id):
    view = AlertsView(db_dsn, VIEWER)
    asyncio.run(view.select(alert_id))
    assert all(b.disabled for b in view.buttons.values())  # the convenience...
    view.notes.value = "closing it anyway"
    asyncio.run(view.close("false_positive"))  # ... and the control: the server refuses

    assert alert_state(conn, alert_id) == ("open", None, None, None)
    assert "Not allowed" in view.message.object
    [row] = audit_rows(conn).to_dict("records")
    assert (row["actor"], row["role"], row["provider"], row["address"]) == (
        "vera",
        "viewer",
        "basic",
        "10.0.0.7",
    )
    assert (row["action"], row["object"], row["outcome"]) == (
        "alert.dispose",
        f"alert {alert_id}",
        "refused",
    )
    assert "needs the analyst role" in row["detail"]


def test_an_analyst_disposes_as_the_login_user_with_the_audit_row(conn, db_dsn, alert_id):
    view = AlertsView(db_dsn, ANALYST)
    assert not hasattr(view, "user")  # no "Analyst" box: the name comes from the login
    asyncio.run(view.select(alert_id))
    assert not view.buttons["confirmed_fraud"].disabled
    view.notes.value = "card reported stolen"
    asyncio.run(view.close("confirmed_fraud"))

    assert alert_state(conn, alert_id) == (
        "closed",
        "confirmed_fraud",
        "ana",
        "card reported stolen",
    )
    [row] = audit_rows(conn, action="alert.").to_dict("records")
    assert (row["actor"], row["role"], row["outcome"]) == ("ana", "analyst", "ok")
    assert row["before"] == {"status": "open", "disposition": None, "assignee": None, "notes": None}
    assert row["after"] == {
        "status": "closed",
        "disposition": "confirmed_fraud",
        "assignee": "ana",
        "notes": "card reported stolen",
    }
    # The change and its row are one transaction: a failing close writes neither.
    with pytest.raises(Exception, match="no such alert"):
        Actions(ANALYST, db_dsn).dispose(10**9, "valuable")
    assert list(audit_rows(conn)["outcome"])[:2] == ["failed", "ok"]


def test_a_viewer_cannot_apply_roll_back_or_draft_even_through_the_callbacks(
    conn, db_dsn, rules_dir, published
):
    view = editor(db_dsn, rules_dir, VIEWER)
    assert view.apply_button.disabled and view.rollback_button.disabled
    assert view.validate_button.disabled and view.editor.readonly
    original = (rules_dir / "default.yaml").read_text()
    rows = len(rule_set_history(conn))

    view.editor.value = original.replace(RISKY_OLD, RISKY_NEW)
    assert asyncio.run(view.validate()) is None
    assert asyncio.run(view.apply()) is None
    assert asyncio.run(view.rollback(published)) is None
    # A forged pending change (as if the diff had been shown) is refused at confirmation.
    view.pending = propose_publish(
        shared_store(db_dsn), rules_dir, view.file.value, view.editor.value
    )
    assert asyncio.run(view.confirm()) is None
    assert "Not allowed" in view.message.object
    with pytest.raises(AccessDenied):
        Actions(VIEWER, db_dsn).rollback(propose_rollback(shared_store(db_dsn), published))

    assert (rules_dir / "default.yaml").read_text() == original
    assert len(rule_set_history(conn)) == rows
    assert active_rule_set(conn)["version"] == published
    refused = audit_rows(conn, actor="vera")
    assert set(refused["outcome"]) == {"refused"}
    assert sorted(set(refused["action"])) == ["rules.draft", "rules.publish", "rules.rollback"]


def test_an_analyst_cannot_publish_and_a_rule_author_may_only_draft(
    conn, db_dsn, rules_dir, published
):
    original = (rules_dir / "default.yaml").read_text()
    analyst = editor(db_dsn, rules_dir, ANALYST)
    assert analyst.apply_button.disabled and analyst.validate_button.disabled
    assert asyncio.run(analyst.apply()) is None
    assert asyncio.run(analyst.run_what_if()) is None  # what-if needs rule-author

    author = editor(db_dsn, rules_dir, AUTHOR)
    assert not author.validate_button.disabled and author.apply_button.disabled
    author.editor.value = original.replace(RISKY_OLD, RISKY_NEW)
    assert asyncio.run(author.validate()) is not None  # drafting is allowed
    assert asyncio.run(author.apply()) is None
    author.pending = propose_publish(
        shared_store(db_dsn), rules_dir, author.file.value, author.editor.value
    )
    assert asyncio.run(author.confirm()) is None

    assert (rules_dir / "default.yaml").read_text() == original
    assert active_rule_set(conn)["version"] == published
    refused = audit_rows(conn, outcome="refused")
    assert sorted(zip(refused["actor"], refused["action"], strict=True)) == [
        ("ana", "rules.publish"),
        ("ana", "rules.what_if"),
        ("rui", "rules.publish"),
        ("rui", "rules.publish"),
    ]


def test_an_admin_publishes_what_the_diff_showed_as_the_login_user(
    conn, db_dsn, rules_dir, published
):
    view = editor(db_dsn, rules_dir, ADMIN)
    edited = view.editor.value.replace(RISKY_OLD, RISKY_NEW)
    view.editor.value = edited
    before = active_rule_set(conn)

    proposal = asyncio.run(view.apply())
    assert proposal is not None and view.pending is proposal
    assert (rules_dir / "default.yaml").read_text() != edited  # nothing written yet
    assert len(rule_set_history(conn)) == 1
    # an escaped <pre>: the text as shown
    shown = html.unescape(re.sub(r"</?pre[^>]*>", "", view.review.object))
    changed = [
        line for line in shown.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert changed == [
        "-    when: merchant_category in risky_mcc and amount > 200",
        "-    score: 20",
        "+    when: merchant_category in risky_mcc and amount > 50",
        "+    score: 45",
    ]
    assert not view.confirm_button.disabled

    version = asyncio.run(view.confirm())
    after = active_rule_set(conn)
    assert version == after["version"] == proposal.version != published
    assert (rules_dir / "default.yaml").read_text() == edited
    assert rule_set_history(conn).iloc[0]["author"] == "ada"
    # What was shown is exactly what went live.
    assert shown == unified_diff(
        before["files"], after["files"], f"active {published}", f"publish {version}"
    )
    [row] = audit_rows(conn, action="rules.publish", actor="ada").to_dict("records")
    assert (row["actor"], row["role"], row["outcome"], row["object"]) == (
        "ada",
        "admin",
        "ok",
        f"rule_set {version}",
    )
    assert row["before"] == {"version": published}
    assert row["after"]["version"] == version and row["after"]["file"] == "default.yaml"
    assert view.pending is None and view.confirm_button.disabled


def test_a_stale_diff_cannot_be_confirmed(conn, db_dsn, rules_dir, published):
    view = editor(db_dsn, rules_dir, ADMIN)
    original = view.editor.value
    view.editor.value = original.replace(RISKY_OLD, RISKY_NEW)
    assert asyncio.run(view.apply()) is not None
    # Edited after the diff was shown: the button goes, and the server refuses anyway.
    view.editor.value = view.editor.value.replace("score: 45", "score: 60")
    assert view.confirm_button.disabled
    assert asyncio.run(view.confirm()) is None
    assert (rules_dir / "default.yaml").read_text() == original
    assert active_rule_set(conn)["version"] == published

    # The file changed on disk after the diff was shown: refused under the lock, audited.
    assert asyncio.run(view.apply()) is not None
    (rules_dir / "default.yaml").write_text(original.replace("score: 20", "score: 21"))
    assert asyncio.run(view.confirm()) is None
    assert "changed since the diff was shown" in view.message.object
    assert active_rule_set(conn)["version"] == published
    [failed] = audit_rows(conn, outcome="failed").to_dict("records")
    assert (failed["actor"], failed["action"]) == ("ada", "rules.publish")
    (rules_dir / "default.yaml").write_text(original)

    # Another publication in between: the diff's "from" is no longer active.
    assert asyncio.run(view.apply()) is not None
    other = Actions(Identity("bob", Role.ADMIN), db_dsn)
    text = original.replace("score: 20", "score: 22")
    assert other.publish(propose_publish(shared_store(db_dsn), rules_dir, view.file.value, text))
    assert asyncio.run(view.confirm()) is None
    assert "active rule set changed" in view.message.object
    assert rule_set_history(conn).iloc[0]["author"] == "bob"
    assert (rules_dir / "default.yaml").read_text() == text


def test_rollback_shows_its_diff_then_rolls_back_as_the_login_user(
    conn, db_dsn, rules_dir, published
):
    view = editor(db_dsn, rules_dir, ADMIN)
    view.editor.value = view.editor.value.replace(RISKY_OLD, RISKY_NEW)
    applied = asyncio.run(view.apply()) and asyncio.run(view.confirm())
    assert applied is not None

    proposal = asyncio.run(view.rollback(published))
    assert proposal is not None and "+    score: 20" in view.review.object
    assert active_rule_set(conn)["version"] == applied  # nothing until confirmed
    assert asyncio.run(view.confirm()) == published
    assert active_rule_set(conn)["version"] == published
    assert rule_set_history(conn).iloc[0]["author"] == "ada"
    [row] = audit_rows(conn, action="rules.rollback").to_dict("records")
    assert (row["outcome"], row["before"], row["after"]["version"]) == (
        "ok",
        {"version": applied},
        published,
    )

    # A rollback confirmed after someone else published another version is refused.
    assert asyncio.run(view.rollback(applied)) is not None
    text = (rules_dir / "default.yaml").read_text().replace("score: 20", "score: 22")
    other = Actions(Identity("bob", Role.ADMIN), db_dsn)
    assert other.publish(propose_publish(shared_store(db_dsn), rules_dir, view.file.value, text))
    third = active_rule_set(conn)["version"]
    assert asyncio.run(view.confirm()) is None
    assert "active rule set changed" in view.message.object
    assert active_rule_set(conn)["version"] == third


def test_the_audit_page_refuses_a_non_admin_even_when_called_directly(conn, db_dsn):
    audit.record(conn, actor="someone", action="alert.dispose", object="alert 1")
    for who in (VIEWER, ANALYST, AUTHOR):
        page = AuditView(db_dsn, who)
        assert asyncio.run(page.load()) is None
        assert page.table.value.empty and not page.loaded
        assert "Not allowed" in page.message.object
    refused = audit_rows(conn, action="audit.read")
    assert sorted(refused["actor"]) == ["ana", "rui", "vera"]
    assert set(refused["outcome"]) == {"refused"}


def test_the_audit_page_filters_and_pages_back_by_id(conn, db_dsn):
    for i in range(5):
        audit.record(conn, actor=f"u{i % 2}", action="alert.dispose", object=f"alert {i}")
    audit.record(conn, actor="u0", action="rules.publish", outcome="failed", after={"v": 1})
    page = AuditView(db_dsn, ADMIN, page_rows=2)
    first = asyncio.run(page.load())
    assert list(first["action"]) == ["rules.publish", "alert.dispose"]  # newest first
    assert first["object"].iloc[1] == "alert 4"
    assert page.table.value.iloc[0]["after"] == '{"v": 1}'
    assert not page.older.disabled
    second = asyncio.run(page.load_older())
    assert list(second["object"]) == ["alert 3", "alert 2"]

    page.actor.value, page.action.value = "u0", "alert."
    assert list(asyncio.run(page.load())["object"]) == ["alert 4", "alert 2"]
    assert list(asyncio.run(page.load_older())["object"]) == ["alert 0"]
    assert page.older.disabled
    page.actor.value, page.action.value, page.outcome.value = "", "", "failed"
    assert list(asyncio.run(page.load())["action"]) == ["rules.publish"]


def test_only_an_admin_session_has_the_audit_tab(db_dsn):
    settings = Settings.load()
    for who, tabs in ((VIEWER, 5), (ANALYST, 5), (ADMIN, 6)):  # Lists for everyone
        session = Session(Hub(), db_dsn, settings, identity=who)
        assert len(session.tabs) == tabs
        assert ("Audit" in session.page_names) is (who.role is Role.ADMIN)
        assert session.build(ALERTS_TAB) and session.build(EDITOR_TAB)
        assert session.alerts.identity is who and session.editor.identity is who


def test_the_watcher_audits_file_publications_and_notebooks_read_them(
    conn, db_dsn, rules_dir, published
):
    path = rules_dir / "default.yaml"
    original = path.read_text()
    path.write_text(original.replace("score: 20", "score: 25"))
    watcher = Publisher(db_dsn, rules_dir, author="ops")
    try:
        assert watcher.check() == "accepted"
        path.write_text(original.replace("amount > 200", "amount > "))
        assert watcher.check() == "rejected"
    finally:
        watcher.close()

    rows = audit_log(dsn=db_dsn, action="rules.")
    assert list(rows["outcome"]) == ["failed", "ok", "ok"]  # the fixture's load is audited too
    assert set(rows["actor"]) == {"files:ops", "files:worker-user"}
    assert set(rows["provider"]) == {"pipeline"}
    failed, accepted = rows.iloc[0], rows.iloc[1]
    assert accepted["before"] == {"version": published}
    assert failed["after"]["status"] == "rejected" and "default.yaml" in failed["detail"]
    assert list(audit_log(dsn=db_dsn, actor="files:ops", outcome="failed")["id"]) == [failed["id"]]


@pytest.fixture
def audit_refuses_mallory(conn):
    """This test database's audit trail refuses rows by ``mallory`` (a trigger), so an
    action's audit row fails after its change was written in the same transaction."""
    conn.execute(
        "CREATE FUNCTION refuse_mallory() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN IF NEW.actor = 'mallory' THEN RAISE EXCEPTION 'audit refused'; END IF;"
        " RETURN NEW; END $$"
    )
    conn.execute(
        "CREATE TRIGGER refuse_mallory BEFORE INSERT ON audit_log"
        " FOR EACH ROW EXECUTE FUNCTION refuse_mallory()"
    )


def test_no_change_is_stored_without_its_audit_row(
    conn, db_dsn, rules_dir, published, alert_id, audit_refuses_mallory
):
    mallory = Identity("mallory", Role.ADMIN)
    with pytest.raises(Exception, match="cannot"):
        Actions(mallory, db_dsn).dispose(alert_id, "false_positive", "no trace")
    assert alert_state(conn, alert_id) == ("open", None, None, None)

    original = (rules_dir / "default.yaml").read_text()
    view = editor(db_dsn, rules_dir, mallory)
    view.editor.value = original.replace(RISKY_OLD, RISKY_NEW)
    assert asyncio.run(view.apply()) is not None
    assert asyncio.run(view.confirm()) is None  # the file was written, then put back
    assert (rules_dir / "default.yaml").read_text() == original
    assert sorted(p.name for p in rules_dir.iterdir()) == ["default.yaml"]
    assert len(rule_set_history(conn)) == 1
    assert asyncio.run(view.rollback(published)) is not None
    assert asyncio.run(view.confirm()) is None
    assert len(rule_set_history(conn)) == 1
    assert audit_rows(conn, actor="mallory").empty
