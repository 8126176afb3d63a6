"""Rule publication from the dashboard: propose (a diff to read), then publish what was shown.

A publication is two steps so that the analyst confirms exactly what goes live:

1. :func:`propose_publish` / :func:`propose_rollback` build a :class:`Proposal` — the
   candidate's files and version, the active version it replaces and the unified diff
   between the two — and change nothing;
2. :func:`publish` / :func:`rollback` carry out that proposal, and only if it is still true:
   under the publication lock (:func:`~workbench.storage.rule_sets.publish`) the active
   version must still be the one the diff started from and, for an edit, the rules directory
   must still hold what was read when proposing. Otherwise :class:`StaleProposal` is raised
   and nothing is written, so a diff that no longer describes the change cannot be confirmed.

Both take the caller's ``on_record(conn, row_id)`` hook, run in the publication's own
transaction (the audit row: :mod:`workbench.dashboard.actions`). The dry run reads recent
transactions, the maintained lists and the snoozes with the reader's store (and the list
files of the rules directory, as the workers do); the publication itself uses the
publisher's (the rule publisher database role may write ``rule_sets`` but not read
transactions).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError, RuleError, WorkbenchError
from workbench.pipeline import reload
from workbench.pipeline.lists import LISTS_DIR
from workbench.pipeline.reload import dry_run, read_directory
from workbench.rules import parse_rules
from workbench.rules.limits import clip
from workbench.storage import Store, rule_sets

__all__ = [
    "Proposal",
    "StaleProposal",
    "propose_publish",
    "propose_rollback",
    "publish",
    "rollback",
    "unified_diff",
    "write_atomically",
]

OnRecord = Callable[[Any, int], None]


class StaleProposal(WorkbenchError):
    """The rules changed after the diff was shown: nothing was written; review again."""


@dataclass(frozen=True)
class Proposal:
    """A change shown to the user before it is made: ``active`` -> ``version`` as ``diff``.

    ``kind`` is ``publish`` (file ``name`` of rules directory ``directory`` replaced by
    ``text``; ``base`` is the directory as read when proposing) or ``rollback``.
    """

    kind: str
    version: str
    texts: dict[str, str]
    active: str | None
    diff: str
    name: str | None = None
    text: str | None = None
    directory: str = ""
    base: dict[str, str] = field(default_factory=dict)

    @property
    def files(self) -> list[str]:
        return sorted(self.texts)


def propose_publish(store: Store, rules_dir: Path, name: str, text: str) -> Proposal:
    """The rules directory with file ``name`` replaced by ``text``, checked like a load
    (RuleError with every problem), and its diff from the active version."""
    path = rules_dir / Path(name).name
    if not rules_dir.is_dir():
        raise RuleError(f"rules directory not found: '{rules_dir}'", file=str(rules_dir))
    base = read_directory(rules_dir)
    texts = {**base, f"{rules_dir.name}/{path.name}": text}
    ruleset = parse_rules(texts)
    active = store.rule_sets.active()
    return _proposal(
        "publish",
        ruleset.version,
        texts,
        active,
        name=name,
        text=text,
        directory=str(rules_dir),
        base=base,
    )


def propose_rollback(store: Store, version: str) -> Proposal:
    """Rolling back to the accepted ``version`` (ConfigError when none has it; RuleError
    when its files no longer pass the checks), and its diff from the active version."""
    files = store.rule_sets.files(version)
    if files is None:
        raise ConfigError(f"no accepted rule set has version {clip(version, 80)!r}")
    parse_rules(files)
    return _proposal("rollback", version, files, store.rule_sets.active())


def _proposal(kind: str, version: str, texts: dict[str, str], active, **extra) -> Proposal:
    before = {} if active is None else active["files"]
    current = None if active is None else active["version"]
    diff = unified_diff(before, texts, f"active {current or '(none)'}", f"{kind} {version}")
    return Proposal(kind, version, texts, current, diff, **extra)


def publish(
    proposal: Proposal, reader: Store, publisher: Store, *, author: str, on_record: OnRecord
) -> bool:
    """Write the proposal's file and record its version as accepted, both under the lock and
    only while the proposal is current (else :class:`StaleProposal`). True when a
    ``rule_sets`` row was written (and ``on_record`` ran), False when the version was the
    newest accepted one already (only the file was written)."""
    assert proposal.kind == "publish" and proposal.name is not None
    path = _path(proposal)
    ruleset = parse_rules(proposal.texts)
    with reader.raw() as conn:
        try:
            dry_run(ruleset, conn, lists_dir=Path(proposal.directory) / LISTS_DIR)
        except WorkbenchError:
            raise
        except Exception as exc:  # the candidate cannot score real data
            raise RuleError(
                f"dry run on recent transactions failed: {type(exc).__name__}: {clip(exc)}",
                file=proposal.name,
            ) from exc
    stale: list[str] = []
    written = False

    def still_current(conn) -> bool:
        nonlocal written
        if not _current(proposal, conn, stale):
            return False
        write_atomically(path, proposal.text or "")
        written = True
        return True

    try:
        with publisher.raw() as conn:
            recorded = rule_sets.publish(
                conn,
                proposal.version,
                proposal.texts,
                author,
                "accepted",
                still_current=lambda: still_current(conn),
                on_record=on_record,
            )
    except BaseException:
        if written:  # the row (or its audit row) was not committed: nor is the file
            _restore(proposal, path)
        raise
    if stale:
        raise StaleProposal(stale[0])
    if recorded is None and not written:
        # Already the newest accepted version (e.g. after a rollback to it): only the file
        # is missing; the watcher then finds nothing new to record.
        if read_directory(path.parent) != proposal.base:
            raise StaleProposal("the rules directory changed since the diff was shown")
        write_atomically(path, proposal.text or "")
    return recorded is not None


def rollback(proposal: Proposal, publisher_dsn: str, *, author: str, on_record: OnRecord) -> bool:
    """Make the proposal's version active again if the active version is still the one its
    diff started from (else :class:`StaleProposal`); False when it was active already."""
    assert proposal.kind == "rollback"
    stale: list[str] = []
    recorded = False

    def hook(conn, row_id: int) -> None:
        nonlocal recorded
        on_record(conn, row_id)
        recorded = True

    reload.rollback(
        publisher_dsn,
        proposal.version,
        author=author,
        still_current=lambda conn: _current(proposal, conn, stale),
        on_record=hook,
    )
    if stale:
        raise StaleProposal(stale[0])
    return recorded


def _restore(proposal: Proposal, path: Path) -> None:
    """Put the file back as it was when proposed (removed when it did not exist)."""
    old = proposal.base.get(f"{path.parent.name}/{path.name}")
    if old is None:
        path.unlink(missing_ok=True)
    else:
        write_atomically(path, old)


def _path(proposal: Proposal) -> Path:
    assert proposal.name is not None
    return Path(proposal.directory) / Path(proposal.name).name


def _current(proposal: Proposal, conn, stale: list[str]) -> bool:
    """Whether ``proposal`` still describes the change (called under the publication lock)."""
    active = rule_sets.active(conn)
    if (None if active is None else active["version"]) != proposal.active:
        stale.append(
            "the active rule set changed since the diff was shown (now "
            f"{active['version'] if active else 'none'}): review the new diff"
        )
        return False
    if proposal.kind == "publish" and read_directory(proposal.directory) != proposal.base:
        stale.append("the rules directory changed since the diff was shown: review again")
        return False
    return True


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step: a hidden temporary file in the same
    directory (ignored by the watcher), flushed to disk, then ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def unified_diff(before: dict[str, str], after: dict[str, str], a: str, b: str) -> str:
    """Unified diff of two rule sets' files, file by file (added and removed files too)."""
    out: list[str] = []
    for name in sorted(set(before) | set(after)):
        out.extend(
            difflib.unified_diff(
                before.get(name, "").splitlines(keepends=True),
                after.get(name, "").splitlines(keepends=True),
                fromfile=f"{a}: {name}",
                tofile=f"{b}: {name}",
            )
        )
    return "".join(line if line.endswith("\n") else line + "\n" for line in out).rstrip("\n")
