"""Rule hot reload in a running pipeline against a real PostgreSQL.

Edits (in place, editor-style rename, new file, rename, delete, ``enabled: false``), an
invalid edit and its fix, and a rollback, all while a paced stream runs; then: nothing lost
or scored twice, and every stored row carries the version whose rules gave its score.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from workbench.errors import ConfigError, RuleError
from workbench.pipeline.graph import Pipeline
from workbench.pipeline.reload import HotReload, Publisher, author_name, rollback
from workbench.pipeline.worker import run_with_status
from workbench.pipeline.writer import RetryingWriter
from workbench.rules import version_of
from workbench.scoring.detector import Detector
from workbench.sources.simulator import Simulator
from workbench.storage import audit, connect, rule_set_history
from workbench.storage.rule_sets import active as active_rule_set

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def rule_text(rule_id: str, points: float, *, enabled: bool = True) -> str:
    """A rule file whose one rule hits every transaction with ``points``."""
    text = f"rules:\n  - id: {rule_id}\n    when: amount >= 0\n    score: {points}\n"
    return text + ("" if enabled else "    enabled: false\n")


BAD = "rules:\n  - id: typo\n    when: amout > 5\n    score: 10\n"


class RulesDir:
    """A rules directory that knows the version and expected score of what it holds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir()
        self.points: dict[str, float] = {}  # version -> score every transaction gets

    def texts(self) -> dict[str, str]:
        return {
            f"{self.path.name}/{p.name}": p.read_text() for p in sorted(self.path.glob("*.yaml"))
        }

    def write(self, name: str, text: str, *, editor: bool = False) -> None:
        target = self.path / name
        if editor:  # write a hidden temporary file, then rename it over the old one
            tmp = self.path / f".{name}.swp"
            tmp.write_text(text)
            os.replace(tmp, target)
        else:
            target.write_text(text)

    def expect(self, points: float) -> str:
        version = version_of(self.texts())
        self.points[version] = points
        return version


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def rows_of(dsn: str, version: str) -> int:
    with connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM transactions WHERE rule_set_version = %s", (version,)
        ).fetchone()
    return int(row[0])


class Recording:
    """Wraps a source and keeps every batch it handed out."""

    def __init__(self, source) -> None:
        self.source, self.name, self.frames = source, source.name, []

    def next_batch(self):
        batch = self.source.next_batch()
        if batch is not None:
            self.frames.append(batch.frame)
        return batch

    def ack(self, position) -> None:
        self.source.ack(position)

    def close(self) -> None:
        self.source.close()


class Running:
    """A pipeline with hot reload, running on its own loop in a background thread."""

    def __init__(self, dsn: str, reload: HotReload, *, rate: float = 3000.0) -> None:
        self.dsn = dsn
        sim = Simulator(sim_customers=800, sim_terminals=300, batch_rows=200, seed=11)
        self.source = Recording(sim)
        ruleset = reload.initial()
        writer = RetryingWriter(dsn, source="simulator", worker="test")
        self.pipeline = Pipeline(self.source, Detector(ruleset), writer, rate=rate)
        self.pipeline.reload = reload
        self.stats = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._main)
        self.thread.start()
        wait_for(lambda: self.pipeline.stats.batches >= 2, "the first batches")

    def _main(self) -> None:
        async def main():
            self.loop = asyncio.get_running_loop()
            return await run_with_status(self.pipeline, duration=300.0)

        self.stats = asyncio.run(main())

    def wait_scoring(self, version: str) -> None:
        """Until rows scored by ``version`` keep being stored (two batches' worth more)."""
        before = rows_of(self.dsn, version)
        wait_for(lambda: rows_of(self.dsn, version) >= before + 400, f"rows of {version}")

    def stop(self):
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.pipeline.stop)
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        return self.stats


def cli(dsn: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WORKBENCH_DATABASE_URL": dsn}
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_edits_refusal_and_rollback_while_streaming(db_dsn: str, tmp_path: Path) -> None:
    rules = RulesDir(tmp_path / "rules")
    rules.write("a.yaml", rule_text("base", 10))
    v1 = rules.expect(10)
    run = Running(db_dsn, HotReload(db_dsn, rules.path, author="tester"))
    try:
        run.wait_scoring(v1)
        rules.write("a.yaml", rule_text("base", 20))  # edit in place
        v2 = rules.expect(20)
        run.wait_scoring(v2)
        rules.write("a.yaml", rule_text("base", 30), editor=True)  # save by rename
        v3 = rules.expect(30)
        run.wait_scoring(v3)
        rules.write("b.yaml", rule_text("extra", 5))  # a new file
        v4 = rules.expect(35)
        run.wait_scoring(v4)
        os.rename(rules.path / "b.yaml", rules.path / "c.yaml")  # a renamed file
        v5 = rules.expect(35)
        run.wait_scoring(v5)
        rules.write("c.yaml", rule_text("extra", 5, enabled=False))  # the rule stops
        v6 = rules.expect(30)
        run.wait_scoring(v6)

        rules.write("d.yaml", BAD)  # refused: the last good rules keep scoring
        refused = version_of(rules.texts())
        with connect(db_dsn) as conn:
            wait_for(
                lambda: refused in set(rule_set_history(conn)["version"]), "the refused attempt"
            )
        run.wait_scoring(v6)
        status = cli(db_dsn, "rules", "status")
        assert status.returncode == 1, status.stdout + status.stderr
        assert f"active: version {v6}" in status.stdout
        assert "rules/d.yaml:3:11 rule typo: unknown field 'amout'" in status.stdout

        rules.write("d.yaml", rule_text("fixed", 2))  # the fix recovers without a restart
        v8 = rules.expect(32)
        run.wait_scoring(v8)
        assert cli(db_dsn, "rules", "status").returncode == 0

        (rules.path / "c.yaml").unlink()  # deleted files: their rules disappear
        (rules.path / "d.yaml").unlink()
        assert version_of(rules.texts()) == v3  # back to a content accepted before
        run.wait_scoring(v3)

        back = cli(db_dsn, "rules", "rollback", v2)
        assert back.returncode == 0, back.stderr
        run.wait_scoring(v2)
        with connect(db_dsn) as conn:  # the command is audited, as its user
            [row] = audit.recent(conn, 10, action="rules.rollback").to_dict("records")
        assert (row["actor"], row["provider"], row["outcome"]) == (
            f"cli:{author_name()}",
            "cli",
            "ok",
        )
        assert (row["before"], row["after"]) == ({"version": v3}, {"version": v2})
    finally:
        stats = run.stop()

    generated = pd.concat(run.source.frames, ignore_index=True)
    with connect(db_dsn) as conn:
        rows = pd.DataFrame(
            conn.execute("SELECT tx_id, rule_set_version, risk_score FROM transactions").fetchall(),
            columns=["tx_id", "version", "score"],
        )
        history = rule_set_history(conn, limit=100)
        active = active_rule_set(conn)
    # Nothing lost, nothing scored twice.
    assert stats.dead == 0 and stats.duplicates == 0
    assert len(rows) == rows["tx_id"].nunique() == len(generated) == stats.stored
    assert set(rows["tx_id"]) == set(generated["tx_id"])
    # Every row carries the version whose rules gave its score.
    assert set(rows["version"]) <= set(rules.points)
    assert (rows["score"] == rows["version"].map(rules.points)).all()
    assert refused not in set(rows["version"])
    # Every attempt is recorded once; a rollback appends an accepted row.
    accepted = history[history["status"] == "accepted"].sort_values("id")
    assert list(accepted["version"]) == [v1, v2, v3, v4, v5, v6, v8, v3, v2]
    rejected = history[history["status"] == "rejected"]
    assert list(rejected["version"]) == [refused]
    assert rejected["error"].iloc[0].startswith("rules/d.yaml:3:11 rule typo: unknown field")
    assert set(history["author"]) == {"tester", author_name()}  # the CLI rollback: OS user
    assert active is not None and active["version"] == v2


def test_the_stream_keeps_flowing_while_a_candidate_is_checked(db_dsn: str, tmp_path: Path) -> None:
    # The candidate's checks are held until the stream has committed more batches: reload
    # work never runs on the pipeline's loop or between its batches.
    rules = RulesDir(tmp_path / "rules")
    rules.write("a.yaml", rule_text("base", 10))
    v1 = rules.expect(10)
    checking, release = threading.Event(), threading.Event()

    class HeldPublisher(Publisher):
        def _build(self, texts):
            checking.set()
            release.wait(timeout=60)
            return super()._build(texts)

    reload = HotReload(db_dsn, rules.path)
    reload.initial()
    reload.publisher.close()
    reload.publisher = HeldPublisher(db_dsn, rules.path, author="t", compiled=reload.compiled)
    reload.publisher.seen = v1
    run = Running(db_dsn, reload)
    try:
        rules.write("a.yaml", rule_text("base", 40))
        v2 = rules.expect(40)
        wait_for(checking.is_set, "the candidate check to start")
        batches = run.pipeline.stats.batches
        wait_for(lambda: run.pipeline.stats.batches >= batches + 5, "batches during the check")
        assert run.pipeline.detector.ruleset.version == v1
        release.set()
        run.wait_scoring(v2)
    finally:
        release.set()
        stats = run.stop()
    assert stats.duplicates == 0 and stats.dead == 0
    assert rows_of(db_dsn, v1) + rows_of(db_dsn, v2) == stats.stored


def test_start_with_a_refused_directory_keeps_the_last_good_rules(
    db_dsn: str, tmp_path: Path
) -> None:
    rules = RulesDir(tmp_path / "rules")
    rules.write("a.yaml", BAD)
    with pytest.raises(RuleError, match="amout"):  # nothing to fall back on
        HotReload(db_dsn, rules.path).initial()
    rules.write("a.yaml", rule_text("base", 10))
    good = HotReload(db_dsn, rules.path).initial()
    rules.write("a.yaml", BAD)
    assert HotReload(db_dsn, rules.path).initial().version == good.version
    # A worker without the directory (another machine) starts on the active version.
    assert HotReload(db_dsn, tmp_path / "elsewhere").initial().version == good.version
    with connect(db_dsn) as conn:
        statuses = list(rule_set_history(conn).sort_values("id")["status"])
    assert statuses == ["rejected", "accepted", "rejected"]


def test_a_restart_does_not_undo_a_rollback(db_dsn: str, tmp_path: Path) -> None:
    rules = RulesDir(tmp_path / "rules")
    rules.write("a.yaml", rule_text("base", 10))
    v1 = HotReload(db_dsn, rules.path).initial().version
    rules.write("a.yaml", rule_text("base", 20))
    v2 = HotReload(db_dsn, rules.path).initial().version
    assert rollback(db_dsn, v1, author="tester").version == v1
    assert HotReload(db_dsn, rules.path).initial().version == v1  # still rolled back
    rules.write("a.yaml", rule_text("base", 30))  # a new edit wins again
    v3 = HotReload(db_dsn, rules.path).initial().version
    assert len({v1, v2, v3}) == 3
    with pytest.raises(ConfigError, match="no accepted rule set"):
        rollback(db_dsn, "0123456789abcdef")
    out = cli(db_dsn, "rules", "rollback", "nope")
    assert out.returncode == 1 and out.stderr.strip().count("\n") == 0


def test_workers_watching_one_directory_record_each_attempt_once(
    db_dsn: str, tmp_path: Path
) -> None:
    rules = RulesDir(tmp_path / "rules")
    rules.write("a.yaml", rule_text("base", 10))
    publishers = [Publisher(db_dsn, rules.path, author="t") for _ in range(3)]
    assert [p.check() for p in publishers] == ["accepted"] * 3
    rules.write("a.yaml", BAD)
    assert [p.check() for p in publishers] == ["rejected"] * 3
    rules.write("a.yaml", rule_text("base", 10))  # back to the active version: recovered
    assert [p.check() for p in publishers] == ["accepted"] * 3
    assert [p.check() for p in publishers] == [None] * 3  # unchanged content: nothing to do
    for p in publishers:
        p.close()
    with connect(db_dsn) as conn:
        history = rule_set_history(conn).sort_values("id")
        audited = audit.recent(conn, 10).sort_values("id")
    assert list(history["status"]) == ["accepted", "rejected", "accepted"]
    # One audit row per recorded load, whichever worker recorded it: a file edited on disk.
    assert list(audited["outcome"]) == ["ok", "failed", "ok"]
    assert set(audited["actor"]) == {"files:t"} and set(audited["action"]) == {"rules.publish"}


def test_hostile_directories_are_refused_with_their_location_and_recorded_once(
    db_dsn: str, tmp_path: Path, caplog
) -> None:
    """Each refusal reaches rule_sets.error and the log as one located, bounded line; the
    last good rules stay active; the same refusal seen at the next rescan adds nothing."""
    rules = RulesDir(tmp_path / "rules")
    rules.write("a.yaml", rule_text("base", 10))
    publisher = Publisher(db_dsn, rules.path, author="t")
    assert publisher.check() == "accepted"
    with connect(db_dsn) as conn:
        good = active_rule_set(conn)["version"]
    outside = tmp_path / "outside.yaml"
    outside.write_text("secret: " + "S" * 5000 + "\n")
    hostile = [
        (
            "b.yaml",
            lambda p: p.write_text("# nothing here yet\n"),
            "rules/b.yaml: the file is empty",
        ),
        (
            "b.yaml",
            lambda p: p.write_bytes(b"rules:\n  - id: caf\xe9\n"),
            "rules/b.yaml:2:12: file is not UTF-8",
        ),
        ("b.yaml", lambda p: p.symlink_to(outside), "rules/b.yaml: the file is a symbolic link"),
        (
            "b.yaml",
            lambda p: p.write_text(
                "rules:\n  - id: '" + "S" * 100_000 + "'\n    when: amount > 1\n    score: 1\n"
            ),
            "rules/b.yaml:2:9: rule id 'SSS",
        ),
    ]
    caplog.set_level(logging.ERROR, logger="workbench.pipeline.reload")
    for name, make, expected in hostile:
        path = rules.path / name
        path.unlink(missing_ok=True)
        make(path)
        caplog.clear()
        assert publisher.check() == "rejected", expected
        assert publisher.check() is None  # a rescan finds the same refusal: nothing new
        with connect(db_dsn) as conn:
            newest = rule_set_history(conn).sort_values("id").iloc[-1]
            assert active_rule_set(conn)["version"] == good
        assert newest["status"] == "rejected"
        assert newest["error"].startswith(expected), newest["error"]
        assert "\n" not in newest["error"] and len(newest["error"]) < 700
        logged = [r.getMessage() for r in caplog.records]
        assert len(logged) == 1 and expected in logged[0] and "S" * 1000 not in logged[0]
    publisher.close()
