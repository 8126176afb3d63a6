"""A challenger rule set scored in the shadow of the active one, on real PostgreSQL and a real
pipeline: it never alerts (alerts and cases equal a run without it) while its scores are
stored for every transaction; promotion switches the active set with its audit row; a viewer
or an analyst is refused (and audited)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import secrets
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.analysis.backtest import backtest
from workbench.analysis.shadow import shadow_compare
from workbench.auth.roles import AccessDenied, Identity, Role
from workbench.dashboard.actions import Actions
from workbench.dashboard.alerts_page import AlertsView
from workbench.dashboard.shadow_page import ShadowView
from workbench.errors import ConfigError
from workbench.pipeline.graph import Pipeline
from workbench.pipeline.rebuild import StateRebuild
from workbench.pipeline.reload import Follower, HotReload
from workbench.pipeline.writer import RetryingWriter
from workbench.rules import parse_rules
from workbench.scoring.detector import Detector
from workbench.scoring.result import Evaluation
from workbench.scoring.rollout import bucket as rollout_bucket
from workbench.sources.simulator import Simulator
from workbench.storage import audit, connect, partitions, rule_sets, shadow
from workbench.storage.writer import write_batch

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RECORDS = 3000

# Everything High, through a feature the active rule set does not declare.
CHALLENGER = {
    "challenger/all.yaml": (
        "features:\n"
        "  shadow_card_1h: {agg: count, by: card_id, window: 1h}\n"
        "rules:\n"
        "  - id: everything\n"
        "    when: amount >= 0 and shadow_card_1h >= 0\n"
        "    score: 100\n"
    )
}

# Another challenger (a different version).
RULES_B = "rules:\n  - id: big\n    when: amount > 500\n    score: 80\n"


def stream(dsn: str, rules_dir: Path, seed: int = 7) -> None:
    """The shipped rules on a fixed simulated stream; the challenger, if one is set, applied
    by the rule follower (as a worker does) before the first batch."""
    reload = HotReload(dsn, rules_dir, author="tester")
    ruleset = reload.initial()
    sim = Simulator(sim_customers=500, sim_terminals=200, batch_rows=250, seed=seed)
    writer = RetryingWriter(
        dsn,
        source="simulator",
        worker="test",
        alert_min_band=ruleset.alert.min_band,
        alert_dedup_s=ruleset.alert.dedup_s,
    )
    pipeline = Pipeline(sim, Detector(ruleset), writer)
    follower = Follower(
        dsn, pipeline.swap_rules, ruleset.version, apply_shadow=pipeline.swap_shadow
    )
    with connect(dsn) as conn:
        follower.sync(conn)
    asyncio.run(pipeline.run(max_records=RECORDS))


def outcome(dsn: str) -> dict:
    with connect(dsn) as conn:

        def rows(query: str) -> list:
            return conn.execute(query).fetchall()

        return {
            "alerts": rows(
                "SELECT tx_id, card_id, band, risk_score, hit_count FROM alerts ORDER BY tx_id"
            ),
            "cases": rows("SELECT card_id, alert_count, hit_count FROM cases ORDER BY card_id"),
            "evidence": rows("SELECT tx_id FROM alert_evidence ORDER BY tx_id"),
            "scores": rows("SELECT tx_id, band, rule_set_version FROM transactions ORDER BY 1"),
        }


def plain_outcome(databases, template_db: str, rules_dir: Path) -> dict:
    """The :func:`outcome` of the stream without a challenger."""
    with databases.fresh("wb_plain", template=template_db) as plain:
        stream(plain, rules_dir)
        return outcome(plain)


def test_shadow_never_alerts_and_is_stored_for_every_transaction(
    databases, template_db: str, rules_dir: Path
) -> None:
    challenger = parse_rules(CHALLENGER)
    without = plain_outcome(databases, template_db, rules_dir)
    with databases.fresh("wb_shadow", template=template_db) as dsn:
        with connect(dsn) as conn:
            shadow.set_shadow(conn, challenger.version, CHALLENGER, "tester")
        stream(dsn, rules_dir)
        with_shadow = outcome(dsn)
        with connect(dsn) as conn:
            stored = conn.execute(
                "SELECT count(*), count(DISTINCT s.tx_id), min(s.band), max(s.band),"
                " min(s.rule_set_version), max(s.rule_set_version),"
                " count(*) FILTER (WHERE s.rule_hits = '{\"everything\": 100}'::jsonb)"
                " FROM shadow_scores s JOIN transactions t USING (tx_id, ts)"
            ).fetchone()
            total = conn.execute("SELECT count(*) FROM shadow_scores").fetchone()[0]
        kpis = shadow_compare(dsn=dsn)
        view = ShadowView(dsn)
        shown = asyncio.run(view.load())

    n = len(with_shadow["scores"])
    assert n > 0 and len(without["alerts"]) > 0  # the stream did alert on its own rules
    assert with_shadow == without  # same scores, alerts, cases and evidence: never alerting
    assert stored == (n, n, "High", "High", challenger.version, challenger.version, n)
    assert total == n  # one shadow score per stored transaction, none without one
    assert kpis.version == challenger.version and kpis.rows == n
    assert int(kpis.migration["High"].sum()) == n  # every row moves to High in the shadow
    assert kpis.band_changes == n - int(kpis.migration.loc["High", "High"])
    rules = kpis.rules.set_index("rule_id")
    assert rules.loc["everything", "shadow_hits"] == n
    assert rules.loc["everything", "active_hits"] == 0
    assert kpis.flagged.loc["shadow", "flagged"] == n
    assert shown is not None and shown.rows == n  # the Rules page section, same figures
    assert "everything" in set(view.rules.value["rule_id"])
    assert f"challenger {challenger.version} set by tester" in view.message.object


def test_promote_switches_the_active_set_with_an_audit_row(db_dsn: str, published: str) -> None:
    challenger = parse_rules(CHALLENGER)
    with connect(db_dsn) as conn:
        shadow.set_shadow(conn, challenger.version, CHALLENGER, "rui")
    author = Actions(Identity("rui", Role.RULE_AUTHOR, provider="oauth"), db_dsn)
    promoted = author.promote_shadow()
    assert promoted["version"] == challenger.version
    with connect(db_dsn) as conn:
        assert rule_sets.active(conn)["version"] == challenger.version
        assert rule_sets.active(conn)["files"] == CHALLENGER
        assert shadow.current(conn) is None
        trail = audit.recent(conn, 5, action="rules.promote_shadow")
    row = trail.iloc[0]
    assert (row["actor"], row["role"], row["outcome"]) == ("rui", "rule-author", "ok")
    assert row["before"] == {"version": published}
    assert row["after"]["version"] == challenger.version


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ANALYST])
def test_viewer_and_analyst_cannot_promote(db_dsn: str, published: str, role: Role) -> None:
    challenger = parse_rules(CHALLENGER)
    with connect(db_dsn) as conn:
        shadow.set_shadow(conn, challenger.version, CHALLENGER, "rui")
    with pytest.raises(AccessDenied):
        Actions(Identity("eve", role, provider="basic"), db_dsn).promote_shadow()
    with connect(db_dsn) as conn:
        assert rule_sets.active(conn)["version"] == published
        assert shadow.current(conn)["version"] == challenger.version
        trail = audit.recent(conn, 5, action="rules.promote_shadow")
    assert list(trail["outcome"]) == ["refused"]
    assert trail.iloc[0]["actor"] == "eve"


def rules_cli(dsn: str, *args: str) -> subprocess.CompletedProcess:
    """``workbench rules ARGS`` in a subprocess, on database ``dsn``."""
    env = {**os.environ, "WORKBENCH_DATABASE_URL": dsn, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "workbench", "rules", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def challenger_dir(tmp_path: Path) -> Path:
    """The challenger's rule file in a directory of its own."""
    folder = tmp_path / "challenger"
    folder.mkdir()
    (folder / "all.yaml").write_text(CHALLENGER["challenger/all.yaml"])
    return folder


def test_cli_sets_clears_and_promotes(db_dsn: str, published: str, challenger_dir: Path) -> None:
    folder, version = challenger_dir, parse_rules(CHALLENGER).version
    cli = functools.partial(rules_cli, db_dsn)

    done = cli("shadow", "set", str(folder))
    assert done.returncode == 0, done.stderr
    status = cli("status")
    assert f"shadow: version {version} since " in status.stdout, status.stdout + status.stderr
    with connect(db_dsn) as conn:
        assert shadow.current(conn)["version"] == version
    done = cli("shadow", "clear")
    assert done.returncode == 0, done.stderr
    with connect(db_dsn) as conn:
        assert shadow.current(conn) is None
    done = cli("promote")
    assert done.returncode == 1 and "no shadow rule set to promote" in done.stderr
    done = cli("shadow", "set", published)  # an accepted version by its hash
    assert done.returncode == 0, done.stderr
    assert cli("promote").returncode == 0
    with connect(db_dsn) as conn:
        actions = list(audit.recent(conn, 10, action="rules.")["action"])
    assert actions[:4] == [
        "rules.promote_shadow",
        "rules.shadow_set",
        "rules.shadow_clear",
        "rules.shadow_set",
    ]


def with_shadow(batch, version: str = "challenger-1"):
    """``batch`` with a challenger's evaluation: 10 points more than the active score."""
    frame = batch.frame
    scores = pd.DataFrame(
        {
            "risk_score": (frame["risk_score"] + 10).clip(upper=100),
            "band": frame["band"],
            "rule_set_version": pd.Series([version] * len(frame), dtype="str"),
        }
    )
    hits = pd.DataFrame(
        {
            "row": np.arange(len(frame), dtype="int64"),
            "rule_id": pd.Series(["plus_ten"] * len(frame), dtype="str"),
            "points": np.full(len(frame), 10.0),
        }
    )
    matrix = np.ones((len(frame), 1), dtype=bool)
    return dataclasses.replace(
        batch, shadow=Evaluation(scores=scores, matrix=matrix, rule_ids=["plus_ten"], hits=hits)
    )


def test_shadow_scores_follow_replays_and_isolated_poison_rows(db_dsn: str, make_batch) -> None:
    batch = with_shadow(make_batch(400))
    batch.frame.loc[137, "card_id"] = "card-" + secrets.token_hex(1500)  # refused by its index
    writer = RetryingWriter(db_dsn, source="test", worker="w")
    assert asyncio.run(writer.write(batch)) is True
    assert asyncio.run(writer.write(batch)) is True  # a replay: nothing more
    writer.close()
    with connect(db_dsn) as conn:
        stored = {r[0] for r in conn.execute("SELECT tx_id FROM transactions")}
        scored = dict(
            conn.execute(
                "SELECT s.tx_id, s.risk_score - t.risk_score FROM shadow_scores s"
                " JOIN transactions t USING (tx_id, ts)"
            ).fetchall()
        )
        total, hits = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE rule_hits = '{\"plus_ten\": 10}'::jsonb)"
            " FROM shadow_scores"
        ).fetchone()
    assert len(stored) == 399 and "tx0000137" not in stored
    assert set(scored) == stored and total == 399 and hits == 399
    # each row's own challenger score (the active score i % 100, plus 10, at most 100)
    assert all(v == min(int(k[2:]) % 100 + 10, 100) - int(k[2:]) % 100 for k, v in scored.items())


def test_retention_drops_the_shadow_scores_of_the_days_it_drops(conn, make_batch) -> None:
    write_batch(conn, with_shadow(make_batch(50, prefix="old")))
    write_batch(conn, with_shadow(make_batch(50, prefix="new", start="2026-01-05T00:00:00Z")))
    dropped = partitions.retention(conn, 2, now=datetime(2026, 1, 6, tzinfo=UTC))
    assert date(2026, 1, 1) in dropped
    left = conn.execute("SELECT min(tx_id), max(tx_id), count(*) FROM shadow_scores").fetchone()
    assert left == ("new0000000", "new0000049", 50)


def test_the_rules_page_promotes_only_the_challenger_it_named(db_dsn: str, published: str) -> None:
    """Promote… names the challenger shown; Confirm promote promotes exactly that version. A
    challenger replaced in between is refused (audited as failed); an analyst gets no
    button, and the server refuses the action anyway."""
    first, second = parse_rules(CHALLENGER), parse_rules({"c/x.yaml": RULES_B})
    with connect(db_dsn) as conn:
        shadow.set_shadow(conn, first.version, CHALLENGER, "rui")
    author = Actions(Identity("rui", Role.RULE_AUTHOR, provider="basic"), db_dsn)
    view = ShadowView(db_dsn, author)
    asyncio.run(view.load())
    assert view.promote_button.visible and not view.promote_button.disabled
    view.ask()
    assert view.confirm_button.visible and first.version in view.message.object
    with connect(db_dsn) as conn:  # someone sets another challenger meanwhile
        shadow.set_shadow(conn, second.version, {"c/x.yaml": RULES_B}, "ana")
    assert asyncio.run(view.promote()) is None
    assert "nothing promoted" in view.message.object
    with connect(db_dsn) as conn:
        assert rule_sets.active(conn)["version"] == published
        assert list(audit.recent(conn, 5, action="rules.promote_shadow")["outcome"]) == ["failed"]
    asyncio.run(view.load())  # now shows the second one: promoting it works
    view.ask()
    assert asyncio.run(view.promote())["version"] == second.version
    with connect(db_dsn) as conn:
        assert rule_sets.active(conn)["version"] == second.version
        assert shadow.current(conn) is None
    assert f"{second.version} is now the active rule set" in view.message.object
    analyst = ShadowView(db_dsn, Actions(Identity("eve", Role.ANALYST, provider="basic"), db_dsn))
    assert not analyst.promote_button.visible


def arms(dsn: str, version: str) -> dict[str, set]:
    """Per card, whether the challenger ``version`` decided its transactions (a set: both
    values when a card changed sides)."""
    with connect(dsn) as conn:
        rows = conn.execute(
            "SELECT card_id, array_agg(DISTINCT rule_set_version = %s) FROM transactions"
            " GROUP BY card_id",
            (version,),
        ).fetchall()
    return {card: set(decided) for card, decided in rows}


def alert_rules(dsn: str) -> list[tuple[str, set]]:
    with connect(dsn) as conn:
        rows = conn.execute("SELECT card_id, rules FROM alerts ORDER BY id").fetchall()
    return [(card, set(rules)) for card, rules in rows]


def test_a_rollout_keeps_each_card_in_its_arm_across_batches_and_restarts(
    databases, template_db: str, rules_dir: Path
) -> None:
    """At 30 %, the challenger decides (stores, alerts) for the cards whose bucket is below
    30, through two runs of a worker (a restart: new detector, new follower); the active
    set's verdict on them is in shadow_scores, the KPIs put each side back."""
    challenger = parse_rules(CHALLENGER)
    with databases.fresh("wb_rollout", template=template_db) as dsn:
        with connect(dsn) as conn:
            shadow.set_shadow(conn, challenger.version, CHALLENGER, "tester", rollout=30)
        stream(dsn, rules_dir, seed=7)
        stream(dsn, rules_dir, seed=8)  # a restart, on the same cards (other transactions)
        sides = arms(dsn, challenger.version)
        with connect(dsn) as conn:
            n, both_runs, other_side = conn.execute(
                "SELECT count(*),"
                " (SELECT count(*) FROM (SELECT card_id FROM transactions GROUP BY card_id"
                "   HAVING bool_or(tx_id LIKE 'sim7-%%') AND bool_or(tx_id LIKE 'sim8-%%')) c),"
                " (SELECT count(*) FROM shadow_scores s JOIN transactions t USING (tx_id, ts)"
                "   WHERE s.rule_set_version <> t.rule_set_version)"
                " FROM transactions"
            ).fetchone()
        alerted = alert_rules(dsn)
        kpis = shadow_compare(dsn=dsn)

    assert both_runs > 100  # many cards were scored in both runs
    assert all(len(decided) == 1 for decided in sides.values())  # no card changed sides
    cards = list(sides)
    expected = rollout_bucket(cards) < 30
    assert [sides[c] == {True} for c in cards] == expected.tolist()
    assert 0.2 < expected.mean() < 0.4
    assert other_side == n >= 2 * RECORDS  # one verdict stored, the other in the shadow
    mine = {c for c in cards if sides[c] == {True}}
    assert alerted and all((rules == {"everything"}) == (card in mine) for card, rules in alerted)
    assert {card for card, _ in alerted} & mine  # the challenger did alert for its cards
    assert kpis.rows == n and kpis.flagged.loc["shadow", "flagged"] == n
    rules = kpis.rules.set_index("rule_id")
    assert rules.loc["everything", "shadow_hits"] == n
    assert rules.loc["everything", "active_hits"] == 0


def test_rollout_zero_changes_nothing_and_a_hundred_hands_the_alerts_over(
    databases, template_db: str, rules_dir: Path
) -> None:
    challenger = parse_rules(CHALLENGER)
    without = plain_outcome(databases, template_db, rules_dir)
    done, replayed = {}, {}
    for rollout in (0, 30, 100):
        with databases.fresh(f"wb_rollout_{rollout}", template=template_db) as dsn:
            with connect(dsn) as conn:
                shadow.set_shadow(conn, challenger.version, CHALLENGER, "t", rollout=rollout)
            stream(dsn, rules_dir)
            with connect(dsn) as conn:
                kept = conn.execute(
                    "SELECT tx_id, band, rule_set_version FROM shadow_scores ORDER BY 1"
                ).fetchall()
            done[rollout] = (outcome(dsn), kept, alert_rules(dsn))
            if rollout == 100:  # an alert the challenger raised is explained by its rules
                with connect(dsn) as conn:
                    first = conn.execute("SELECT min(id) FROM alerts").fetchone()[0]
                alerts_view = AlertsView(dsn, Identity("ana", Role.ANALYST, provider="basic"))
                asyncio.run(alerts_view.select(first))
                explained = alerts_view.explanation.value.set_index("rule")
            # Stream == backtest, set by set: each reproduces exactly the rows it decided
            # (the backtest scores one set; it says so when the live rows had two).
            for rules in (str(rules_dir), CHALLENGER):
                result = backtest(rules, dsn=dsn)
                frame = result.frame
                mine = (frame["live_version"] == result.ruleset.version).to_numpy()
                same = frame["score"].to_numpy() == frame["live_score"].to_numpy()
                replayed[rollout, rules is CHALLENGER] = (int(mine.sum()), bool(same[mine].all()))
            replayed[rollout, "note"] = result.live_note
    n = len(without["scores"])
    assert replayed[0, False] == (n, True) and replayed[0, True] == (0, True)
    assert replayed[100, False] == (0, True) and replayed[100, True] == (n, True)
    (active_rows, active_same), (mine_rows, mine_same) = replayed[30, False], replayed[30, True]
    assert active_same and mine_same and active_rows + mine_rows == n and mine_rows > 0
    assert "2 rule-set versions" in replayed[30, "note"] and "rollout" in replayed[30, "note"]
    assert "one rule set" in replayed[100, "note"]
    assert done[0][0] == without  # at 0 %: scores, alerts, cases, evidence as without it
    assert len(without["alerts"]) > 0
    got, kept, alerted = done[100]
    assert kept == without["scores"]  # the active set's verdict, whole, in the shadow
    assert {row[1:] for row in got["scores"]} == {("High", challenger.version)}
    assert len(alerted) >= len(without["alerts"])
    assert all(rules == {"everything"} for _, rules in alerted)  # the active set never alerts
    assert len(got["evidence"]) > 0
    assert explained.loc["everything", "when"] == "amount >= 0 and shadow_card_1h >= 0"


def test_the_rollout_is_audited_and_refused_to_roles_that_may_not_publish(
    db_dsn: str, published: str
) -> None:
    challenger = parse_rules(CHALLENGER)
    with connect(db_dsn) as conn:
        shadow.set_shadow(conn, challenger.version, CHALLENGER, "rui")
    for role in (Role.VIEWER, Role.ANALYST):
        with pytest.raises(AccessDenied):
            Actions(Identity("eve", role, provider="basic"), db_dsn).set_shadow_rollout(50)
    author = Actions(Identity("rui", Role.RULE_AUTHOR, provider="basic"), db_dsn)
    with pytest.raises(ConfigError, match="whole percent"):
        author.set_shadow_rollout(101)
    with pytest.raises(ConfigError, match="rollout unchanged"):
        author.set_shadow_rollout(20, expected="0123456789abcdef")
    with connect(db_dsn) as conn:
        assert shadow.current(conn)["rollout"] == 0  # nothing refused took effect
    assert author.set_shadow_rollout(20, expected=challenger.version)["rollout"] == 0
    view = ShadowView(db_dsn, author)
    asyncio.run(view.load())
    assert view.rollout_input.value == 20 and "deciding for 20 % of the cards" in (
        view.message.object
    )
    view.rollout_input.value = 35
    assert asyncio.run(view.set_rollout())["rollout"] == 20
    with connect(db_dsn) as conn:
        current = shadow.current(conn)
        trail = audit.recent(conn, 10, action="rules.shadow_rollout")
    assert (current["version"], current["rollout"]) == (challenger.version, 35)
    assert list(trail["outcome"]) == ["ok", "ok", "failed", "failed", "refused", "refused"]
    assert list(trail["actor"]) == ["rui"] * 4 + ["eve"] * 2
    assert trail.iloc[0]["before"] == {"version": challenger.version, "rollout": 20}
    assert trail.iloc[0]["after"] == {"version": challenger.version, "rollout": 35}
    analyst = ShadowView(db_dsn, Actions(Identity("eve", Role.ANALYST, provider="basic"), db_dsn))
    assert not analyst.rollout_button.visible and not analyst.rollout_input.visible


def test_cli_sets_and_changes_the_rollout(
    db_dsn: str, published: str, challenger_dir: Path
) -> None:
    folder, version = challenger_dir, parse_rules(CHALLENGER).version
    cli = functools.partial(rules_cli, db_dsn)

    done = cli("shadow", "set", "--rollout", "150")
    assert done.returncode == 2 and "whole percent from 0 to 100" in done.stderr
    done = cli("shadow", "set")
    assert done.returncode == 1 and "--rollout PCT" in done.stderr
    done = cli("shadow", "set", "--rollout", "10")  # no challenger yet
    assert done.returncode == 1 and "no shadow rule set in effect" in done.stderr
    done = cli("shadow", "set", str(folder), "--rollout", "15")
    assert done.returncode == 0 and "decides for 15 % of the cards" in done.stdout, done.stderr
    done = cli("shadow", "set", "--rollout", "40")
    assert done.returncode == 0 and "(was 15 %)" in done.stdout, done.stderr
    status = cli("status")
    assert f"shadow: version {version} since " in status.stdout
    assert "deciding for 40 % of the cards" in status.stdout
    with connect(db_dsn) as conn:
        assert shadow.current(conn)["rollout"] == 40
        trail = audit.recent(conn, 10, action="rules.shadow")
    assert list(trail["action"]) == ["rules.shadow_rollout", "rules.shadow_set"]
    assert trail.iloc[0]["after"] == {"version": version, "rollout": 40}


def test_a_rebuild_feeds_the_challengers_own_features_too(
    databases, template_db: str, rules_dir: Path
) -> None:
    """A worker whose partitions change rebuilds the challenger's own feature state from
    stored history like the active set's (under a rollout those features decide)."""
    challenger = parse_rules(CHALLENGER)
    with databases.fresh("wb_rebuild", template=template_db) as dsn:
        stream(dsn, rules_dir)
        detector = Detector(parse_rules(rules_dir_texts(rules_dir)))
        detector.set_shadow(challenger, rollout=50)
        fed = StateRebuild(dsn, 2).rebuild(detector, [0, 1])
    assert fed >= RECORDS
    assert detector.features.state_rows > 0
    assert detector.shadow_features is not None and detector.shadow_features.state_rows > 0


def rules_dir_texts(rules_dir: Path) -> dict[str, str]:
    return {f"rules/{p.name}": p.read_text() for p in sorted(rules_dir.glob("*.yaml"))}


def test_workers_follow_a_change_of_the_rollout_alone(db_dsn: str, published: str) -> None:
    challenger = parse_rules(CHALLENGER)
    calls: list = []
    follower = Follower(db_dsn, lambda _r: None, published, apply_shadow=lambda *a: calls.append(a))
    with connect(db_dsn) as conn:
        shadow.set_shadow(conn, challenger.version, CHALLENGER, "rui")
        follower.sync(conn)
        shadow.set_rollout(conn, 40, "rui")
        follower.sync(conn)
        follower.sync(conn)  # nothing changed since
        shadow.clear(conn, "rui")
        follower.sync(conn)
    assert [(a[0].version if a[0] else None, *a[1:]) for a in calls] == [
        (challenger.version, 0),
        (challenger.version, 40),
        (None,),
    ]
