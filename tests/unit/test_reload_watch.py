"""The rules-directory watcher and the reload helpers that need no database."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from workbench.errors import RuleError
from workbench.pipeline.reload import error_lines, read_directory
from workbench.pipeline.watch import DirectoryWatcher, snapshot
from workbench.rules import load_rules, parse_rules, version_of

RULE = "rules:\n  - id: big\n    when: amount > {n}\n    score: 10\n"


def test_snapshot_sees_a_rename_over_a_file_even_with_same_size_and_mtime(tmp_path: Path) -> None:
    target = tmp_path / "a.yaml"
    target.write_text(RULE.format(n=1))
    before = snapshot(tmp_path)
    stat = target.stat()
    tmp = tmp_path / ".a.yaml.swp"
    tmp.write_text(RULE.format(n=2))  # same size
    os.utime(tmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime
    assert snapshot(tmp_path) == before  # hidden temporary files are not rule files
    os.replace(tmp, target)
    assert snapshot(tmp_path) != before  # a new inode


def test_snapshot_lists_rule_files_only(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yml", "c.yaml~", "#d.yaml#", "~e.yaml", ".f.yaml", "g.txt"):
        (tmp_path / name).write_text("rules: []\n")
    assert [entry[0] for entry in snapshot(tmp_path)] == ["a.yaml", "b.yml"]
    assert snapshot(tmp_path / "missing") == ()


def test_watcher_calls_back_after_create_rename_and_delete(tmp_path: Path) -> None:
    calls: list[tuple] = []
    changed = threading.Event()

    def on_change() -> None:
        calls.append(snapshot(tmp_path))
        changed.set()

    watcher = DirectoryWatcher(tmp_path, on_change, poll_s=0.02, debounce_s=0.05, rescan_s=3600)
    watcher.start()
    try:
        for action in (
            lambda: (tmp_path / "a.yaml").write_text(RULE.format(n=1)),
            lambda: os.rename(tmp_path / "a.yaml", tmp_path / "b.yaml"),
            lambda: (tmp_path / "b.yaml").unlink(),
        ):
            changed.clear()
            action()
            assert changed.wait(timeout=30), "no callback after a change"
            expected = snapshot(tmp_path)
            deadline = time.monotonic() + 30
            while calls[-1] != expected and time.monotonic() < deadline:
                changed.clear()
                changed.wait(timeout=1)
            assert calls[-1] == expected
    finally:
        watcher.stop()
    assert [name for name, *_ in calls[-1]] == []


def test_watcher_survives_a_failing_callback(tmp_path: Path) -> None:
    calls = []

    def on_change() -> None:
        calls.append(1)
        raise RuntimeError("boom")

    watcher = DirectoryWatcher(tmp_path, on_change, poll_s=0.02, debounce_s=0.02, rescan_s=3600)
    watcher.start()
    try:
        (tmp_path / "a.yaml").write_text("x: 1\n")
        deadline = time.monotonic() + 30
        while not calls and time.monotonic() < deadline:
            time.sleep(0.02)
        (tmp_path / "b.yaml").write_text("x: 1\n")
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        watcher.stop()
    assert len(calls) >= 2


def test_read_directory_gives_the_versions_load_rules_gives(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text(RULE.format(n=1))
    (rules / "b.yml").write_text(RULE.format(n=2).replace("big", "bigger"))
    (rules / ".a.yaml.swp").write_text("junk")
    assert version_of(read_directory(rules)) == load_rules(rules).version
    (rules / "a.yaml").unlink()
    (rules / "b.yml").unlink()
    with pytest.raises(RuleError, match="no rule files"):
        read_directory(rules)


def test_error_lines_are_one_located_line_per_problem() -> None:
    text = (
        "rules:\n  - id: one\n    when: amout > 5\n    score: 10\n"
        "  - id: two\n    when: amount > 5\n    score: 500\n"
    )
    with pytest.raises(RuleError) as caught:
        parse_rules({"rules/x.yaml": text})
    assert error_lines(caught.value).splitlines() == [
        "rules/x.yaml:3:11 rule one: unknown field 'amout' — did you mean 'amount'?",
        "rules/x.yaml:7:12 rule two: score must be between -100 and 100, got 500",
    ]
