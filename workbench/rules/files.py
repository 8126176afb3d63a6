"""Finding and reading rule files without trusting them: limits first, then strict UTF-8.

A rules directory is read in an order that makes every refusal cheap
(:mod:`~workbench.rules.limits`): the rule files are *counted* while the directory is listed,
before one is opened; their sizes come from ``os.stat`` before one is read; each read is
capped at the per-file limit in case a file grew in between. A symbolic link is followed
only when it resolves to a file inside the rules directory (a link to ``/etc/passwd`` or a
device would otherwise be read as rules); links between files of the directory are allowed
and read once. Bytes that are not UTF-8 are refused with the line and column of the first
bad byte, never replaced.

Files named explicitly (``workbench rules check a.yaml b.yaml``) are the caller's choice, so
a link among them is not checked; the count and size limits still apply.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from workbench.errors import RuleError, RuleSetError
from workbench.rules.limits import MAX_FILE_BYTES, MAX_FILES, MAX_TOTAL_BYTES, size

SUFFIXES = (".yaml", ".yml")
_SKIPPED_PREFIXES = (".", "#", "~")  # hidden files and editors' lock and backup files


def is_rule_file_name(name: str) -> bool:
    """True for a name the loader reads: ``*.yaml``/``*.yml``, not hidden, not an editor
    temporary. (Whether it is a regular file is checked separately.)"""
    return name.endswith(SUFFIXES) and not name.startswith(_SKIPPED_PREFIXES)


def read_rule_files(
    paths: str | Path | Sequence[str | Path],
) -> tuple[dict[str, str], list[RuleError]]:
    """``({display name: text}, problems)`` of the rule files of a directory (files directly
    inside, sorted) or an explicit list of files and directories.

    A problem of one file (too large, not UTF-8, a link leaving the directory, unreadable)
    is returned with the others, so a load can report them together with the parse errors
    of the other files. A problem that makes reading pointless raises RuleError at once:
    a path not found, a directory without rule files, more than ``MAX_FILES`` files, more
    than ``MAX_TOTAL_BYTES`` together.
    """
    found, problems = _discover(paths)
    sizes: dict[str, int] = {}
    for display, path in found:
        try:
            sizes[display] = path.stat().st_size
        except OSError as exc:
            problems.append(RuleError(f"cannot read file: {exc.strerror}", file=display))
    total = sum(sizes.values())
    if total > MAX_TOTAL_BYTES:
        raise RuleError(
            f"the rule files hold {total:,} bytes together, more than the limit of "
            f"{size(MAX_TOTAL_BYTES)}",
            file=_where(paths),
        )
    texts: dict[str, str] = {}
    for display, path in found:
        if display not in sizes:
            continue
        if sizes[display] > MAX_FILE_BYTES:
            problems.append(_too_large(display))
            continue
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)  # it may have grown since the stat
        except OSError as exc:
            problems.append(RuleError(f"cannot read file: {exc.strerror}", file=display))
            continue
        if len(data) > MAX_FILE_BYTES:
            problems.append(_too_large(display))
            continue
        try:
            texts[display] = decode(data)
        except RuleError as exc:
            problems.append(exc.located(file=display))
    return texts, problems


def read_directory(directory: str | Path) -> dict[str, str]:
    """``{display name: text}`` of a rules directory, named as :func:`read_rule_files`
    names them (so versions agree); raises RuleError (RuleSetError for several) on any
    problem."""
    texts, problems = read_rule_files(Path(directory))
    if problems:
        raise problems[0] if len(problems) == 1 else RuleSetError(problems)
    return texts


def decode(data: bytes) -> str:
    """``data`` as UTF-8 text, or a RuleError at the line and column of the first bad byte.

    >>> decode(b"rules:\\n  - id: caf\\xc3\\xa9\\xff")
    Traceback (most recent call last):
    ...
    workbench.errors.RuleError: file is not UTF-8 text: byte 0xff cannot be decoded (invalid start byte) (<rules>:2:13)
    """  # noqa: E501
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        col = len(data[line_start : exc.start].decode("utf-8")) + 1  # valid: before the 1st bad
        raise RuleError(
            f"file is not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded "
            f"({exc.reason})",
            line=line,
            col=col,
        ) from None


def _too_large(display: str) -> RuleError:
    return RuleError(f"file is larger than {size(MAX_FILE_BYTES)}", file=display, line=1, col=1)


def _where(paths: str | Path | Sequence[str | Path]) -> str:
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    return str(items[0]) if len(items) == 1 else ", ".join(map(str, items[:3])) + ", ..."


def _label(directory: Path) -> str:
    """The name shown for a directory: its own, or the resolved one for ``.``/``..``."""
    return directory.name if directory.name not in ("", ".", "..") else directory.resolve().name


def _discover(
    paths: str | Path | Sequence[str | Path],
) -> tuple[list[tuple[str, Path]], list[RuleError]]:
    """(display name, path to read) of every rule file, and per-file problems."""
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    found: list[tuple[str, Path]] = []  # (display, path to read)
    problems: list[RuleError] = []
    for item in map(Path, items):
        if item.is_dir():
            files, refused = _directory(item, MAX_FILES - len(found))
            found.extend(files)
            problems.extend(refused)
        elif item.is_file():
            parent = _label(item.parent) if item.parent != item else ""
            found.append((f"{parent}/{item.name}" if parent else item.name, item))
        else:
            raise RuleError(f"rule file or directory not found: '{item}'", file=str(item))
        if len(found) > MAX_FILES:
            raise RuleError(
                f"more than {MAX_FILES} rule files; a rule set holds at most {MAX_FILES}",
                file=str(item),
            )
    # The same file reached twice (a link, or named twice) is read once, under its first name.
    unique: dict[Path, tuple[str, Path]] = {}
    for display, path in found:
        unique.setdefault(path.resolve(), (display, path))
    names = [display for display, _ in unique.values()]
    if len(set(names)) < len(names):  # two directories of the same name: full paths
        return [(str(path), path) for _, path in unique.values()], problems
    return list(unique.values()), problems


def _directory(directory: Path, room: int) -> tuple[list[tuple[str, Path]], list[RuleError]]:
    """The rule files directly in ``directory``, sorted; raises RuleError as soon as more
    than ``room`` names are counted (nothing is opened or stat-ed before that)."""
    names: list[str] = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if not is_rule_file_name(entry.name):
                    continue
                names.append(entry.name)
                if len(names) > room:
                    raise RuleError(
                        f"more than {MAX_FILES} rule files in directory '{directory}'; a rule "
                        f"set holds at most {MAX_FILES}",
                        file=str(directory),
                    )
    except OSError as exc:
        raise RuleError(
            f"cannot read rules directory: {exc.strerror}", file=str(directory)
        ) from None
    root = directory.resolve()
    label = _label(directory)
    files: list[tuple[str, Path]] = []
    problems: list[RuleError] = []
    for name in sorted(names):
        path = directory / name
        display = f"{label}/{name}" if label else name
        if path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(root):
                problems.append(
                    RuleError(
                        "the file is a symbolic link that leads outside the rules directory "
                        f"(to '{target}'); link only to files inside it",
                        file=display,
                    )
                )
                continue
            path = target  # read what was checked, not whatever the link says later
        if path.is_file():
            files.append((display, path))
    if not files and not problems:
        raise RuleError(
            f"no rule files (*.yaml, *.yml) in directory '{directory}'", file=str(directory)
        )
    return files, problems
