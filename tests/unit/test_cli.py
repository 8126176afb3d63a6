"""The command line as a user meets it: exit codes and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from workbench.sources.replay import ReplaySource

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_rules_check_accepts_the_default_rules() -> None:
    out = cli("rules", "check", str(ROOT / "rules"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok: ") and "examples passed" in out.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rules:\n  - id: big\n    when: amout > 5\n    score: 10\n",
            ["unknown field 'amout'", "in rule 'big'", "bad.yaml:3:11", "did you mean 'amount'"],
        ),
        (
            "rules:\n  - id: sneaky\n    when: __import__('os')\n    score: 1\n",
            ["sneaky", "bad.yaml:3"],
        ),
        ("rules:\n  - id: x\n    when: amount.__class__ > 1\n    score: 1\n", ["bad.yaml:3"]),
        ("rules: !!python/object/apply:os.system ['echo hacked']\n", ["bad.yaml:1"]),
        ("rules:\n  - id: lbl\n    when: is_fraud\n    score: 1\n", ["label", "bad.yaml:3"]),
        (
            "rules:\n  - id: ex\n    when: amount > 100\n    score: 1\n"
            "    examples: {match: [{amount: 5}]}\n",
            ["ex", "match"],
        ),
        ("rules: [\n", ["bad.yaml:"]),
    ],
)
def test_rules_check_refuses_with_located_lines(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    out = cli("rules", "check", str(tmp_path / "bad.yaml"))
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "hacked" not in out.stdout
    lines = out.stderr.strip().splitlines()
    assert lines and all(line.startswith("error: ") for line in lines)
    for fragment in expected:
        assert any(fragment in line for line in lines), (fragment, out.stderr)


def test_rules_check_reports_every_error_one_per_line(tmp_path: Path) -> None:
    (tmp_path / "two.yaml").write_text(
        "rules:\n  - id: a\n    when: amout > 5\n    score: 10\n"
        "  - id: b\n    when: hourr > 5\n    score: 10\n"
    )
    out = cli("rules", "check", str(tmp_path))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 2
    assert "two.yaml:3" in lines[0] and "two.yaml:6" in lines[1]


def test_simulate_writes_a_dataset_that_replays(tmp_path: Path) -> None:
    out = cli("simulate", "--rows", "3000", "--seed", "5", "--out", str(tmp_path / "d.parquet"))
    assert out.returncode == 0, out.stderr
    assert "wrote 3000 transactions" in out.stdout
    source = ReplaySource(tmp_path / "d.parquet", batch_rows=1000)
    frames = []
    while (batch := source.next_batch()) is not None:
        assert len(batch.dead) == 0
        frames.append(batch.frame)
    source.close()
    data = pd.concat(frames)
    assert len(data) == 3000 and data["tx_id"].is_unique


def test_bad_setting_is_one_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "workbench", "rules", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"WORKBENCH_RATE": "fast", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 1
    assert out.stderr.strip() == "error: invalid value 'fast' for WORKBENCH_RATE: expected float"
