"""Watch a rules directory by polling: names, sizes, mtimes and inodes, then a debounce.

Editors save by writing a temporary file and renaming it over the old one, so the
*directory* is watched, never a single file: a rename, a new file or a deleted one changes
the directory's snapshot just like an edit in place. A change fires the callback once the
snapshot has been quiet for ``debounce_s`` (an editor's save is several operations). Stat
data can miss an edit that keeps size and mtime (coarse timestamps), so the callback also
runs every ``rescan_s``; the callback compares content hashes and ignores what did not change.

Stdlib only: a scan of a directory of a few files costs microseconds, so polling every
50 ms is cheaper than a dependency and behaves the same on every filesystem (including the
network and container mounts where inotify events do not arrive). A scan stops after
:data:`~workbench.rules.limits.MAX_FILES` + 1 rule files: a directory past the limit is
refused by the loader anyway, and scanning 100,000 entries ten times a second would not be
cheap.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from workbench.rules.files import is_rule_file_name
from workbench.rules.limits import MAX_FILES

log = logging.getLogger(__name__)

# A save is seen POLL_S / 2 after it on average and checked DEBOUNCE_S after its last write:
# with the check itself (parse, compile, examples, dry run, record), a saved file is
# accepted within ~0.3 s (bench_reload.py). An editor's save (write a temporary file, rename
# it over) takes microseconds to milliseconds, well inside the debounce.
POLL_S = 0.05  # between scans while nothing happens
BUSY_POLL_S = 0.02  # between scans while a change is settling
DEBOUNCE_S = 0.1  # quiet time after the last change before the callback runs
RESCAN_S = 2.0  # the callback also runs this often, for edits stat data cannot see

Snapshot = tuple[tuple[str, int, int, int], ...]


def snapshot(directory: Path) -> Snapshot:
    """(name, size, mtime_ns, inode) of the rule files directly in ``directory``, sorted;
    empty when the directory is missing; at most ``MAX_FILES + 1`` of them."""
    entries = []
    try:
        with os.scandir(directory) as it:
            for entry in it:
                name = entry.name
                if not is_rule_file_name(name):
                    continue
                if len(entries) > MAX_FILES:
                    break
                try:
                    st = entry.stat()
                except OSError:  # removed between listing and stat
                    continue
                entries.append((name, st.st_size, st.st_mtime_ns, st.st_ino))
    except OSError:
        return ()
    return tuple(sorted(entries))


class DirectoryWatcher:
    """Calls ``on_change()`` from its own thread after the directory changed and settled."""

    def __init__(
        self,
        directory: str | Path,
        on_change: Callable[[], None],
        *,
        poll_s: float = POLL_S,
        debounce_s: float = DEBOUNCE_S,
        rescan_s: float = RESCAN_S,
    ) -> None:
        self.directory = Path(directory)
        self.on_change = on_change
        self.poll_s = poll_s
        self.debounce_s = debounce_s
        self.rescan_s = rescan_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: Snapshot = ()

    def start(self) -> DirectoryWatcher:
        """Watch from now on: a change made once this returns is seen."""
        self._seen = snapshot(self.directory)
        self._thread = threading.Thread(target=self._run, name="rules-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        seen = self._seen
        changed_at: float | None = None
        rescan_at = time.monotonic() + self.rescan_s
        while not self._stop.wait(self._interval(changed_at)):
            now = time.monotonic()
            current = snapshot(self.directory)
            if current != seen:
                seen, changed_at = current, now
                continue
            if (changed_at is not None and now - changed_at >= self.debounce_s) or (
                now >= rescan_at
            ):
                changed_at, rescan_at = None, now + self.rescan_s
                self._fire()

    def _interval(self, changed_at: float | None) -> float:
        return self.poll_s if changed_at is None else min(BUSY_POLL_S, self.poll_s)

    def _fire(self) -> None:
        try:
            self.on_change()
        except Exception:  # the watcher must outlive any failure of a reload
            log.exception("rule reload failed")
