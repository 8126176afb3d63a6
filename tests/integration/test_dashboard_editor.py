"""The dashboard's rule editor page against a real PostgreSQL and a real rules directory,
driven through its methods (no browser): validate, what-if, apply (diff, then confirm),
history, diff, rollback."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import build_scored

from workbench.auth.roles import Identity, Role
from workbench.dashboard.actions import Actions
from workbench.dashboard.editor import RANGE, EditorView
from workbench.pipeline.reload import Publisher, read_directory
from workbench.rules import version_of
from workbench.storage import rule_set_history, write_batch
from workbench.storage.rule_sets import active as active_rule_set

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FILE = "rules/default.yaml"
RISKY_OLD = "merchant_category in risky_mcc and amount > 200\n    score: 20"
RISKY_NEW = "merchant_category in risky_mcc and amount > 50\n    score: 45"


def editor(db_dsn: str, rules_dir: Path, **options) -> EditorView:
    options.setdefault("identity", Identity("alice", Role.ADMIN))
    view = EditorView(db_dsn, rules_dir, **options)
    asyncio.run(view.load())
    return view


def apply(view: EditorView) -> str | None:
    """Apply as a user does it: the diff is shown, then confirmed."""
    if asyncio.run(view.apply()) is None:
        return None
    return asyncio.run(view.confirm())


def rollback(view: EditorView, version: str) -> str | None:
    if asyncio.run(view.rollback(version)) is None:
        return None
    return asyncio.run(view.confirm())


def test_an_invalid_edit_is_refused_with_file_line_col_and_rule_id(
    conn, db_dsn, rules_dir, published
):
    view = editor(db_dsn, rules_dir)
    assert view.file.value == FILE and view.version == published
    original = (rules_dir / "default.yaml").read_text()
    assert view.editor.value == original
    bad = original.replace("amount < 3 and card_tx_10m >= 2", "amount < 3 and card_tx_10mm >= 2")
    lines = bad.splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "card_tx_10mm" in text)
    col = lines[line - 1].index("card_tx_10mm") + 1
    view.editor.value = bad

    assert asyncio.run(view.validate()) is None
    [error] = view.errors
    assert (error.file, error.line, error.col, error.rule_id) == (FILE, line, col, "card_testing")
    assert "card_tx_10mm" in error.message and error.suggestion == "card_tx_10m"
    row = view.error_table.value.iloc[0]
    assert (row["file"], row["line"], row["col"], row["rule_id"]) == (
        FILE,
        line,
        col,
        "card_testing",
    )
    [note] = view.editor.annotations
    assert (note["row"], note["column"], note["type"]) == (line - 1, col - 1, "error")
    assert "Refused" in view.message.object

    rows_before = len(rule_set_history(conn))
    assert asyncio.run(view.apply()) is None  # Apply checks again and writes nothing
    assert (rules_dir / "default.yaml").read_text() == original
    assert len(rule_set_history(conn)) == rows_before
    assert active_rule_set(conn)["version"] == published
    assert [e.rule_id for e in view.errors] == ["card_testing"]


def test_apply_writes_the_file_atomically_and_records_the_editor_user(
    conn, db_dsn, rules_dir, published
):
    view = editor(db_dsn, rules_dir)
    edited = view.editor.value.replace(RISKY_OLD, RISKY_NEW)
    assert edited != view.editor.value
    view.editor.value = edited

    version = apply(view)
    assert (rules_dir / "default.yaml").read_text() == edited
    assert sorted(p.name for p in rules_dir.iterdir()) == ["default.yaml"]  # no temp file left
    assert version == version_of(read_directory(rules_dir)) != published
    newest = rule_set_history(conn).iloc[0]
    assert (newest["version"], newest["status"], newest["author"]) == (version, "accepted", "alice")
    assert active_rule_set(conn)["version"] == version

    # The worker's watcher then sees the new file and finds the version recorded already.
    rows = len(rule_set_history(conn))
    watcher = Publisher(db_dsn, rules_dir, author="worker-user")
    try:
        watcher.check()
    finally:
        watcher.close()
    assert len(rule_set_history(conn)) == rows
    assert rule_set_history(conn).iloc[0]["author"] == "alice"


def test_apply_and_rollback_are_refused_when_the_setting_disables_them(
    conn, db_dsn, rules_dir, published
):
    view = editor(db_dsn, rules_dir, apply_enabled=False)
    assert view.apply_button.disabled and view.rollback_button.disabled
    original = view.editor.value
    view.editor.value = original.replace(RISKY_OLD, RISKY_NEW)
    assert asyncio.run(view.validate()) is not None  # checking is still allowed
    assert asyncio.run(view.apply()) is None
    assert "disabled" in view.message.object
    assert asyncio.run(view.confirm()) is None
    assert (rules_dir / "default.yaml").read_text() == original
    assert len(rule_set_history(conn)) == 1
    assert asyncio.run(view.rollback(published)) is None


def test_history_diff_and_rollback_to_an_earlier_version(conn, db_dsn, rules_dir, published):
    view = editor(db_dsn, rules_dir)
    original = view.editor.value
    view.editor.value = original.replace(RISKY_OLD, RISKY_NEW)
    applied = apply(view)

    history = view.history_frame
    assert list(history["version"][:2]) == [applied, published]
    assert list(view.history_table.value["author"][:2]) == ["alice", "worker-user"]
    new_id, old_id = (int(i) for i in history["id"][:2])
    assert (view.diff_to.value, view.diff_from.value) == (new_id, old_id)
    diff = view.show_diff()
    changed = [
        line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert changed == [
        "-    when: merchant_category in risky_mcc and amount > 200",
        "-    score: 20",
        "+    when: merchant_category in risky_mcc and amount > 50",
        "+    score: 45",
    ]
    assert f"{published}: {FILE}" in diff and view.diff.object.startswith("<pre")
    assert view.rollback_to.value == published

    assert rollback(view, published) == published
    assert active_rule_set(conn)["version"] == published
    newest = rule_set_history(conn).iloc[0]
    assert (newest["version"], newest["status"], newest["author"]) == (
        published,
        "accepted",
        "alice",
    )
    assert view.version == published and view.editor.value == original


def test_what_if_over_the_last_n_and_a_time_range(conn, db_dsn, rules_dir, published):
    write_batch(conn, build_scored(3000), worker="w", source="test")
    view = editor(db_dsn, rules_dir)
    view.editor.value = view.editor.value.replace(RISKY_OLD, RISKY_NEW)
    view.rows.value = 1000

    result = asyncio.run(view.run_what_if())
    assert result is not None and result.rows == 1000
    assert int(result.migration.to_numpy().sum()) == 1000
    assert list(result.summary["transactions"]) == [1000, 1000]
    # The edited rule's hits, counted independently in SQL over the same newest 1000 rows.
    expected = conn.execute(
        "SELECT count(*) FILTER (WHERE amount > 50), count(*) FILTER (WHERE amount > 200)"
        " FROM (SELECT * FROM transactions ORDER BY ts DESC, tx_id DESC LIMIT 1000) t"
        " WHERE merchant_category IN ('gambling', 'crypto', 'money_transfer')"
    ).fetchone()
    risky = result.rules.loc["risky_merchant"]
    assert (risky["hits_after"], risky["hits_before"]) == (expected[0], expected[1])
    assert expected[0] > 0
    assert result.summary.loc["before", "low"] == result.migration.loc["Low"].sum()
    assert result.summary.loc["after", "medium"] == result.migration["Medium"].sum()
    assert view.migration.value.shape == (3, 4)  # band + Low/Medium/High
    assert "transactions re-scored" in view.whatif_message.object

    view.mode.value = RANGE
    view.start.value = datetime(2026, 1, 1, 0, 10)
    view.end.value = datetime(2026, 1, 1, 0, 20)
    ranged = asyncio.run(view.run_what_if())
    assert ranged is not None and int(ranged.migration.to_numpy().sum()) == 600


def test_what_if_lists_the_changed_transactions_and_goes_stale_on_edit(
    conn, db_dsn, rules_dir, published
):
    write_batch(conn, build_scored(3000), worker="w", source="test")
    view = editor(db_dsn, rules_dir)
    view.editor.value = view.editor.value.replace(RISKY_OLD, RISKY_NEW)
    view.rows.value = 1000
    result = asyncio.run(view.run_what_if())
    assert result is not None
    moved = result.rows - int(sum(result.migration.loc[b, b] for b in ("Low", "Medium", "High")))
    assert moved > 0 and result.changed_total == moved
    changed = view.changed.value
    assert len(changed) == min(moved, 200)
    assert list(changed.columns[:3]) == ["tx_id", "card_id", "amount"]
    assert (changed["band_before"] != changed["band_after"]).all()
    assert "changed band" in view.whatif_message.object
    assert "Stale" not in view.whatif_message.object

    view.file.value = view.file.options[-1]  # switching files changes no rule
    view.file.value = FILE
    assert "Stale" not in view.whatif_message.object
    view.editor.value = view.editor.value.replace("score: 45", "score: 44")
    assert "Stale" in view.whatif_message.object
    assert view.changed.styles["opacity"] == "0.4"


def test_a_click_on_an_error_row_moves_the_cursor_to_its_line(conn, db_dsn, rules_dir, published):
    view = editor(db_dsn, rules_dir)
    bad = view.editor.value.replace("card_tx_10m >= 2", "card_tx_10mm >= 2")
    view.editor.value = bad
    assert asyncio.run(view.validate()) is None
    line = view.errors[0].line
    view.error_table.selection = [0]
    assert (view.goto.line, view.goto.nonce) == (line, 1)
    view.error_table.selection = []
    view.error_table.selection = [0]  # the same row again moves the cursor again
    assert view.goto.nonce == 2


BLOCK_RULE = """
  - id: blocked_card
    description: The card is on the block list
    when: card_id in list("blocked_cards")
    score: 80
"""


def test_what_if_scores_with_the_lists_and_snoozes_in_force(conn, db_dsn, rules_dir, published):
    write_batch(conn, build_scored(3000), worker="w", source="test")
    analyst = Actions(Identity("ana", Role.ANALYST), db_dsn)
    analyst.add_to_list("blocked_cards", "card7", reason="chargeback")
    (rules_dir / "lists").mkdir()
    (rules_dir / "lists" / "blocked_cards.txt").write_text("card9\n")
    # card7 is snoozed until 00:41:40 (event time): within the newest 1000 rows (from
    # 00:33:20) its earlier transactions do not hit, its later ones do.
    until = datetime(2026, 1, 1, 0, 41, 40, tzinfo=UTC)
    analyst.snooze("blocked_card", "card", "card7", until, "known customer")
    view = editor(db_dsn, rules_dir)
    view.editor.value = view.editor.value.rstrip("\n") + "\n" + BLOCK_RULE
    view.rows.value = 1000
    result = asyncio.run(view.run_what_if())
    assert result is not None and result.rows == 1000
    expected = conn.execute(
        "SELECT count(*) FILTER (WHERE card_id = 'card9'),"
        " count(*) FILTER (WHERE card_id = 'card7' AND ts >= %s),"
        " count(*) FILTER (WHERE card_id = 'card7' AND ts < %s)"
        " FROM (SELECT * FROM transactions ORDER BY ts DESC, tx_id DESC LIMIT 1000) t",
        (until, until),
    ).fetchone()
    card9, card7_after, card7_snoozed = expected
    assert card9 > 0 and card7_after > 0 and card7_snoozed > 0
    blocked = result.rules.loc["blocked_card"]
    assert (blocked["hits_before"], blocked["hits_after"]) == (0, card9 + card7_after)
    assert "blocked_card" in view.rule_table.value["rule_id"].tolist()
