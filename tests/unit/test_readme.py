"""The README documents every setting exactly as declared."""

from __future__ import annotations

from pathlib import Path

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
