"""The one-way import order of the package, checked on every module's source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "workbench"

# Lowest layer first; a module may import only from its own layer or lower ones.
LAYERS = [
    {"errors", "durations", "settings", "schema", "bands", "__init__"},
    {"auth"},
    {"sources"},
    {"features"},
    {"rules"},
    {"scoring"},
    {"storage"},
    {"alerts"},
    {"pipeline"},
    {"dashboard"},
    {"analysis"},
    {"cli", "__main__"},
]
HEAVY = ("panel", "bokeh", "holoviews", "hvplot", "sqlalchemy", "psycopg", "streamz")
CORE = [
    "workbench.schema",
    "workbench.sources",
    "workbench.features",
    "workbench.rules",
    "workbench.scoring",
]


def _layer(top: str) -> int:
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"workbench.{top} belongs to no layer: add it to LAYERS")


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _top(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imported_tops(path: Path) -> set[tuple[str, int]]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "workbench":  # only the names that are sub-modules
                names = [
                    f"workbench.{a.name}"
                    for a in node.names
                    if (PACKAGE / a.name).is_dir() or (PACKAGE / f"{a.name}.py").exists()
                ]
        for name in names:
            parts = name.split(".")
            if parts[0] == "workbench" and len(parts) > 1:
                found.add((parts[1], node.lineno))
    return found


def test_every_module_belongs_to_a_layer() -> None:
    for path in _modules():
        _layer(_top(path))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    own = _layer(_top(path))
    upward = [
        f"line {line}: workbench.{top}"
        for top, line in sorted(_imported_tops(path))
        if _layer(top) > own
    ]
    assert not upward, f"{path.name} imports a higher layer: {upward}"


def test_core_imports_no_ui_or_database_library() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE)
        + f"print(','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"the scoring core pulled in {out.stdout.strip()}"
