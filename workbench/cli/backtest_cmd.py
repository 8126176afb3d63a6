"""``workbench backtest RULES`` (re-score stored history with candidate rules, compare with
live) and ``workbench replay FILE`` (load an external history into the database first)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from workbench.cli.checks import data_file, not_a_file, positive_int, timestamp
from workbench.errors import ConfigError
from workbench.settings import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    bt = sub.add_parser(
        "backtest",
        help="Re-score stored history with candidate rules and compare them with live.",
        description="Re-score the stored transactions of a time range with a candidate rule "
        "set (the stream's own feature and scoring code, point-in-time) and compare it with "
        "the stored live scores: band migration, alerts per day, precision / recall / F1 per "
        "rule, band and fraud scenario (recall per scenario at every band), Card Precision@k "
        "per day (--protocol) and a threshold sweep. "
        "Maintained lists and snoozes are the ones in force now (the database's, and the list "
        "files of <rules_dir>/lists), not as they were at each transaction; each snooze "
        "applies to the transactions whose event time is before its end.",
    )
    bt.add_argument("rules", nargs="+", metavar="RULES", help="Rules directory or YAML file(s).")
    bt.add_argument(
        "--start", type=timestamp, help="First event time (ISO 8601, UTC; default: the oldest)."
    )
    bt.add_argument(
        "--end", type=timestamp, help="End event time, exclusive (default: after the newest)."
    )
    bt.add_argument(
        "--k",
        "--cp-k",
        dest="k",
        type=positive_int,
        default=100,
        help="k of Card Precision@k (default 100).",
    )
    bt.add_argument(
        "--protocol",
        choices=("daily", "handbook"),
        default="daily",
        help="Card Precision@k protocol: daily (the top-k cards of each day; default) or "
        "handbook (the Fraud Detection Handbook's: cards found compromised in an earlier "
        "day's top k are no longer candidates). Reported as the mean over the days.",
    )
    bt.add_argument("--json", action="store_true", help="Print the comparison as JSON.")
    bt.add_argument(
        "--no-warmup",
        action="store_true",
        help="Start features on empty state at --start instead of reading earlier history.",
    )
    bt.add_argument(
        "--lists-from",
        metavar="DIR",
        help="Maintained lists from the files DIR/<name>.txt instead of the database's "
        "entries and <rules_dir>/lists (snoozes still from the database).",
    )
    bt.add_argument("--no-snoozes", action="store_true", help="Score as if no rule were snoozed.")
    bt.set_defaults(run=run_backtest, check=check_backtest)

    rp = sub.add_parser(
        "replay",
        help="Load an external history (CSV/Parquet) into the database, as fast as possible.",
        description="Stream a file through the pipeline (features, active rules, storage) "
        "as fast as possible, then exit; then `workbench backtest` can compare rules on it.",
    )
    rp.add_argument("file", metavar="FILE", type=data_file, help="A .csv or .parquet file.")
    rp.add_argument(
        "--mapping",
        action="append",
        default=[],
        metavar="MAP",
        help="Column mapping: a YAML file, a built-in name (handbook) or FIELD=COLUMN; repeatable.",
    )
    rp.add_argument(
        "--rules", type=not_a_file, help="Rules directory (default: the rules_dir setting)."
    )
    rp.add_argument("--batch-rows", type=positive_int, help="Transactions per batch.")
    rp.set_defaults(run=run_replay, check=check_replay)


def check_backtest(args: argparse.Namespace) -> None:
    """The candidate rules load and pass their examples, and the range is not empty, before
    any database is started."""
    from workbench.cli.checks import utc
    from workbench.rules import load_rules

    load_rules(args.rules if len(args.rules) > 1 else args.rules[0])
    if args.lists_from is not None:
        from pathlib import Path

        from workbench.rules.lists import read_list_files

        if not Path(args.lists_from).is_dir():
            raise ConfigError(f"--lists-from must be a directory of list files: {args.lists_from}")
        problems = read_list_files(args.lists_from)[1]
        if problems:
            raise ConfigError(f"--lists-from: {problems[0]}")
    if args.start is not None and args.end is not None and utc(args.end) <= utc(args.start):
        raise ConfigError(f"empty time range: --start {args.start} is not before --end {args.end}")


def run_backtest(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from workbench.analysis.backtest import backtest, current_overlay
    from workbench.pipeline.database import database
    from workbench.pipeline.lists import LISTS_DIR

    bar = None if args.json else _Bar()
    # Through the shared helper: next to `workbench up`, its embedded server is used (and
    # left running); with no database configured, one is started for this command only.
    with database(settings, migrate=False) as dsn:
        overlay, source = current_overlay(
            dsn=dsn,
            lists_dir=Path(settings.rules_dir) / LISTS_DIR,
            lists_from=args.lists_from,
            snoozes=not args.no_snoozes,
        )
        result = backtest(
            args.rules,
            args.start,
            args.end,
            dsn=dsn,
            warmup=not args.no_warmup,
            allowed_lateness_s=settings.allowed_lateness,
            progress=bar,
            overlay=overlay,
        )
        result.lists_source = source
    if bar is not None:
        bar.done()
    comparison = result.compare(k=args.k, protocol=args.protocol)
    if args.json:
        out = comparison.to_dict()
        out["rows"], out["warmup_rows"] = result.rows, result.warmup_rows
        out["seconds"] = round(result.elapsed_s, 3)
        out["eval_errors"] = result.eval_errors
        out["lists"] = {
            "source": result.lists_source,
            "overlay": result.overlay.version,
            "lists": {name: len(v) for name, v in sorted(result.overlay.lists.items())},
            "snoozes": len(result.overlay.snoozes),
            "hits_snoozed": result.snoozed,
        }
        versions = result.frame["live_version"].value_counts()
        out["live_versions"] = {str(v): int(n) for v, n in versions.items()}
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    print(comparison.text())
    print()
    print(result.lists_note)
    print(result.live_note)
    print(
        f"{result.rows:,} transactions (+{result.warmup_rows:,} warm-up) re-scored in "
        f"{result.elapsed_s:.2f}s ({result.throughput:,.0f} tx/s)"
    )
    for rule, n in sorted(result.eval_errors.items()):
        print(f"warning: rule {rule} could not be evaluated on {n:,} transactions")
    return 0


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    """``workbench run --source replay FILE`` at full speed (no pacing), then exit."""
    from workbench.cli import run_cmd

    return run_cmd.run_worker(_as_run(args), settings)


def check_replay(args: argparse.Namespace) -> None:
    from workbench.cli import run_cmd

    run_cmd.check_worker(_as_run(args))


def _as_run(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(
        source=["replay", args.file],
        mapping=args.mapping,
        rules=args.rules,
        batch_rows=args.batch_rows,
        rate=None,
        duration=None,
    )


class _Bar:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal)."""

    WIDTH = 30

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.began = time.monotonic()
        self.last = -1.0

    def __call__(self, fraction: float, rows: int) -> None:
        now = time.monotonic()
        if not self.tty and now - self.last < 2.0 and fraction < 1.0:
            return
        self.last = now
        filled = int(self.WIDTH * min(max(fraction, 0.0), 1.0))
        bar = "#" * filled + "." * (self.WIDTH - filled)
        line = f"backtest [{bar}] {fraction:4.0%}  {rows:,} rows  {now - self.began:.1f}s"
        print(line, end="\r" if self.tty else "\n", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.tty:
            print(file=sys.stderr)
