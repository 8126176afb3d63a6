"""Maintained lists and snoozes against a real PostgreSQL: an edit in the dashboard's action
path (or in a list file) changes which transactions a rule hits without a restart, a snooze
ends with event time, every edit is role-checked and audited, hostile values never get in."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from conftest import build_scored

from workbench.auth.roles import AccessDenied, Identity, Role
from workbench.dashboard.actions import Actions
from workbench.errors import ConfigError, RuleError, RuleSetError
from workbench.pipeline.lists import ListFollower, build_overlay
from workbench.pipeline.reload import dry_run
from workbench.rules import parse_rules
from workbench.scoring.detector import Detector
from workbench.storage import audit, connect, lists, snoozes, write_batch
from workbench.storage.store import close_shared as close_shared_stores

pytestmark = pytest.mark.integration

VIEWER = Identity("vera", Role.VIEWER, provider="basic", address="10.0.0.7")
ANALYST = Identity("ana", Role.ANALYST, provider="basic")

RULES = """
rules:
  - id: blocked_card
    description: The card is on the block list
    when: card_id in list("blocked_cards")
    score: 80
  - id: big
    when: amount > 100
    score: 10
"""


@pytest.fixture(autouse=True)
def _no_shared_pools():
    yield
    close_shared_stores()


def frame(n: int = 60, start: str = "2026-01-01T00:00:00Z"):
    return build_scored(n, start=start).frame[
        [
            c
            for c in build_scored(1).frame.columns
            if c not in ("risk_score", "band", "rule_set_version")
        ]
    ]


def hit_cards(detector: Detector, batch: pd.DataFrame, rule: str = "blocked_card") -> set[str]:
    _scored, hits, _errors = detector.score_frame(batch)
    rows = hits.loc[hits["rule_id"] == rule, "row"].to_numpy()
    return set(batch["card_id"].to_numpy(dtype=object)[rows])


def test_a_list_edit_changes_the_hits_of_a_running_follower_without_restart(db_dsn, tmp_path):
    detector = Detector(parse_rules({"rules/r.yaml": RULES}))
    follower = ListFollower(db_dsn, detector.swap_overlay, lists_dir=tmp_path / "lists")
    detector.swap_overlay(follower.initial())
    batch = frame()
    assert hit_cards(detector, batch) == set()
    follower.start()  # LISTEN workbench_lists in its own thread, as in a worker
    try:
        before = detector.overlay.version
        Actions(ANALYST, db_dsn).add_to_list("blocked_cards", "card7", reason="chargeback")
        deadline = time.monotonic() + 5
        while detector.overlay.version == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hit_cards(detector, batch) == {"card7"}
        # A list file edit is followed too (same overlay, merged with the database).
        (tmp_path / "lists").mkdir()
        (tmp_path / "lists" / "blocked_cards.txt").write_text("# from the bank\ncard9\n")
        deadline = time.monotonic() + 5
        while hit_cards(detector, batch) != {"card7", "card9"} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert hit_cards(detector, batch) == {"card7", "card9"}
        Actions(ANALYST, db_dsn).remove_from_list("blocked_cards", "card7")
        deadline = time.monotonic() + 5
        while hit_cards(detector, batch) != {"card9"} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert hit_cards(detector, batch) == {"card9"}
    finally:
        follower.stop()


def test_expired_entries_drop_out(conn):
    lists.add(conn, "blocked_cards", "card", "card1", added_by="t")
    past = datetime.now(UTC) - timedelta(seconds=1)
    conn.execute(
        "INSERT INTO list_entries (list_name, kind, value, added_by, expires_at)"
        " VALUES ('blocked_cards', 'card', 'card2', 't', %s)",
        (past,),
    )
    assert build_overlay(conn).lists["blocked_cards"].to_pylist() == ["card1"]


def test_a_snooze_ends_with_event_time(db_dsn, conn):
    detector = Detector(parse_rules({"rules/r.yaml": RULES}))
    batch = frame(100)  # one row a second from 00:00:00; card7 at rows 7, 57
    until = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
    Actions(ANALYST, db_dsn).add_to_list("blocked_cards", "card7")
    Actions(ANALYST, db_dsn).snooze("blocked_card", "card", "card7", until, "known customer")
    detector.swap_overlay(build_overlay(conn))
    _scored, hits, _ = detector.score_frame(batch)
    rows = hits.loc[hits["rule_id"] == "blocked_card", "row"].tolist()
    assert rows == [57]  # 00:00:07 snoozed, 00:00:57 after the snooze ended
    scored, _, _ = detector.score_frame(batch)
    # Other rules of the card still count while snoozed.
    assert scored["risk_score"].iloc[7] == (10.0 if batch["amount"].iloc[7] > 100 else 0.0)
    (row,) = snoozes.page(conn)[["id"]].itertuples(index=False)
    Actions(ANALYST, db_dsn).lift_snooze(int(row.id))
    detector.swap_overlay(build_overlay(conn))
    _scored, hits, _ = detector.score_frame(batch)
    assert hits.loc[hits["rule_id"] == "blocked_card", "row"].tolist() == [7, 57]


def test_edits_are_role_checked_and_audited(db_dsn, conn):
    with pytest.raises(AccessDenied):
        Actions(VIEWER, db_dsn).add_to_list("blocked_cards", "card1")
    with pytest.raises(AccessDenied):
        Actions(VIEWER, db_dsn).snooze(
            "big", "card", "card1", datetime(2027, 1, 1, tzinfo=UTC), "x"
        )
    assert lists.entries(conn).empty and snoozes.page(conn).empty
    refused = audit.recent(conn, 10, outcome="refused")
    assert refused["actor"].tolist() == ["vera", "vera"]
    assert set(refused["action"]) == {"list.edit", "rule.snooze"}
    row = Actions(ANALYST, db_dsn).add_to_list("blocked_merchants", "crypto", reason="policy")
    assert row["value"] == "crypto" and row["added_by"] == "ana"
    assert Actions(ANALYST, db_dsn).add_to_list("blocked_merchants", "crypto") is None
    done = audit.recent(conn, 10, outcome="ok", action="list.")
    assert done["actor"].tolist() == ["ana", "ana"]
    assert done["after"].iloc[1]["value"] == "crypto"
    assert done["object"].iloc[0] == "list blocked_merchants"


HOSTILE = [
    ("blocked_cards", "<script>alert(1)</script>"),
    ("blocked_cards", "card1'; DROP TABLE list_entries; --"),
    ("blocked_cards", "x" * 129),
    ("blocked_cards", "a\x00b"),
    ("blocked_cards", ""),
    ("blocked_countries", "FRA"),
    ("blocked_countries", "<b>"),
    ("no_such_list", "card1"),
]


@pytest.mark.parametrize(("name", "value"), HOSTILE)
def test_hostile_values_are_refused_before_the_database(db_dsn, conn, name, value):
    with pytest.raises(ConfigError):
        Actions(ANALYST, db_dsn).add_to_list(name, value)
    assert lists.entries(conn).empty
    failed = audit.recent(conn, 5, outcome="failed")
    assert failed["action"].tolist() == ["list.edit"]


def test_hostile_snooze_input_is_refused(db_dsn, conn):
    until = datetime(2027, 1, 1, tzinfo=UTC)
    for args in (
        ("big; drop", "card", "card1", until, "r"),
        ("big", "country", "FR", until, "r"),
        ("big", "card", "<img src=x>", until, "r"),
        ("big", "card", "card1", until, ""),
        ("big", "card", "card1", datetime(2027, 1, 1), "r"),
    ):
        with pytest.raises(ConfigError):
            Actions(ANALYST, db_dsn).snooze(*args)
    assert snoozes.page(conn).empty


def test_list_files_refuse_bad_lines_and_unknown_names(conn, tmp_path):
    (tmp_path / "blocked_cards.txt").write_text("card1\n<script>\ncard2 # ok\n")
    (tmp_path / "blockd_cards.txt").write_text("card3\n")
    overlay = build_overlay(conn, tmp_path)
    assert overlay.lists["blocked_cards"].to_pylist() == ["card1", "card2"]
    assert "blockd_cards" not in overlay.lists


def test_an_unknown_list_in_a_rule_file_is_located_with_a_suggestion():
    text = RULES.replace('list("blocked_cards")', 'list("blocked_card")')
    with pytest.raises((RuleError, RuleSetError)) as info:
        parse_rules({"rules/r.yaml": text})
    error = info.value
    assert (error.file, error.line, error.rule_id) == ("rules/r.yaml", 5, "blocked_card")
    assert error.col == len("    when: card_id in ") + 1
    assert error.suggestion == "blocked_cards"


def test_lists_are_bounded(conn, monkeypatch):
    import workbench.storage.lists as module

    monkeypatch.setattr(module, "MAX_ENTRIES", 2)
    lists.add(conn, "blocked_terminals", "terminal", "t1", added_by="t")
    lists.add(conn, "blocked_terminals", "terminal", "t2", added_by="t")
    from workbench.errors import StorageError

    with pytest.raises(StorageError, match="full"):
        lists.add(conn, "blocked_terminals", "terminal", "t3", added_by="t")
    assert np.array_equal(lists.entries(conn)["value"].to_numpy(dtype=object), ["t1", "t2"])


WORKER_RULES = """
rules:
  - id: blocked_country
    when: country in list("blocked_countries")
    score: 90
  - id: any
    when: amount >= 0
    score: 1
"""


def test_a_running_worker_scores_with_a_list_edit_without_restart(db_dsn, tmp_path):
    import asyncio
    import threading

    from workbench.pipeline.worker import build_pipeline, run_with_status
    from workbench.settings import Settings

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text(WORKER_RULES)
    settings = Settings.load(
        {"WORKBENCH_RULES_DIR": str(rules), "WORKBENCH_BATCH_ROWS": "200", "WORKBENCH_SEED": "4"}
    )
    pipeline = build_pipeline(settings, db_dsn, rate=2000.0)
    loop: list[asyncio.AbstractEventLoop] = []

    async def main():
        loop.append(asyncio.get_running_loop())
        await run_with_status(pipeline, duration=120.0)

    thread = threading.Thread(target=lambda: asyncio.run(main()))
    thread.start()
    try:
        with connect(db_dsn) as conn:

            def count(sql: str) -> int:
                return conn.execute(sql).fetchone()[0]

            deadline = time.monotonic() + 30
            while count("SELECT count(*) FROM transactions") < 600:
                assert time.monotonic() < deadline, "the worker stores nothing"
                time.sleep(0.1)
            Actions(ANALYST, db_dsn).add_to_list("blocked_countries", "US", reason="test")
            (edited,) = conn.execute(
                "SELECT added_at FROM list_entries WHERE value = 'US'"
            ).fetchone()
            hit = "SELECT count(*) FROM transactions WHERE rule_hits ? 'blocked_country'"
            deadline = time.monotonic() + 30
            while count(hit) < 50:
                assert time.monotonic() < deadline, "the edit never reached the worker"
                time.sleep(0.1)
            # Hits only where the list says so, and none stored before the edit.
            assert count(hit + " AND country <> 'US'") == 0
            early = conn.execute(hit + " AND stored_at < %s", (edited,)).fetchone()[0]
            assert early == 0
            assert count("SELECT count(*) FROM transactions WHERE stored_at < now()") > 600
    finally:
        loop[0].call_soon_threadsafe(pipeline.stop)
        thread.join(timeout=60)
    assert not thread.is_alive()


def test_each_component_role_does_its_part_and_no_more(db_dsn, tmp_path):
    """Analysts edit lists and snoozes as the dashboard's role, workers read them as the
    pipeline's role (and store evidence); neither may do the other's part."""
    import psycopg

    from workbench.storage.credentials import PasswordFile
    from workbench.storage.roles import dsns, ensure

    roles = dsns(ensure(db_dsn, PasswordFile(tmp_path / "pgpass")))
    until = datetime(2030, 1, 1, tzinfo=UTC)
    Actions(ANALYST, roles["dashboard"]).add_to_list("blocked_terminals", "T-9", reason="r")
    row = Actions(ANALYST, roles["dashboard"]).snooze("big", "terminal", "T-9", until, "r")
    Actions(ANALYST, roles["dashboard"]).lift_snooze(row["id"])
    Actions(ANALYST, roles["dashboard"]).remove_from_list("blocked_terminals", "T-9")
    Actions(ANALYST, roles["dashboard"]).add_to_list("blocked_terminals", "T-8")
    with connect(roles["dashboard"]) as conn:
        for statement in (
            "UPDATE list_entries SET value = 'x'",
            "UPDATE rule_snoozes SET until = now()",
            "DELETE FROM rule_snoozes",
            "INSERT INTO alert_evidence VALUES ('t', now(), '{}')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with connect(roles["pipeline"]) as conn:
        assert build_overlay(conn).lists["blocked_terminals"].to_pylist() == ["T-8"]
        for statement in (
            "INSERT INTO list_entries (list_name, kind, value, added_by)"
            " VALUES ('blocked_cards', 'card', 'c', 'x')",
            "DELETE FROM list_entries",
            "UPDATE rule_snoozes SET lifted_at = now()",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_the_reload_dry_run_scores_with_the_lists_and_snoozes_in_force(db_dsn, conn, tmp_path):
    """A candidate is dry-run as the workers would score it: the database's list entries,
    the list files of the rules directory and the snoozes (by event time) all count."""
    write_batch(conn, build_scored(200), worker="w", source="test")  # 00:00:00 .. 00:03:19
    lists.add(conn, "blocked_cards", "card", "card7", added_by="t")
    (tmp_path / "blocked_cards.txt").write_text("card9\n")
    ruleset = parse_rules({"rules/r.yaml": RULES})
    report = dry_run(ruleset, conn, lists_dir=tmp_path)
    # card7 and card9 (every 50th row from 7 and 9): 4 rows each, all High (80 points).
    cards = build_scored(200).frame["card_id"].astype(str)
    assert report.rows == 200 and report.high == int(cards.isin(["card7", "card9"]).sum()) == 8
    assert report.snoozed == 0
    until = datetime(2026, 1, 1, 0, 2, 0, tzinfo=UTC)  # card7 at 00:00:07, 00:00:57, 00:01:47
    snoozes.add(conn, "blocked_card", "card", "card7", until, reason="r", created_by="t")
    report = dry_run(ruleset, conn, lists_dir=tmp_path)
    assert (report.high, report.snoozed) == (5, 3)
    assert "3 hits snoozed" in report.line()
