"""Every CLI argument is checked before the command does anything.

Each bad invocation runs in an empty directory with no database configured: had the command
gone on, it would have started an embedded PostgreSQL under ``.workbench/``, created
``rules/`` (``up``) or written its output. So the directory must still be empty afterwards,
the exit code must be 2 (usage error, from argparse) or 1 (one ``error:`` line), and no
traceback may reach the user.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workbench.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
RULES = str(ROOT / "rules")

USAGE, REFUSED = 2, 1
CASES = [
    (
        ["run", "--source", "nosuch"],
        REFUSED,
        "unknown source 'nosuch' (known: kafka, replay, simulator)",
    ),
    (["run", "--source", "replay"], REFUSED, "needs one file"),
    (["run", "--source", "replay", "gone.csv"], REFUSED, "file not found: gone.csv"),
    (["run", "--source", "replay", "data.txt"], REFUSED, "unsupported file type '.txt'"),
    (["run", "--source", "simulator", "x.csv"], REFUSED, "takes no file"),
    (["run", "--mapping", "handbook"], REFUSED, "--mapping applies to --source replay only"),
    (["run", "--rate", "0"], USAGE, "argument --rate: must be a positive number"),
    (["run", "--rate", "nan"], USAGE, "argument --rate: must be a positive number"),
    (["run", "--batch-rows", "0"], USAGE, "argument --batch-rows: must be at least 1"),
    (["run", "--batch-rows", "ten"], USAGE, "argument --batch-rows: expected a whole number"),
    (["run", "--duration", "-5"], USAGE, "argument --duration: must be a positive number"),
    (["run", "--rules", "{file}"], USAGE, "argument --rules: must be a directory"),
    (["up", "--rate", "-1"], USAGE, "argument --rate"),
    (["up", "--rules", "{file}"], USAGE, "argument --rules"),
    (["up", "--batch-rows", "-3"], USAGE, "argument --batch-rows"),
    (["backtest", RULES, "--k", "0"], USAGE, "argument --k/--cp-k: must be at least 1"),
    (["backtest", RULES, "--start", "yesterday-ish"], USAGE, "not an ISO 8601 time"),
    (
        ["backtest", RULES, "--start", "2026-02-01", "--end", "2026-01-01"],
        REFUSED,
        "empty time range",
    ),
    (["backtest", "{bad_rules}"], REFUSED, "unknown field 'amout'"),
    (["backtest", "no/such/rules"], REFUSED, "no/such/rules"),
    (["replay", "gone.parquet"], USAGE, "file not found: gone.parquet"),
    (["replay", "{csv}", "--batch-rows", "0"], USAGE, "argument --batch-rows"),
    (["replay", "{csv}", "--mapping", "nosuch-mapping"], REFUSED, "nosuch-mapping"),
    (["rules", "rollback", "latest"], REFUSED, "not a rule-set version"),
    (["simulate", "--out", "data.txt"], REFUSED, "--out must end in .csv or .parquet"),
    (["simulate", "--out", "no/dir/d.csv"], REFUSED, "no such directory"),
    (["simulate", "--out", "d.csv", "--rows", "0"], USAGE, "argument --rows"),
    (["simulate", "--out", "d.csv", "--speedup", "-1"], USAGE, "argument --speedup"),
    (["db", "reset"], REFUSED, "repeat with --yes"),
    (["init", "{file}"], REFUSED, "not a directory"),
]


@pytest.fixture
def empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, and no database configured (the embedded one would start)."""
    for name in list(os.environ):
        if name.startswith("PG") or name.startswith("WORKBENCH_"):
            monkeypatch.delenv(name)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize(("argv", "code", "message"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_arguments_are_refused_before_any_side_effect(
    argv: list[str], code: int, message: str, empty_dir: Path, tmp_path: Path, capsys
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a_file").write_text("not a directory\n")
    (outside / "data.csv").write_text("tx_id,ts,card_id,amount\n")
    (outside / "bad.yaml").write_text("rules:\n  - id: big\n    when: amout > 5\n    score: 1\n")
    names = {
        "{file}": str(outside / "a_file"),
        "{csv}": str(outside / "data.csv"),
        "{bad_rules}": str(outside / "bad.yaml"),
    }
    argv = [names.get(a, a) for a in argv]
    try:
        got = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        got = exc.code
    err = capsys.readouterr().err
    assert got == code, err
    assert message in err
    assert "Traceback" not in err
    if code == REFUSED:
        assert all(line.startswith("error: ") for line in err.strip().splitlines()), err
    assert list(empty_dir.iterdir()) == [], "the command did something before refusing"


def test_the_empty_directory_check_sees_a_side_effect(empty_dir: Path, capsys) -> None:
    """Guards the guard: a command that does act leaves something in the directory."""
    assert main(["init"]) == 0
    assert (empty_dir / "rules").is_dir() and (empty_dir / "notebooks").is_dir()


def test_init_copies_the_shipped_files_and_keeps_edits(empty_dir: Path, capsys) -> None:
    assert main(["init", "proj"]) == 0
    rules = empty_dir / "proj" / "rules" / "default.yaml"
    assert rules.read_bytes() == (ROOT / "rules" / "default.yaml").read_bytes()
    notebooks = sorted(p.name for p in (empty_dir / "proj" / "notebooks").iterdir())
    assert notebooks == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    rules.write_text("# my edit\n")
    assert main(["init", "proj"]) == 0
    assert rules.read_text() == "# my edit\n"
    assert "kept 1 existing" in capsys.readouterr().out
