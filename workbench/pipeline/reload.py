"""Rule hot reload across running workers: publish from the rules directory, follow the database.

Two halves, both in background threads of the worker, never on its event loop:

- **Publish** (:class:`Publisher`, in workers that have the rules directory): a
  :class:`~workbench.pipeline.watch.DirectoryWatcher` notices a change; the files are read and
  hashed (an unchanged hash stops here); the candidate is parsed, validated, compiled, its
  rules' examples run (:func:`~workbench.rules.parse_rules`) and it is dry-run on the newest
  stored transactions. The outcome is recorded in ``rule_sets`` — accepted (and announced with
  ``NOTIFY workbench_rules``) or rejected with one ``file:line:col rule id: message`` line per
  error, which is also logged. A row is written once however many workers watch the same
  directory: nothing is written when the newest row already says the same. Each row comes
  with its audit row in the same transaction (action ``rules.publish``, actor
  ``files:<os user>``, provider ``pipeline``, outcome ``ok`` or ``failed``).
- **Follow** (:class:`Follower`, in every worker): ``LISTEN workbench_rules``; on a
  notification (and every :data:`RESYNC_S`, for notifications lost while reconnecting) the
  active version — the newest accepted row — is read, its files compiled and handed to the
  pipeline, which swaps between batches. A worker that publishes applies its own version
  the same way, so every worker, with or without the directory, converges on one version.

At start (:meth:`HotReload.initial`) the directory is published like an edit, unless its
version was accepted before and is no longer active (a rollback, which a restart must not
undo); the worker then starts on the active version. A worker without the directory only
follows. :func:`rollback` re-activates an earlier accepted version by appending a new
accepted row with its files, so the history stays append-only.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import schema
from workbench.errors import ConfigError, RuleError, RuleSetError, StorageError
from workbench.pipeline.lists import LISTS_DIR, build_overlay
from workbench.pipeline.watch import DirectoryWatcher
from workbench.rules import RuleSet, parse_rules, version_of
from workbench.rules.files import read_directory
from workbench.rules.limits import MAX_ERRORS, MAX_MESSAGE, clip
from workbench.scoring.evaluate import evaluate
from workbench.scoring.overlay import Overlay
from workbench.storage import Listener, audit, connect, rule_sets, shadow, transactions

log = logging.getLogger(__name__)

DRY_RUN_ROWS = 500  # newest stored transactions a candidate is scored on before acceptance
RESYNC_S = 5.0  # a follower re-reads the active version this often, notification or not
BACKOFF_MAX_S = 10.0

__all__ = [  # read_directory is re-exported: the editor reads the directory like a worker
    "DryRun",
    "Follower",
    "HotReload",
    "Publisher",
    "author_name",
    "dry_run",
    "error_lines",
    "read_directory",
    "rollback",
    "status",
]


def author_name() -> str:
    """The OS user, or ``anonymous`` (until the workbench has authentication)."""
    try:
        import getpass

        return getpass.getuser() or "anonymous"
    except Exception:  # no user name (a container without a passwd entry)
        return "anonymous"


def error_lines(exc: RuleError) -> str:
    """One ``file:line:col rule <id>: message`` line per problem of a failed load.

    This text is logged, stored in ``rule_sets.error`` and shown by the CLI and the
    dashboard, so each line is bounded (:func:`~workbench.rules.limits.clip`) and at most
    :data:`~workbench.rules.limits.MAX_ERRORS` are listed: a message never carries a file's
    content beyond the offending value, whoever built the error.
    """
    problems = exc.errors if isinstance(exc, RuleSetError) else [exc]
    lines = []
    for e in problems[:MAX_ERRORS]:
        rule = f" rule {e.rule_id}" if e.rule_id else ""
        hint = f" — did you mean '{clip(e.suggestion, 80)}'?" if e.suggestion else ""
        lines.append(
            clip(f"{e.location}{rule}: {e.message}{hint}", 2 * MAX_MESSAGE)
        )  # location + message
    if len(problems) > MAX_ERRORS:
        lines.append(f"... and {len(problems) - MAX_ERRORS} more problem(s) not shown")
    return "\n".join(lines)


@dataclass
class DryRun:
    """A candidate scored on recent stored transactions: how many, how many change band,
    how many it puts in High, how many hits the snoozes in force hid, and rule-evaluation
    error counts."""

    rows: int = 0
    band_changes: int = 0
    high: int = 0
    snoozed: int = 0
    eval_errors: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        if not self.rows:
            return "dry run skipped (no stored transactions yet)"
        errors = f", evaluation errors {self.eval_errors}" if self.eval_errors else ""
        snoozed = f", {self.snoozed:,} hits snoozed" if self.snoozed else ""
        return (
            f"dry run on {self.rows:,} recent transactions: {self.band_changes:,} change band, "
            f"{self.high:,} High{snoozed}{errors}"
        )


def dry_run(
    ruleset: RuleSet,
    conn: Any,
    rows: int = DRY_RUN_ROWS,
    *,
    overlay: Overlay | None = None,
    lists_dir: str | Path | None = None,
) -> DryRun:
    """Score the newest ``rows`` stored transactions with ``ruleset`` (features computed on
    that sample alone) and the lists and snoozes in force — ``overlay``, else the database's
    and the list files of ``lists_dir`` read now, as a worker reads them
    (:func:`~workbench.pipeline.lists.build_overlay`); raises whatever scoring raises."""
    recent = transactions.recent_batch(conn, limit=rows)
    if not len(recent):
        return DryRun()
    if overlay is None:
        overlay = build_overlay(conn, lists_dir)
    batch = recent[list(schema.NAMES)]
    done = evaluate(ruleset, batch, overlay=overlay)
    band = done.scores["band"].to_numpy()
    return DryRun(
        rows=len(batch),
        band_changes=int((band != recent["band"].to_numpy()).sum()),
        high=int((band == "High").sum()),
        snoozed=done.snoozed,
        eval_errors=dict(done.eval_errors),
    )


class _Compiled:
    """Rule sets compiled by this process, by version (a follower reuses the publisher's)."""

    def __init__(self, size: int = 8) -> None:
        self._items: OrderedDict[str, RuleSet] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def put(self, ruleset: RuleSet) -> None:
        with self._lock:
            self._items[ruleset.version] = ruleset
            self._items.move_to_end(ruleset.version)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get(self, version: str, files: dict[str, str]) -> RuleSet:
        with self._lock:
            found = self._items.get(version)
        if found is None:
            found = parse_rules(files)
            self.put(found)
        return found


class Publisher:
    """Checks the rules directory and records (and announces) the outcome in ``rule_sets``."""

    def __init__(
        self,
        dsn: str,
        directory: str | Path,
        *,
        author: str,
        compiled: _Compiled | None = None,
        dry_run_rows: int = DRY_RUN_ROWS,
    ) -> None:
        self.dsn = dsn
        self.directory = Path(directory)
        self.author = author
        self.compiled = compiled or _Compiled()
        self.dry_run_rows = dry_run_rows
        self.seen: str | None = None  # version of the directory last checked to the end
        self.last_error: RuleError | None = None  # why the directory was refused last
        self._conn = None
        self._lock = threading.Lock()

    def _connection(self):
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.dsn)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def check(self, *, startup: bool = False) -> str | None:
        """Check the directory if its content changed; the outcome recorded (``accepted``,
        ``rejected``), ``kept`` (startup: a version rolled back from), or None (nothing new)."""
        with self._lock:
            try:
                return self._check(startup)
            except StorageError:
                self.close()  # retried at the next change or rescan (self.seen not set)
                raise

    def _check(self, startup: bool) -> str | None:
        log.debug("rules: checking %s", self.directory)
        try:
            texts = read_directory(self.directory)
        except RuleError as exc:
            # Nothing was read (over a limit, not UTF-8, a link leaving the directory...):
            # the refusal's text stands for the version, so the same refusal seen again at
            # the next rescan is recognised and neither logged nor recorded twice.
            version = version_of({"<refused>": error_lines(exc)})
            if version == self.seen:
                return None
            return self._reject(version, {}, exc, startup)
        version = version_of(texts)
        if version == self.seen:
            return None
        conn = self._connection()
        if startup and rule_sets.accepted_before(conn, version):
            active = rule_sets.active(conn)
            if active is not None and active["version"] != version:
                log.warning(
                    "rules: the directory holds version %s, accepted before; version %s "
                    "(rolled back to) stays active until the directory is edited",
                    version,
                    active["version"],
                )
                self.seen = version
                return "kept"
        try:
            ruleset = self._build(texts)
        except RuleError as exc:
            return self._reject(version, texts, exc, startup)
        try:
            report = dry_run(ruleset, conn, self.dry_run_rows, lists_dir=self.directory / LISTS_DIR)
        except StorageError:
            raise
        except Exception as exc:  # the candidate cannot score real data: refuse it
            failure = RuleError(
                f"dry run on recent transactions failed: {type(exc).__name__}: {clip(exc)}",
                file=str(self.directory),
            )
            return self._reject(version, texts, failure, startup)
        self.compiled.put(ruleset)
        self.last_error = None
        recorded = rule_sets.publish(
            conn,
            version,
            texts,
            self.author,
            "accepted",
            still_current=self._current(version),
            on_record=self._audit(version, texts, "ok"),
        )
        self.seen = version
        log.info(
            "rules: version %s accepted (%d rules, %d enabled); %s%s",
            version,
            len(ruleset.rules),
            len(ruleset.enabled_rules),
            report.line(),
            "" if recorded is not None else " (already recorded)",
        )
        return "accepted"

    def _build(self, texts: dict[str, str]) -> RuleSet:
        return parse_rules(texts)  # the files were read strictly: nothing is re-read here

    def _current(self, version: str):
        def still_current() -> bool:
            try:
                return version_of(read_directory(self.directory)) == version
            except RuleError:
                return False

        return still_current

    def _audit(self, version: str, texts: dict[str, str], outcome: str, detail: str = ""):
        """The audit row of a load this watcher records (in the same transaction): a file
        edited on disk is a publication by whoever edited it, ``files:<os user>``."""

        def record(conn, row_id: int) -> None:
            replaced = rule_sets.active(conn, before_id=row_id)
            audit.record(
                conn,
                actor=f"files:{self.author}",
                action="rules.publish",
                outcome=outcome,
                provider="pipeline",
                object=f"rule_set {version}",
                before=None if replaced is None else {"version": replaced["version"]},
                after={
                    "version": version,
                    "status": "accepted" if outcome == "ok" else "rejected",
                    "files": sorted(texts),
                },
                detail=f"rules directory {self.directory}" + (f"\n{detail}" if detail else ""),
            )

        return record

    def _reject(self, version: str, texts: dict[str, str], exc: RuleError, startup: bool) -> str:
        self.last_error = exc
        lines = error_lines(exc)
        if not startup:  # at start, HotReload.initial logs it or raises it (one CLI line)
            log.error(
                "rules: version %s refused; the last good rules keep scoring:\n%s", version, lines
            )
        rule_sets.publish(
            self._connection(),
            version,
            texts,
            self.author,
            "rejected",
            lines,
            still_current=self._current(version) if texts else None,
            on_record=self._audit(version, texts, "failed", lines),
        )
        self.seen = version
        return "rejected"


class Follower:
    """Keeps a pipeline on the active rule set: ``apply(ruleset)`` for each new version; and,
    given ``apply_shadow``, on the challenger: ``apply_shadow(ruleset, rollout)`` (or
    ``apply_shadow(None)``) for each change of ``shadow_rule_sets``
    (:mod:`workbench.storage.shadow`): another challenger or another rollout."""

    def __init__(
        self,
        dsn: str,
        apply,
        version: str,
        *,
        compiled: _Compiled | None = None,
        apply_shadow=None,
    ):
        self.dsn = dsn
        self.apply = apply
        self.version = version  # the version handed to the pipeline last
        self.apply_shadow = apply_shadow
        self.shadow_version: str | None = None  # the challenger handed to it last
        self.shadow_rollout = 0  # and its rollout (percent of cards it decides for)
        self.compiled = compiled or _Compiled()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Follower:
        self._thread = threading.Thread(target=self._run, name="rules-follower", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            listener = conn = None
            try:
                listener = Listener(
                    self.dsn, rule_sets.RULES_CHANNEL
                )  # LISTEN first: nothing is missed
                conn = connect(self.dsn)
                self.sync(conn)
                backoff, quiet = 0.2, 0.0
                while not self._stop.is_set():
                    got = listener.poll(timeout=0.25, limit=1)
                    quiet = 0.0 if got else quiet + 0.25
                    if got or quiet >= RESYNC_S:
                        quiet = 0.0
                        self.sync(conn)
            except StorageError as exc:
                log.warning("rules: cannot follow the active rule set (retrying): %s", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            finally:
                for c in (listener, conn):
                    if c is not None:
                        with contextlib.suppress(Exception):  # a broken one may fail to close
                            c.close()

    def sync(self, conn) -> None:
        """Apply the active version if it is not the one applied last (then the challenger)."""
        self._sync_active(conn)
        if self.apply_shadow is not None:
            self._sync_shadow(conn)

    def _sync_shadow(self, conn) -> None:
        found = shadow.current(conn)
        version = None if found is None else found["version"]
        rollout = 0 if found is None else found["rollout"]
        if (version, rollout) == (self.shadow_version, self.shadow_rollout):
            return
        self.shadow_version, self.shadow_rollout = version, rollout
        if found is None:
            log.info("shadow: challenger cleared")
            self.apply_shadow(None)
            return
        try:
            ruleset = self.compiled.get(found["version"], found["files"])
        except RuleError as exc:
            log.error("shadow: cannot score version %s:\n%s", version, error_lines(exc))
            self.apply_shadow(None)
            return
        log.info(
            "shadow: scoring challenger version %s beside the active set (deciding for %d %% "
            "of the cards)",
            version,
            rollout,
        )
        self.apply_shadow(ruleset, rollout)

    def _sync_active(self, conn) -> None:
        active = rule_sets.active(conn)
        if active is None or active["version"] == self.version:
            return
        try:
            ruleset = self.compiled.get(active["version"], active["files"])
        except RuleError as exc:  # accepted elsewhere, yet invalid here (other code version)
            log.error("rules: cannot apply version %s:\n%s", active["version"], error_lines(exc))
            self.version = active["version"]
            return
        log.info("rules: switching from version %s to %s", self.version, ruleset.version)
        self.version = ruleset.version
        self.apply(ruleset)


class HotReload:
    """The reload machinery of one worker: publisher (when the directory exists) + follower."""

    def __init__(self, dsn: str, rules_dir: str | Path, *, author: str | None = None) -> None:
        self.dsn = dsn
        self.directory = Path(rules_dir)
        self.author = author or author_name()
        self.compiled = _Compiled()
        self.publisher: Publisher | None = None
        if self.directory.exists() and not self.directory.is_dir():
            raise ConfigError(f"rules_dir must be a directory of rule files: '{self.directory}'")
        if self.directory.is_dir():
            self.publisher = Publisher(
                dsn, self.directory, author=self.author, compiled=self.compiled
            )
        self.watcher: DirectoryWatcher | None = None
        self.follower: Follower | None = None

    def initial(self) -> RuleSet:
        """The rule set to start with: the directory published, then the active version."""
        if self.publisher is not None:
            try:
                self.publisher.check(startup=True)
            finally:
                self.publisher.close()  # the watcher reconnects when it needs to
        with connect(self.dsn) as conn:
            active = rule_sets.active(conn)
        refused = self.publisher.last_error if self.publisher is not None else None
        if active is None:  # nothing to fall back on: the worker cannot start
            if refused is not None:
                raise refused
            raise RuleError(
                f"rules directory not found and no rule set was accepted before: "
                f"'{self.directory}'",
                file=str(self.directory),
            )
        if refused is not None:
            log.error(
                "rules: the rules directory is refused; starting on the last accepted version "
                "%s:\n%s",
                active["version"],
                error_lines(refused),
            )
        return self.compiled.get(active["version"], active["files"])

    def start(self, apply, version: str, apply_shadow=None) -> None:
        """Follow the active version (``apply(ruleset)``) and the challenger
        (``apply_shadow``, optional) and, with a directory, watch it."""
        self.follower = Follower(
            self.dsn, apply, version, compiled=self.compiled, apply_shadow=apply_shadow
        ).start()
        if self.publisher is not None:
            self.watcher = DirectoryWatcher(self.directory, self._changed).start()

    def _changed(self) -> None:
        assert self.publisher is not None
        try:
            self.publisher.check()
        except StorageError as exc:
            log.warning("rules: cannot record the rules (retried at the next scan): %s", exc)

    def stop(self) -> None:
        for part in (self.watcher, self.follower):
            if part is not None:
                part.stop()
        if self.publisher is not None:
            self.publisher.close()


def rollback(
    dsn: str,
    version: str,
    *,
    author: str | None = None,
    still_current: Callable[[Any], bool] | None = None,
    on_record: Callable[[Any, int], None] | None = None,
) -> RuleSet:
    """Make the earlier accepted rule set ``version`` the active one again (appends an
    accepted row re-using its files); every worker switches to it. Raises ConfigError when no
    accepted row has that version, RuleError when its files no longer pass the checks.

    ``still_current(conn)`` (under the publication lock) may veto a stale request and
    ``on_record(conn, row_id)`` writes in the same transaction as the row (the dashboard's
    audit row): :func:`~workbench.storage.rule_sets.publish`.
    """
    with connect(dsn) as conn:
        files = rule_sets.files(conn, version)
        if files is None:
            raise ConfigError(f"no accepted rule set has version {version!r}")
        ruleset = parse_rules(files)
        check = None if still_current is None else (lambda: still_current(conn))
        rule_sets.publish(
            conn,
            version,
            files,
            author or author_name(),
            "accepted",
            still_current=check,
            on_record=on_record,
        )
    log.info("rules: rolled back to version %s", version)
    return ruleset


def status(dsn: str) -> dict[str, Any]:
    """``active`` (newest accepted row, without files) and ``last`` (newest row of any
    status) of ``rule_sets``, and ``shadow`` (the challenger in effect, without files); each
    is None when there is none."""
    with connect(dsn) as conn:
        active = rule_sets.active(conn)
        last = rule_sets.last(conn)
        challenger = shadow.current(conn)
    if active is not None:
        active = {k: v for k, v in active.items() if k != "files"}
    if challenger is not None:
        challenger = {k: v for k, v in challenger.items() if k != "files"}
    return {"active": active, "last": last, "shadow": challenger}
