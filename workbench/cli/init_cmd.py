"""``workbench init [DIRECTORY]``: editable copies of the default rules and the notebooks.

The wheel ships them inside the package (``workbench/_data/``, copied there at build time from
the repository's ``rules/`` and ``notebooks/`` by ``setup.py``); a source checkout or an
editable install reads the repository's own directories. Analysts edit rules as files in a
directory the worker watches, so the shipped ones are copied out, never used in place.
``workbench up`` does the same on its first run in a directory whose rules directory is
missing. Existing files are never overwritten.
"""

from __future__ import annotations

import argparse
import shutil
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from workbench.errors import ConfigError
from workbench.settings import Settings

# (shipped directory, file pattern)
RULES = ("rules", "*.yaml")
NOTEBOOKS = ("notebooks", "*.ipynb")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "init",
        help="Copy the default rules and the notebooks into a directory (never overwrites).",
        description="Create DIRECTORY/rules and DIRECTORY/notebooks from the copies shipped "
        "with the package, so that `workbench up` there has rules to watch and edit.",
    )
    p.add_argument("directory", nargs="?", default=".", metavar="DIRECTORY", help="Default: here.")
    p.set_defaults(run=run, check=check)


def check(args: argparse.Namespace) -> None:
    if Path(args.directory).exists() and not Path(args.directory).is_dir():
        raise ConfigError(f"not a directory: {args.directory}")


def run(args: argparse.Namespace, settings: Settings) -> int:
    root = Path(args.directory)
    copied = init_project(root / RULES[0], root / NOTEBOOKS[0])
    for line in copied:
        print(line)
    print(f"next: cd {root} && workbench up" if args.directory != "." else "next: workbench up")
    return 0


def init_project(rules_dir: Path, notebooks_dir: Path) -> list[str]:
    """Copy the shipped rules into ``rules_dir`` and notebooks into ``notebooks_dir``; files
    already there are kept. Returns one line per directory saying what happened."""
    return [
        _copy(shipped(RULES), Path(rules_dir), RULES[1]),
        _copy(shipped(NOTEBOOKS), Path(notebooks_dir), NOTEBOOKS[1]),
    ]


def shipped(kind: tuple[str, str]) -> Traversable:
    """The shipped directory ``kind`` (rules or notebooks) of this installation."""
    name, pattern = kind
    packaged = files("workbench") / "_data" / name
    if packaged.is_dir():
        return packaged
    # A source checkout or an editable install: the repository's own directory.
    checkout = Path(__file__).resolve().parents[2] / name
    if checkout.is_dir() and any(checkout.glob(pattern)):
        return checkout
    raise ConfigError(
        f"this installation of workbench ships no default {name} (looked in {packaged} and "
        f"{checkout}): reinstall it from a wheel built by `pip wheel .`"
    )


def _copy(source: Traversable, target: Path, pattern: str) -> str:
    wanted = sorted(
        (f for f in source.iterdir() if f.is_file() and Path(f.name).match(pattern)),
        key=lambda f: f.name,
    )
    try:
        target.mkdir(parents=True, exist_ok=True)
        new = []
        for item in wanted:
            path = target / item.name
            if path.exists():
                continue
            with item.open("rb") as src, open(path, "xb") as dst:
                shutil.copyfileobj(src, dst)
            new.append(item.name)
    except OSError as exc:
        raise ConfigError(f"cannot write {target}: {exc.strerror or exc}") from None
    kept = len(wanted) - len(new)
    return (
        f"{target}/: copied {len(new)} file(s)"
        + (f" ({', '.join(new)})" if new else "")
        + (f"; kept {kept} existing" if kept else "")
    )
