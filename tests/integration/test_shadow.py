"""A challenger rule set scored in the shadow of the active one, on real PostgreSQL and a real
pipeline: it never alerts (alerts and cases equal a run without it) while its scores are
stored for every transaction; promotion switches the active set with its audit row; a viewer
or an analyst is refused (and audited)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.analysis.shadow import shadow_compare
from workbench.auth.roles import AccessDenied, Identity, Role
from workbench.dashboard.actions import Actions
from workbench.dashboard.shadow_page import ShadowView
from workbench.pipeline.graph import Pipeline
from workbench.pipeline.reload import Follower, HotReload
from workbench.pipeline.writer import RetryingWriter
from workbench.rules import parse_rules
from workbench.scoring.detector import Detector
from workbench.scoring.result import Evaluation
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


def stream(dsn: str, rules_dir: Path) -> None:
    """The shipped rules on a fixed simulated stream; the challenger, if one is set, applied
    by the rule follower (as a worker does) before the first batch."""
    reload = HotReload(dsn, rules_dir, author="tester")
    ruleset = reload.initial()
    sim = Simulator(sim_customers=500, sim_terminals=200, batch_rows=250, seed=7)
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


def test_shadow_never_alerts_and_is_stored_for_every_transaction(
    databases, template_db: str, rules_dir: Path
) -> None:
    challenger = parse_rules(CHALLENGER)
    with databases.fresh("wb_plain", template=template_db) as plain:
        stream(plain, rules_dir)
        without = outcome(plain)
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


def test_cli_sets_clears_and_promotes(db_dsn: str, published: str, tmp_path: Path) -> None:
    folder = tmp_path / "challenger"
    folder.mkdir()
    (folder / "all.yaml").write_text(CHALLENGER["challenger/all.yaml"])
    version = parse_rules(CHALLENGER).version

    def cli(*args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "WORKBENCH_DATABASE_URL": db_dsn, "PYTHONPATH": str(ROOT)}
        return subprocess.run(
            [sys.executable, "-m", "workbench", "rules", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

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
