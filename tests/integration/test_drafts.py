"""Rule drafts against a real PostgreSQL: a draft leaves the live rules alone, its review
shows the diff against the active set and a backtest, and it goes live only through the
reviewed publish path — role checked, rule-set row and audit row written together."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.analysis import audit_log, drafts
from workbench.auth.roles import AccessDenied, Identity, Role
from workbench.dashboard.publishing import StaleProposal
from workbench.rules import load_rules
from workbench.storage import connect, shared_store, write_batch

pytestmark = pytest.mark.integration


def test_a_draft_is_reviewed_then_published_with_its_audit_row(
    db_dsn, make_batch, published, rules_dir: Path, tmp_path: Path
) -> None:
    with connect(db_dsn) as conn:
        write_batch(conn, make_batch(300, step_s=60.0), alert_dedup_s=600.0)
    live = (rules_dir / "default.yaml").read_text(encoding="utf-8")
    text = live.replace("bands: {medium: 40, high: 70}", "bands: {medium: 35, high: 60}", 1)
    assert text != live
    path = drafts.write_draft("default.yaml", text, tmp_path / "drafts")
    assert path.read_text(encoding="utf-8") == text
    assert (rules_dir / "default.yaml").read_text(encoding="utf-8") == live  # untouched

    reviewed = drafts.review(path, rules_dir, dsn=db_dsn)
    assert reviewed.proposal.active == published
    assert "-bands: {medium: 40, high: 70}" in reviewed.proposal.diff
    assert "+bands: {medium: 35, high: 60}" in reviewed.proposal.diff
    assert reviewed.result.rows == 300
    assert set(reviewed.comparison.summary.index) == {"live", "candidate"}
    assert (rules_dir / "default.yaml").read_text(encoding="utf-8") == live  # still untouched

    viewer = Identity("vera", Role.VIEWER, provider="basic")
    with pytest.raises(AccessDenied):
        drafts.publish(drafts.Review(**{**vars(reviewed), "identity": viewer}), dsn=db_dsn)
    assert drafts.publish(reviewed, dsn=db_dsn)
    assert (rules_dir / "default.yaml").read_text(encoding="utf-8") == text
    active = shared_store(db_dsn).rule_sets.active()
    assert active["version"] == reviewed.ruleset.version == load_rules(rules_dir).version
    assert active["author"] == reviewed.identity.user
    rows = audit_log(action="rules.publish", dsn=db_dsn)
    ok = rows[rows["outcome"] == "ok"].iloc[0]
    assert ok["actor"] == reviewed.identity.user and ok["provider"] == "notebook"
    assert ok["object"] == f"rule_set {reviewed.ruleset.version}"
    assert ok["before"]["version"] == published
    assert (rows["outcome"] == "refused").sum() == 1 and "vera" in set(rows["actor"])

    # The same review again: the active version moved on, so it is refused as stale.
    with pytest.raises(StaleProposal):
        drafts.publish(reviewed, dsn=db_dsn)


def test_an_invalid_draft_is_refused_before_it_is_written(tmp_path: Path) -> None:
    from workbench.errors import RuleError

    with pytest.raises(RuleError):
        drafts.write_draft("bad.yaml", "rules: [{id: x, when: amount >, score: 1}]", tmp_path)
    assert not (tmp_path / "bad.yaml").exists()
