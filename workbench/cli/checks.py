"""Argument checks that run before a command does anything.

A command must refuse a bad argument before it starts or migrates a database, creates a file
or spawns a process. Two kinds of checks make that structural rather than a matter of care:

* argparse ``type=`` converters (:func:`positive_int`, :func:`positive_float`,
  :func:`timestamp`): a bad value stops ``parse_args`` itself (usage error, exit 2);
* a per-command ``check(args)`` set with ``set_defaults(check=...)``, for what depends on
  several arguments or on the registry of sources; ``main`` calls it before ``run`` and it
  raises :class:`~workbench.errors.ConfigError` (one line, exit 1). It may read files but
  never writes anything.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    # NaN and infinity are not rates or durations; `not value > 0` also refuses NaN.
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def timestamp(text: str) -> str:
    """An ISO 8601 time (kept as text: the command converts it, UTC when no zone is given)."""
    import pandas as pd

    try:
        pd.Timestamp(text)
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return text


def utc(text: str):
    """The time ``text`` names as a UTC ``pandas.Timestamp`` (naive times are UTC, as the
    backtest reads them)."""
    import pandas as pd

    ts = pd.Timestamp(text)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def data_file(text: str) -> str:
    """An existing ``.csv``, ``.csv.gz`` or ``.parquet`` file, or ``-`` (standard input)."""
    from workbench.errors import SourceError
    from workbench.sources.replay import STDIN, file_kind

    try:
        file_kind(text)
    except SourceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if text != STDIN and not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"file not found: {text}")
    return text


def not_a_file(text: str) -> str:
    """A rules directory: it may be missing (a worker on another machine reads the database's
    rule sets; ``up`` creates it), but it must not be a regular file."""
    if Path(text).is_file():
        raise argparse.ArgumentTypeError(f"must be a directory of rule files, not a file: {text}")
    return text
