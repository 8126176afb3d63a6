"""The ``workbench`` command line.

Every sub-command lives in its own module with ``add_parser(subparsers)`` and
``run(args, settings) -> int``. Arguments are checked before anything happens: argparse types
refuse a bad value (exit 2), then the command's optional ``check(args)`` refuses a bad
combination (exit 1), and only then does ``run`` start databases, files or processes (see
:mod:`workbench.cli.checks`). Errors of ours reach the user as one line on stderr and exit
code 1; anything unexpected keeps its traceback (that is a bug to report).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from workbench import __version__
from workbench.cli import (
    backtest_cmd,
    db_cmd,
    init_cmd,
    lab_cmd,
    labels_cmd,
    produce_cmd,
    rules_cmd,
    run_cmd,
    simulate_cmd,
    users_cmd,
    warmup_cmd,
)
from workbench.errors import WorkbenchError
from workbench.features import kernel_cache
from workbench.settings import Settings

COMMANDS = (
    init_cmd,
    run_cmd,
    rules_cmd,
    simulate_cmd,
    produce_cmd,
    db_cmd,
    backtest_cmd,
    labels_cmd,
    lab_cmd,
    users_cmd,
    warmup_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Fraud Workbench: real-time fraud detection with YAML rules.",
    )
    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.load()
        logging.basicConfig(
            level=settings.log_level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        # Before any kernel runs: where the compiled kernels are, and a line whenever one is
        # compiled after all (not in that cache).
        if settings.numba_cache_dir:
            kernel_cache.use_cache_dir(settings.numba_cache_dir)
        kernel_cache.log_compilations()
        check = getattr(args, "check", None)
        if check is not None:
            check(args)
        return int(args.run(args, settings) or 0)
    except WorkbenchError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"error: {line}", file=sys.stderr)
        logging.getLogger("workbench").debug("command failed", exc_info=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
