"""``workbench rules check [PATH...]`` (load, check and run the examples of rule files),
``workbench rules status`` (the active rule set and the last attempt) and
``workbench rules rollback VERSION`` (re-activate an earlier accepted rule set), and the
challenger: ``workbench rules shadow set VERSION|PATH [--rollout PCT]`` (``shadow set
--rollout PCT``: the rollout alone), ``workbench rules shadow clear``
(score a rule set beside the active one, never alerting) and ``workbench rules promote``
(make it the active one)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from workbench.errors import ConfigError
from workbench.pipeline import reload
from workbench.pipeline.database import database
from workbench.pipeline.reload import author_name, status
from workbench.rules import RuleSet, load_rules, parse_rules
from workbench.settings import Settings
from workbench.storage import audit, connect, rule_sets, shadow


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
    rules_sub.add_parser(
        "status",
        help="Show the active rule set and the last reload attempt with its errors "
        "(exit 1 when the last attempt was refused).",
    ).set_defaults(run=run_status)
    back = rules_sub.add_parser(
        "rollback",
        help="Re-activate an earlier accepted rule set; every running worker switches to it.",
    )
    back.add_argument("version", metavar="VERSION", help="Version hash (see rules status).")
    back.set_defaults(run=run_rollback, check=check_rollback)
    challenger = rules_sub.add_parser(
        "shadow",
        help="Score a challenger rule set on live traffic beside the active one (never "
        "alerting); its scores go to shadow_scores.",
    )
    shadow_sub = challenger.add_subparsers(dest="shadow_command", metavar="ACTION", required=True)
    put = shadow_sub.add_parser(
        "set",
        help="Make a rule set the challenger: an accepted VERSION, or rule files; or, with "
        "--rollout and no TARGET, change the rollout of the challenger in effect.",
    )
    put.add_argument(
        "target",
        metavar="TARGET",
        nargs="?",
        help="An accepted version hash, a rule file or a directory.",
    )
    put.add_argument(
        "--rollout",
        metavar="PCT",
        type=_percent,
        default=None,
        help="Percent of cards (0-100, by a stable hash of card_id) whose transactions the "
        "challenger decides: stored and alerting with its verdict, the active set's going to "
        "shadow_scores (default with a TARGET: 0, shadow only).",
    )
    put.set_defaults(run=run_shadow_set, check=check_shadow_set)
    shadow_sub.add_parser("clear", help="Stop shadow scoring.").set_defaults(run=run_shadow_clear)
    rules_sub.add_parser(
        "promote",
        help="Make the challenger the active rule set (and clear the shadow); every running "
        "worker switches to it.",
    ).set_defaults(run=run_promote)


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


def run_status(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings, migrate=False) as dsn:
        state = status(dsn)
    active, last = state["active"], state["last"]
    if active is None:
        print("active: none (no rule set was ever accepted)")
    else:
        print(f"active: version {active['version']} since {_when(active)} by {active['author']}")
    challenger = state.get("shadow")
    if challenger is not None:
        rollout = challenger.get("rollout", 0)
        role = (
            f"deciding for {_rolled(rollout)}, in the shadow for the others"
            if rollout
            else "scored beside the active set, never alerting"
        )
        print(
            f"shadow: version {challenger['version']} since {_when(challenger)} by "
            f"{challenger['author']} ({role})"
        )
    if last is None:
        print("last attempt: none")
        return 0
    what = f"{last['status']} version {last['version']}"
    print(f"last attempt: {what} at {_when(last)} by {last['author']}")
    if last["status"] != "rejected":
        return 0
    for line in (last["error"] or "").splitlines():
        print(f"  {line}")
    return 1


def run_rollback(args: argparse.Namespace, settings: Settings) -> int:
    # As the rule publisher when WORKBENCH_PUBLISHER_DATABASE_URL names its role.
    with database(settings, migrate=False, component="publisher") as dsn:
        ruleset = rollback(dsn, args.version)
    print(
        f"ok: version {ruleset.version} is active again ({len(ruleset.rules)} rules); "
        "running workers switch before their next batch"
    )
    return 0


def rollback(dsn: str, version: str) -> RuleSet:
    """:func:`~workbench.pipeline.reload.rollback` as this command runs it: the author is the
    OS user, and the audit row (actor ``cli:<os user>``, provider ``cli``) is written in the
    rollback's own transaction."""
    who = f"cli:{author_name()}"

    def audited(conn, row_id: int) -> None:
        replaced = rule_sets.active(conn, before_id=row_id)
        audit.record(
            conn,
            actor=who,
            action="rules.rollback",
            provider="cli",
            object=f"rule_set {version}",
            before=None if replaced is None else {"version": replaced["version"]},
            after={"version": version},
            detail=f"rule_sets row {row_id}",
        )

    return reload.rollback(dsn, version, author=author_name(), on_record=audited)


def _cli_audit(action: str, obj: str, before: dict | None, after: dict | None, detail: str):
    def record(conn) -> None:
        audit.record(
            conn,
            actor=f"cli:{author_name()}",
            action=action,
            provider="cli",
            object=obj,
            before=before,
            after=after,
            detail=detail,
        )

    return record


def _percent(text: str) -> int:
    try:
        return shadow.check_rollout(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def check_shadow_set(args: argparse.Namespace) -> None:
    if args.target is None and args.rollout is None:
        raise ConfigError("name a TARGET rule set, or give --rollout PCT to change the rollout")


def run_shadow_set(args: argparse.Namespace, settings: Settings) -> int:
    if args.target is None:
        return _run_rollout(args.rollout, settings)
    target = args.target
    rollout = args.rollout or 0
    with database(settings, migrate=False, component="publisher") as dsn, connect(dsn) as conn:
        if re.fullmatch(r"[0-9a-f]{16}", target) and not Path(target).exists():
            files = rule_sets.files(conn, target)
            if files is None:
                raise ConfigError(f"no accepted rule set has version {target!r}")
            ruleset = parse_rules(files)
        else:
            ruleset = load_rules(target)
        files = dict(ruleset.texts)

        def audited(conn, row_id: int, replaced: dict | None) -> None:
            before = None
            if replaced is not None:
                before = {"version": replaced["version"], "rollout": replaced["rollout"]}
            after = {"version": ruleset.version, "files": sorted(files), "rollout": rollout}
            obj = f"rule_set {ruleset.version}"
            _cli_audit("rules.shadow_set", obj, before, after, f"shadow_rule_sets row {row_id}")(
                conn
            )

        shadow.set_shadow(
            conn, ruleset.version, files, author_name(), on_record=audited, rollout=rollout
        )
    print(
        f"ok: version {ruleset.version} ({len(ruleset.rules)} rules) is scored in the shadow of "
        "the active rule set; its scores go to shadow_scores, it never alerts"
        if not rollout
        else f"ok: version {ruleset.version} ({len(ruleset.rules)} rules) decides for "
        f"{_rolled(rollout)}, the active rule set for the others (and in the shadow for these)"
    )
    return 0


def _rolled(rollout: int) -> str:
    return f"{rollout} % of the cards (those whose rollout bucket is below {rollout})"


def _run_rollout(rollout: int, settings: Settings) -> int:
    with database(settings, migrate=False, component="publisher") as dsn, connect(dsn) as conn:

        def audited(conn, row_id: int, before: dict) -> None:
            version = before["version"]
            _cli_audit(
                "rules.shadow_rollout",
                f"rule_set {version}",
                {"version": version, "rollout": before["rollout"]},
                {"version": version, "rollout": rollout},
                f"shadow_rule_sets row {row_id}",
            )(conn)

        was = shadow.set_rollout(conn, rollout, author_name(), on_record=audited)
    if rollout:
        print(
            f"ok: version {was['version']} decides for {_rolled(rollout)} (was {was['rollout']} %)"
        )
    else:
        print(f"ok: version {was['version']} is back in the shadow only (was {was['rollout']} %)")
    return 0


def run_shadow_clear(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings, migrate=False, component="publisher") as dsn, connect(dsn) as conn:

        def audited(conn, row_id: int, replaced: dict | None) -> None:
            before = None if replaced is None else {"version": replaced["version"]}
            detail = f"shadow_rule_sets row {row_id}"
            _cli_audit("rules.shadow_clear", "shadow rule set", before, None, detail)(conn)

        replaced = shadow.clear(conn, author_name(), on_record=audited)
    if replaced is None:
        print("ok: no shadow rule set was in effect")
    else:
        print(f"ok: shadow scoring of version {replaced['version']} stopped")
    return 0


def run_promote(args: argparse.Namespace, settings: Settings) -> int:
    with database(settings, migrate=False, component="publisher") as dsn, connect(dsn) as conn:

        def audited(conn, challenger: dict, replaced: dict | None) -> None:
            before = {"version": None if replaced is None else replaced["version"]}
            after = {"version": challenger["version"], "files": sorted(challenger["files"])}
            detail = "shadow rule set promoted to active; shadow cleared"
            obj = f"rule_set {challenger['version']}"
            _cli_audit("rules.promote_shadow", obj, before, after, detail)(conn)

        promoted = shadow.promote(conn, author_name(), on_record=audited)
    print(
        f"ok: version {promoted['version']} is active; the shadow is cleared; running workers "
        "switch before their next batch"
    )
    return 0


def check_rollback(args: argparse.Namespace) -> None:
    # A rule-set version is 16 hex digits (workbench.rules.loader.version_of): anything else
    # cannot name one, refused (like an unknown version, exit 1) before a database is started.
    if not re.fullmatch(r"[0-9a-f]{16}", args.version):
        raise ConfigError(f"not a rule-set version (16 hex digits): {args.version!r}")


def _when(row: dict) -> str:
    return row["created_at"].isoformat(timespec="seconds")
