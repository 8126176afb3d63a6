"""Stopping a child process group the tests started: politely first, then for certain."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_group(proc: subprocess.Popen, term_grace: float) -> None:
    """SIGTERM to ``proc``'s process group, then SIGKILL if it is still there after
    ``term_grace`` seconds; returns once it has exited (or is gone)."""
    if proc.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, term_grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue
