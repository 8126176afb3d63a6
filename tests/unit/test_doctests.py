"""The examples in module docstrings are run, so the documentation cannot drift from the code."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "workbench"


def _modules_with_examples() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if ">>> " in path.read_text(encoding="utf-8"):
            rel = path.relative_to(PACKAGE.parent).with_suffix("")
            names.append(".".join(p for p in rel.parts if p != "__init__"))
    return names


MODULES = _modules_with_examples()


def test_the_examples_are_found() -> None:
    assert "workbench.bands" in MODULES and len(MODULES) >= 10


@pytest.mark.parametrize("name", MODULES)
def test_module_examples_pass(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
