"""``workbench rules check [PATH...]``: load, check and run the examples of rule files."""

from __future__ import annotations

import argparse

from workbench.rules import load_rules
from workbench.settings import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    rules = sub.add_parser("rules", help="Work with YAML rule files.")
    rules_sub = rules.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    check = rules_sub.add_parser(
        "check",
        help="Validate rule files and run every rule's examples (exit 1 with one line per error).",
    )
    check.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="Rule files or directories (default: the rules_dir setting).",
    )
    check.set_defaults(run=run_check)


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    paths = args.paths or [settings.rules_dir]
    ruleset = load_rules(paths if len(paths) > 1 else paths[0])
    enabled = len(ruleset.enabled_rules)
    examples = sum(
        len(r.examples.get("match", ())) + len(r.examples.get("no_match", ()))
        for r in ruleset.rules
    )
    print(
        f"ok: {len(ruleset.rules)} rules ({enabled} enabled), {len(ruleset.features)} "
        f"features, {examples} examples passed, {len(ruleset.texts)} file(s), "
        f"version {ruleset.version}"
    )
    return 0
