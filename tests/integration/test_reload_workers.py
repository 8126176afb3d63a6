"""Two real worker processes (``workbench run``) switch to the same rule-set version.

Worker ``a`` has the rules directory and watches it; worker ``b`` has none (as on a machine
that does not share the filesystem) and only follows the database. Their batch summaries
(``LISTEN workbench_batches``) say which version scored each batch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.rules import version_of
from workbench.storage import BatchSummary, Listener, connect
from workbench.storage.rule_sets import active as active_rule_set

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def rule_file(points: float) -> str:
    return f"rules:\n  - id: base\n    when: amount >= 0\n    score: {points}\n"


def start_worker(dsn: str, name: str, rules: Path, seed: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "WORKBENCH_DATABASE_URL": dsn,
        "WORKBENCH_WORKER_ID": name,
        "WORKBENCH_SEED": str(seed),
        "WORKBENCH_SIM_CUSTOMERS": "500",
        "WORKBENCH_SIM_TERMINALS": "200",
    }
    args = ["--rules", str(rules), "--rate", "1000", "--batch-rows", "100", "--duration", "240"]
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "workbench", "run", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


class Summaries:
    """Per worker, the rule-set versions of its batches, in commit order."""

    def __init__(self, dsn: str) -> None:
        self.listener = Listener(dsn)
        self.versions: dict[str, list[str]] = {}

    def wait(self, condition, what: str, procs, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self.versions):
            for proc in procs:
                assert proc.poll() is None, f"a worker exited early ({what})"
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {self.tail()}")
            for payload in self.listener.poll(timeout=0.2, limit=100):
                body = BatchSummary.from_payload(payload)
                self.versions.setdefault(body.worker, []).append(body.rule_set_version)

    def tail(self) -> dict[str, list[str]]:
        return {k: v[-3:] for k, v in self.versions.items()}


def test_two_worker_processes_switch_to_the_same_version(db_dsn: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text(rule_file(10))
    v1 = version_of({"rules/a.yaml": rule_file(10)})
    summaries = Summaries(db_dsn)
    procs = [start_worker(db_dsn, "a", rules, 1, tmp_path / "a.log")]
    try:
        with connect(db_dsn) as conn:  # b needs an accepted version to start from
            deadline = time.monotonic() + 90
            while active_rule_set(conn) is None:
                assert time.monotonic() < deadline and procs[0].poll() is None
                time.sleep(0.1)
        procs.append(start_worker(db_dsn, "b", tmp_path / "absent", 2, tmp_path / "b.log"))

        def both_on(version):
            return lambda seen: all(seen.get(w, [None])[-1] == version for w in "ab")

        summaries.wait(both_on(v1), f"both workers on {v1}", procs)
        (rules / "a.yaml").write_text(rule_file(25))
        v2 = version_of({"rules/a.yaml": rule_file(25)})
        summaries.wait(both_on(v2), f"both workers on {v2}", procs)
        (rules / "a.yaml").write_text(rule_file(40))
        v3 = version_of({"rules/a.yaml": rule_file(40)})
        summaries.wait(both_on(v3), f"both workers on {v3}", procs)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        codes = [proc.wait(timeout=60) for proc in procs]
        summaries.listener.close()
    logs = {p.name: p.read_text()[-2000:] for p in tmp_path.glob("*.log")}
    assert codes == [0, 0], logs
    # Each worker went through the versions in order, never back.
    order = {v1: 0, v2: 1, v3: 2}
    for worker in "ab":
        ranks = [order[v] for v in summaries.versions[worker]]
        assert ranks == sorted(ranks), worker
    # Every stored row carries the version whose rules gave its score, in both workers.
    points = {v1: 10.0, v2: 25.0, v3: 40.0}
    with connect(db_dsn) as conn:
        found = conn.execute(
            "SELECT rule_set_version, risk_score, count(*) FROM transactions GROUP BY 1, 2"
        ).fetchall()
        accepted = conn.execute(
            "SELECT version FROM rule_sets WHERE status = 'accepted' ORDER BY id"
        ).fetchall()
    assert {(v, points[v]) for v, _score, _n in found} == {(v, s) for v, s, _n in found}
    assert {v for v, _s, _n in found} == {v1, v2, v3}
    assert [v for (v,) in accepted] == [v1, v2, v3]  # recorded once each
