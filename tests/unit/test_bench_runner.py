"""``benchmarks/run_all.py``: figures gathered from scripts' output, one table, README rewrite.

The scripts here are fakes written into a temporary folder; nothing is timed.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def run_all(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("run_all")
    yield module
    sys.modules.pop("run_all", None)


def line(**record) -> str:
    return "BENCH-FIGURE " + json.dumps(record)


def test_collect_keeps_only_figure_lines(run_all) -> None:
    output = "\n".join(
        [
            "a readable report line",
            line(bench="b", name="rate", value=1234.5, unit="rows/s", anchor="raw", ratio=0.61),
            "BENCH-FIGURE {not json",
            line(bench="b", name="p99", value=42.0, unit="ms", anchor=None, ratio=None),
        ]
    )
    run = run_all.collect("bench_x", output, 0, 3.21, "")
    assert run.status == "ok"
    assert [f["name"] for f in run.figures] == ["rate", "p99"]
    assert run.seconds == 3.2


@pytest.mark.parametrize(
    ("returncode", "errors", "output", "status"),
    [
        (None, "", "", "timed out after 180 s"),
        (2, "usage: x\nx: error: unrecognized arguments: --quick\n", "", "no --quick"),
        (
            1,
            "Traceback ...\nRuntimeError: no broker\n\n",
            "",
            "failed (exit 1): RuntimeError: no broker",
        ),
        (0, "", "only prose\n", "no figure printed"),
    ],
)
def test_collect_says_why_there_is_no_result(run_all, returncode, errors, output, status) -> None:
    assert run_all.collect("bench_x", output, returncode, 180.0, errors).status == status


def test_a_failed_script_keeps_the_figures_it_printed(run_all) -> None:
    output = line(name="first", value=1.0, unit="s")
    run = run_all.collect("bench_x", output, 1, 5.0, "boom")
    assert run.status == "failed (exit 1): boom" and len(run.figures) == 1


def test_table_has_a_row_per_figure_and_per_problem(run_all) -> None:
    runs = [
        run_all.Run(
            "bench_a",
            "ok",
            1.0,
            [
                {
                    "name": "rate",
                    "value": 1_234_567.0,
                    "unit": "rows/s",
                    "anchor": "raw COPY",
                    "ratio": 0.6123,
                },
                {"name": "a|b", "value": 0.01234, "unit": "s", "anchor": None, "ratio": None},
            ],
        ),
        run_all.Run("bench_b", "no --quick", 1.0, []),
    ]
    lines = run_all.table(runs).splitlines()
    assert lines[0] == "| bench | figure | value | unit | anchor | ratio |"
    assert lines[2] == "| bench_a | rate | 1,230,000 | rows/s | raw COPY | 0.612 |"
    assert lines[3] == "| bench_a | a\\|b | 0.0123 | s |  |  |"
    assert lines[4] == "| bench_b | (no --quick) |  |  |  |  |"
    assert len(lines) == 5


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (0, "0"),
        (0.61, "0.61"),
        (12.345, "12.3"),
        (999.6, "1,000"),
        (-2.5e6, "-2,500,000"),
    ],
)
def test_numbers_have_three_significant_figures(run_all, value, text) -> None:
    assert run_all._number(value) == text


README = """# Title

## Benchmarks

First paragraph.

<!-- bench-table:start -->
old table
<!-- bench-table:end -->

The full runs.
"""


def test_rewrite_readme_replaces_only_between_the_markers(run_all) -> None:
    once = run_all.rewrite_readme(README, "| new |\n\nMachine: x\n")
    assert "old table" not in once
    assert once.startswith("# Title\n\n## Benchmarks\n\nFirst paragraph.\n\n")
    assert "<!-- bench-table:start -->\n| new |\n\nMachine: x\n<!-- bench-table:end -->" in once
    assert once.endswith("<!-- bench-table:end -->\n\nThe full runs.\n")
    assert run_all.rewrite_readme(once, "| new |\n\nMachine: x") == once


def test_rewrite_readme_without_markers_is_an_error(run_all) -> None:
    with pytest.raises(ValueError, match="markers"):
        run_all.rewrite_readme("# no markers\n", "| t |")


def test_the_project_readme_has_the_markers(run_all) -> None:
    text = (BENCHMARKS.parent / "README.md").read_text()
    section = text.split("\n## Benchmarks\n", 1)[1].split("\n## ", 1)[0]
    assert section.count(run_all.START) == 1 and section.count(run_all.END) == 1
    assert section.index(run_all.START) < section.index(run_all.END)


def test_select_only_and_skip(run_all) -> None:
    names = ["bench_a", "bench_b", "bench_c"]
    assert run_all.select(names, None, None) == names
    assert run_all.select(names, ["bench_c", "benchmarks/bench_a.py"], None) == [
        "bench_a",
        "bench_c",
    ]
    assert run_all.select(names, None, ["bench_b"]) == ["bench_a", "bench_c"]
    with pytest.raises(SystemExit, match="bench_z"):
        run_all.select(names, ["bench_z"], None)


FAKES = {
    "bench_ok": """
        import argparse
        from _report import figure
        parser = argparse.ArgumentParser()
        parser.add_argument("--quick", action="store_true")
        assert parser.parse_args().quick
        print("prose")
        figure("rate", 2.5e6, "rows/s", anchor="raw COPY", ratio=0.7)
    """,
    "bench_old": """
        import argparse
        argparse.ArgumentParser().parse_args()
    """,
    "bench_slow": """
        import time
        time.sleep(60)
    """,
}


@pytest.fixture
def fake_benchmarks(run_all, tmp_path, monkeypatch):
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    shutil.copy(BENCHMARKS / "_report.py", folder)
    for name, code in FAKES.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(code))
    (folder / "helper_not_a_bench.py").write_text("raise SystemExit(1)\n")
    monkeypatch.setattr(run_all, "HERE", folder)
    monkeypatch.setattr(run_all, "_postgres_version", lambda dsn: "16.0 (fake)")
    return folder


def test_main_runs_every_script_and_writes_json_and_readme(
    run_all, fake_benchmarks, tmp_path, capsys
) -> None:
    readme, figures = tmp_path / "README.md", tmp_path / "figures.json"
    readme.write_text(README)
    argv = ["--timeout", "1", "--json", str(figures), "--readme", str(readme)]
    assert run_all.main(argv) == 0
    out = capsys.readouterr().out
    assert "prose" not in out  # only progress lines and the table are shown
    assert "| bench_ok | rate | 2,500,000 | rows/s | raw COPY | 0.7 |" in out
    assert "| bench_old | (no --quick) |" in out
    assert "| bench_slow | (timed out after 1 s) |" in out
    assert "helper_not_a_bench" not in out
    assert "PostgreSQL 16.0 (fake)" in out and "Load average" in out

    data = json.loads(figures.read_text())
    assert [r["bench"] for r in data["runs"]] == ["bench_ok", "bench_old", "bench_slow"]
    assert data["runs"][0]["figures"][0]["value"] == 2.5e6
    written = readme.read_text()
    assert "old table" not in written and "| bench_ok | rate |" in written
    assert written.endswith("<!-- bench-table:end -->\n\nThe full runs.\n")


def test_main_only_runs_the_named_scripts(run_all, fake_benchmarks, capsys) -> None:
    assert run_all.main(["--only", "bench_ok"]) == 0
    out = capsys.readouterr().out
    assert "bench_ok" in out and "bench_old" not in out and "bench_slow" not in out
