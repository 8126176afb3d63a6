"""Lists and snoozes hot reload: follow the database and the list files, swap between batches.

A :class:`ListFollower` runs in a background thread of each worker (never on its event loop):
``LISTEN workbench_lists`` (sent in the same transaction as every list or snooze edit, see
:mod:`workbench.storage.lists`), and it also re-reads every :data:`RESYNC_S` (notifications
lost while reconnecting, list entries reaching ``expires_at``) and whenever the list files
``<rules_dir>/lists/*.txt`` change (checked each :data:`POLL_S`). Each time it builds an
:class:`~workbench.scoring.overlay.Overlay` — the database entries merged with the files'
values, and the unlifted snoozes — and when its content hash differs from the one applied
last, hands it to the pipeline, which swaps it in before the next batch. The compiled rules
are not touched: ``x in list("name")`` reads the overlay at each batch.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from workbench.errors import StorageError
from workbench.rules.lists import read_list_files
from workbench.scoring.overlay import Overlay
from workbench.storage import Listener, connect
from workbench.storage import lists as list_store
from workbench.storage import snoozes as snooze_store

log = logging.getLogger(__name__)

LISTS_DIR = "lists"  # the list files live in <rules dir>/lists/<name>.txt
POLL_S = 0.25
RESYNC_S = 5.0
BACKOFF_MAX_S = 10.0


def build_overlay(conn, lists_dir: str | Path | None = None) -> Overlay:
    """The overlay as the database and the list files say now (one read of each)."""
    merged: dict[str, list[str]] = {}
    if lists_dir is not None:
        files, problems = read_list_files(lists_dir)
        for problem in problems:
            log.warning("lists: %s", problem)
        for name, values in files.items():
            merged.setdefault(name, []).extend(values)
    entries = list_store.active(conn)
    for name, group in entries.groupby("list_name", sort=False):
        merged.setdefault(str(name), []).extend(group["value"].astype(str).tolist())
    return Overlay.build(merged, snooze_store.current(conn))


def _signature(lists_dir: Path | None) -> tuple:
    """Names, sizes and modification times of the list files: a cheap change check."""
    if lists_dir is None or not lists_dir.is_dir():
        return ()
    out = []
    for path in sorted(lists_dir.glob("*.txt")):
        with contextlib.suppress(OSError):
            stat = path.stat()
            out.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(out)


class ListFollower:
    """Keeps a pipeline on the current lists and snoozes: ``apply(overlay)`` on each change."""

    def __init__(
        self,
        dsn: str,
        apply: Callable[[Overlay], None],
        *,
        lists_dir: str | Path | None = None,
        version: str | None = None,
    ) -> None:
        self.dsn = dsn
        self.apply = apply
        self.lists_dir = Path(lists_dir) if lists_dir is not None else None
        self.version = version  # the overlay handed over last
        self._files = _signature(self.lists_dir)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def initial(self) -> Overlay:
        """The overlay to start with (read synchronously, before the first batch)."""
        with connect(self.dsn) as conn:
            overlay = build_overlay(conn, self.lists_dir)
        self.version = overlay.version
        return overlay

    def start(self) -> ListFollower:
        self._thread = threading.Thread(target=self._run, name="lists-follower", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def sync(self, conn) -> bool:
        """Build the overlay and apply it when it changed; True when it did."""
        overlay = build_overlay(conn, self.lists_dir)
        if overlay.version == self.version:
            return False
        log.info("lists: switching lists and snoozes %s -> %s", self.version, overlay.version)
        self.version = overlay.version
        self.apply(overlay)
        return True

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            listener = conn = None
            try:
                listener = Listener(self.dsn, list_store.CHANNEL)  # LISTEN first
                conn = connect(self.dsn)
                self.sync(conn)
                backoff, quiet = 0.2, 0.0
                while not self._stop.is_set():
                    got = listener.poll(timeout=POLL_S, limit=100)
                    quiet = 0.0 if got else quiet + POLL_S
                    files = _signature(self.lists_dir)
                    if got or quiet >= RESYNC_S or files != self._files:
                        quiet, self._files = 0.0, files
                        self.sync(conn)
            except StorageError as exc:
                log.warning("lists: cannot follow the lists (retrying): %s", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            except Exception:  # a bad file or row must not end following for good
                log.exception("lists: rebuilding the lists failed (retrying)")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            finally:
                for c in (listener, conn):
                    if c is not None:
                        with contextlib.suppress(Exception):
                            c.close()
