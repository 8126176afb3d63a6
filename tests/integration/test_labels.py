"""Labels against a real PostgreSQL: dispositions become labels (as the dashboard's role, in
the disposition's transaction), a hostile chargeback file is checked row by row, precision per
rule from analyst labels, and a backtest's analyst-label precision follows dispositions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import psycopg
import pytest

from workbench.analysis import backtest
from workbench.auth.roles import Identity, Role
from workbench.cli.main import main
from workbench.dashboard.actions import Actions
from workbench.storage import audit, connect, labels, shared_store, write_batch
from workbench.storage.credentials import PasswordFile
from workbench.storage.roles import dsns, ensure

pytestmark = pytest.mark.integration

ANALYST = Identity("ana", Role.ANALYST, provider="basic")
START = "2026-01-01T00:00:00Z"


def _seed(dsn: str, make_batch, n: int = 200):
    """n transactions, one each 30 s on 10 cards; scores i % 100 (>= 70: High, hitting
    big_amount and new_country), so each alert gathers a few hits of its card."""
    cards = [f"card{k % 10}" for k in range(n)]
    with connect(dsn) as conn:
        write_batch(conn, make_batch(n, start=START, step_s=30.0, cards=cards), alert_dedup_s=600.0)
        ids = [r[0] for r in conn.execute("SELECT id FROM alerts ORDER BY id").fetchall()]
    return ids


def _labels(dsn: str) -> list[tuple]:
    with connect(dsn) as conn:
        return conn.execute(
            "SELECT tx_id, label, known_at, source, actor, alert_id FROM labels ORDER BY id"
        ).fetchall()


def test_a_disposition_labels_every_attached_transaction_known_at_the_streams_now(
    db_dsn, make_batch
):
    first, second = _seed(db_dsn, make_batch)[:2]
    with connect(db_dsn) as conn:
        hits = {r[0] for r in conn.execute(
            "SELECT tx_id FROM alert_hits WHERE alert_id = %s", (first,))}  # fmt: skip
        newest = conn.execute("SELECT max(ts) FROM transactions").fetchone()[0]
    after = Actions(ANALYST, db_dsn).dispose(first, "valuable")
    assert after["labels"] == len(hits) > 1
    rows = _labels(db_dsn)
    assert {r[0] for r in rows} == hits
    assert {r[1:] for r in rows} == {("fraud", newest, "analyst", "ana", first)}
    # the analyst changes their mind: a new version, the old one kept as history
    Actions(ANALYST, db_dsn).dispose(first, "false_positive")
    Actions(ANALYST, db_dsn).dispose(second, "confirmed_fraud")
    cur = labels.current(shared_store(db_dsn))
    assert len(_labels(db_dsn)) == 2 * len(hits) + len(cur) - len(hits)
    assert set(cur[cur["tx_id"].isin(hits)]["label"]) == {"legitimate"}
    trail = audit.recent(shared_store(db_dsn), 10, action="alert.dispose")
    assert trail["outcome"].tolist() == ["ok"] * 3
    assert trail["detail"].iloc[-1] == f"{len(hits)} transaction(s) labelled fraud"


def test_a_refused_disposition_writes_no_label(db_dsn, make_batch):
    first = _seed(db_dsn, make_batch)[0]
    viewer = Identity("vera", Role.VIEWER)
    with pytest.raises(Exception, match="may not dispose"):
        Actions(viewer, db_dsn).dispose(first, "confirmed_fraud")
    assert _labels(db_dsn) == []


def test_the_dashboard_role_writes_labels_but_never_rewrites_them(db_dsn, make_batch, tmp_path):
    first = _seed(db_dsn, make_batch)[0]
    role = dsns(ensure(db_dsn, PasswordFile(tmp_path / "pgpass")))
    with connect(role["dashboard"]) as conn, conn.transaction():
        assert labels.from_dispositions(conn, [first], "confirmed_fraud", None, "ana") > 0
    for statement in ("UPDATE labels SET label = 'legitimate'", "DELETE FROM labels"):
        with (
            connect(role["dashboard"]) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute(statement)
    with connect(role["pipeline"]) as conn:
        assert len(labels.since(conn, 0)) > 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM labels")


HOSTILE = (
    "tx_id,label,known_at,source\n"
    "tx0000003,fraud,2026-01-02T00:00:00Z,\n"  # 2: ok, source defaults to chargeback
    "tx0000004,Legitimate,2026-01-02 00:00,chargeback\n"  # 3: ok (case, no zone: UTC)
    "tx0000005,maybe,2026-01-02T00:00:00Z,\n"  # 4: bad label
    "tx0000006,fraud,yesterday,\n"  # 5: bad time
    "tx0000007,fraud,2026-01-02T00:00:00Z,analyst\n"  # 6: analyst is refused
    "nope<script>,fraud,2026-01-02T00:00:00Z,\n"  # 7: unknown tx_id
    "tx0000008,fraud,2025-12-31T00:00:00Z,\n"  # 8: known before the transaction
    "tx0000009,fraud,2026-01-02T00:00:00Z,x,y\n"  # 9: too many fields
    "tx\x01010,fraud,2026-01-02T00:00:00Z,\n"  # 10: control character
    "tx0000011,fraud,2026-01-02T00:00:00Z,DROP TABLE\n"  # 11: bad source
)


def test_a_hostile_chargeback_file_is_checked_row_by_row(db_dsn, make_batch, tmp_path, capsys,
                                                        monkeypatch):  # fmt: skip
    _seed(db_dsn, make_batch)
    path = tmp_path / "chargebacks.csv"
    path.write_text(HOSTILE)
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", db_dsn)
    assert main(["labels", "import", str(path)]) == 0
    out = capsys.readouterr().out
    for line in (4, 5, 6, 8, 9, 10, 11):
        assert f"chargebacks.csv:{line}: bad row" in out
    assert "chargebacks.csv:7: unknown tx_id: 'nope<script>'" in out
    assert "ok: 2 labels stored of 10 rows (7 bad, 1 unknown tx_id)" in out
    rows = _labels(db_dsn)
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("tx0000003", "fraud", "chargeback"),
        ("tx0000004", "legitimate", "chargeback"),
    ]
    [entry] = audit.recent(shared_store(db_dsn), 5, action="labels.import").to_dict("records")
    assert entry["actor"].startswith("cli:") and entry["after"]["stored"] == 2


def test_a_file_without_the_header_is_refused_whole(db_dsn, tmp_path, monkeypatch, capsys):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", db_dsn)
    assert main(["labels", "import", str(path)]) == 1
    assert "missing tx_id, label, known_at" in capsys.readouterr().err


def test_precision_per_rule_from_analyst_labels(db_dsn, make_batch):
    ids = _seed(db_dsn, make_batch)
    store = shared_store(db_dsn)
    assert labels.precision(store).empty
    Actions(ANALYST, db_dsn).dispose(ids[0], "confirmed_fraud")
    Actions(ANALYST, db_dsn).dispose(ids[1], "false_positive")
    table = labels.precision(store).set_index("rule_id")
    with connect(db_dsn) as conn:
        expect = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE h.alert_id = %s) FROM alert_hits h"
            " JOIN transactions t USING (tx_id, ts) WHERE t.rule_hits ? 'new_country'"
            " AND h.alert_id IN (%s, %s)",
            (ids[0], ids[0], ids[1]),
        ).fetchone()
    assert (table.loc["new_country", "labelled"], table.loc["new_country", "fraud"]) == expect
    assert table.loc["new_country", "precision"] == expect[1] / expect[0]
    # a time range with none of them
    assert labels.precision(store, pd.Timestamp("2030-01-01", tz="UTC")).empty


RULES = {
    "r.yaml": """
bands: {medium: 40, high: 70}
alert: {min_band: high, dedup: 10m}
rules:
  - id: big
    when: amount > 100
    score: 80
    examples: {match: [{amount: 101}], no_match: [{amount: 99}]}
"""
}


def test_dispositions_change_a_backtests_analyst_precision(db_dsn, make_batch):
    ids = _seed(db_dsn, make_batch)
    before = backtest(RULES, dsn=db_dsn).compare()
    truths = before.truths.set_index(["scoring", "truth"])
    row = truths.loc[("candidate", "vs analyst labels")]
    assert row["labelled"] == 0 and pd.isna(row["precision"])
    assert truths.loc[("candidate", "vs simulator truth"), "labelled"] > 0
    Actions(ANALYST, db_dsn).dispose(ids[0], "confirmed_fraud")
    Actions(ANALYST, db_dsn).dispose(ids[1], "false_positive")
    result = backtest(RULES, dsn=db_dsn)
    frame = result.frame
    flagged = (frame["band"] == "High") & (frame["analyst_label"] >= 0)
    fraud = flagged & (frame["analyst_label"] == 1)
    after = result.compare().truths.set_index(["scoring", "truth"])
    row = after.loc[("candidate", "vs analyst labels")]
    assert row["labelled"] == (frame["analyst_label"] >= 0).sum() > 0
    assert row["precision"] == fraud.sum() / flagged.sum()
    assert 0 < row["precision"] < 1
    # simulator truth is untouched by the analysts' verdicts
    assert (
        after.loc[("candidate", "vs simulator truth"), "precision"]
        == truths.loc[("candidate", "vs simulator truth"), "precision"]
    )
    text = result.compare().text()
    assert "vs analyst labels" in text and "vs simulator truth" in text


def test_cli_backtest_names_both_truths(db_dsn, make_batch, tmp_path, monkeypatch, capsys):
    _seed(db_dsn, make_batch)
    (tmp_path / "r.yaml").write_text(RULES["r.yaml"])
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", db_dsn)
    assert main(["backtest", str(tmp_path / "r.yaml"), "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert {t["truth"] for t in out["truths"]} == {"vs simulator truth", "vs analyst labels"}


def test_from_dispositions_rejects_an_unknown_label(db_dsn):
    with pytest.raises(Exception, match="unknown label"):
        labels.from_dispositions(shared_store(db_dsn), [1], "perhaps", None, "x")


def test_labels_are_in_the_store(db_dsn):
    assert shared_store(db_dsn).labels.since(0).empty
    assert Path(labels.__file__).name == "labels.py"


def test_the_rule_precision_view_shows_the_query(db_dsn, make_batch):
    import asyncio

    from workbench.dashboard.precision import RulePrecisionView

    ids = _seed(db_dsn, make_batch)
    view = RulePrecisionView(db_dsn)
    assert asyncio.run(view.load()).empty and "0 rule(s)" in view.message.object
    Actions(ANALYST, db_dsn).dispose(ids[0], "confirmed_fraud")
    Actions(ANALYST, db_dsn).dispose(ids[1], "false_positive")
    view.range.value = "last 24 h"
    frame = asyncio.run(view.load())
    expect = labels.precision(shared_store(db_dsn))
    pd.testing.assert_frame_equal(frame, expect)
    shown = view.table.value.set_index("rule_id")
    assert shown.loc["new_country", "precision"].endswith(" %")
    assert "event time 2025-12-31" in view.message.object  # 24 h back from the stream's now


def test_the_analysis_api_reads_labels_and_precision(db_dsn, make_batch):
    from workbench.analysis import current_labels, rule_precision

    ids = _seed(db_dsn, make_batch)
    Actions(ANALYST, db_dsn).dispose(ids[0], "confirmed_fraud")
    assert set(current_labels(dsn=db_dsn)["label"]) == {"fraud"}
    table = rule_precision("2026-01-01", "2026-01-02", dsn=db_dsn)
    assert set(table["precision"]) == {1.0}
    assert rule_precision("2026-01-02", dsn=db_dsn).empty
