"""The README documents every setting exactly as declared, and every command and option."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from workbench.cli.main import build_parser
from workbench.settings import markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_settings_table_matches_declarations() -> None:
    assert markdown_table() in README.read_text(), (
        "README settings table is out of date: paste workbench.settings.markdown_table()"
    )


def test_readme_has_the_two_commands_ci_runs() -> None:
    text = README.read_text()
    assert "make up" in text and "make test" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci


def _leaf_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """``(command words, [option or metavar...])`` for every runnable command."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if subs:
        for name, child in subs[0].choices.items():
            yield from _leaf_commands(child, (*path, name))
        return
    words = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if action.option_strings:
            words.append(max(action.option_strings, key=len))
        else:
            words.append(action.metavar or action.dest.upper())
    yield path, words


def _command_rows() -> list[str]:
    text = README.read_text()
    section = text.split("\n## Command line\n", 1)[1].split("\n## ", 1)[0]
    return [line.split(" | ")[0] for line in section.splitlines() if line.startswith("| `")]


def _table_problems(parser: argparse.ArgumentParser) -> list[str]:
    rows = _command_rows()
    leaves = list(_leaf_commands(parser))
    assert len(leaves) >= 10, "the walk over the argparse tree found too few commands"
    problems = []
    for path, words in leaves:
        name = "workbench " + " ".join(path)
        found = [r for r in rows if re.match(rf"\| `{re.escape(name)}( |`)", r)]
        if not found:
            problems.append(f"no row for `{name}`")
            continue
        problems += [f"`{name}` row lacks {w}" for w in words if w not in found[0]]
    return problems


def test_readme_command_table_names_every_command_and_option() -> None:
    problems = _table_problems(build_parser())
    assert not problems, "README command table is out of date:\n" + "\n".join(problems)
    assert any(r.startswith("| `workbench --version") for r in _command_rows())


def test_readme_command_table_check_can_fail() -> None:
    """Guards the guard: a new option or command missing from the table is noticed."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.choices["init"].add_argument("--not-in-the-readme")
    sub.add_parser("nowhere")
    assert _table_problems(parser) == [
        "`workbench init` row lacks --not-in-the-readme",
        "no row for `workbench nowhere`",
    ]
