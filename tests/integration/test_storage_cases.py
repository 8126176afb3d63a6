"""Cases against a real PostgreSQL: the batch joins them, one active case per card under
concurrent writers, the claim race, keyset paging and filters against a pandas brute force."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from tests.case_seed import seed_cases
from workbench.errors import StorageError
from workbench.pipeline.worker import build_pipeline
from workbench.settings import Settings
from workbench.storage import case_writes, cases
from workbench.storage.connection import connect
from workbench.storage.writer import BatchWriter, write_batch

pytestmark = pytest.mark.integration


def test_a_batch_opens_one_case_per_card_and_later_hits_join_it(conn, make_batch):
    write_batch(conn, make_batch(300, cards=[f"c{k % 7}" for k in range(300)]))
    frame = pd.DataFrame(
        conn.execute(
            "SELECT c.card_id, c.alert_count, c.hit_count, c.max_score, c.status,"
            " (SELECT count(*) FROM alerts a WHERE a.case_id = c.id),"
            " (SELECT sum(hit_count) FROM alerts a WHERE a.case_id = c.id) FROM cases c"
        ).fetchall(),
        columns=["card", "alerts", "hits", "score", "status", "linked", "linked_hits"],
    )
    assert sorted(frame["card"]) == [f"c{k}" for k in range(7)]
    assert (frame["alerts"] == frame["linked"]).all()
    assert (frame["hits"] == frame["linked_hits"]).all()
    assert conn.execute("SELECT count(*) FROM alerts WHERE case_id IS NULL").fetchone()[0] == 0
    # A later batch (a day later: new alerts, not attached ones) joins the same cases.
    before = dict(conn.execute("SELECT card_id, alert_count FROM cases").fetchall())
    write_batch(
        conn,
        make_batch(
            100, cards=[f"c{k % 7}" for k in range(100)], start="2026-01-02T00:00:00Z", prefix="u"
        ),
    )
    after = dict(conn.execute("SELECT card_id, alert_count FROM cases").fetchall())
    assert set(after) == set(before) and all(after[c] > before[c] for c in after)
    kinds = conn.execute("SELECT kind, count(*) FROM case_events GROUP BY kind").fetchall()
    assert dict(kinds)["hit"] == 14  # one hit event per case per batch
    rules = json.loads(json.dumps(conn.execute("SELECT rules FROM cases LIMIT 1").fetchone()[0]))
    assert set(rules) == {"big_amount", "new_country"}


def test_a_closed_case_is_not_joined_a_new_one_opens(conn, make_batch):
    write_batch(conn, make_batch(100, cards=["solo"] * 100))
    case_id = conn.execute("SELECT id FROM cases").fetchone()[0]
    with conn.transaction():
        change, closed = cases.close(conn, case_id, "false_positive", "alice", "benign")
    assert closed and change["after"]["status"] == "closed"
    open_alerts = conn.execute("SELECT count(*) FROM alerts WHERE status = 'open'").fetchone()
    assert open_alerts[0] == 0
    dispositions = conn.execute("SELECT DISTINCT disposition FROM alerts").fetchall()
    assert dispositions == [("false_positive",)]
    write_batch(conn, make_batch(100, cards=["solo"] * 100, prefix="v"))
    rows = conn.execute("SELECT status FROM cases ORDER BY id").fetchall()
    assert rows == [("closed",), ("open",)]


def test_two_concurrent_writers_never_open_two_cases_for_a_card(db_dsn, make_batch):
    cards = [f"shared{k % 40}" for k in range(400)]
    batches = [make_batch(400, cards=cards, prefix=p, start=f"2026-01-0{d}T00:00:00Z")
               for p, d in (("p", 1), ("q", 1), ("r", 2), ("s", 2))]  # fmt: skip
    errors: list[BaseException] = []

    def work(mine):
        try:
            with connect(db_dsn) as own:
                writer = BatchWriter(own)
                for batch in mine:
                    writer.write(batch)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(batches[i::2],)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with connect(db_dsn) as conn:
        per_card = conn.execute(
            "SELECT card_id, count(*) FROM cases WHERE status <> 'closed' GROUP BY 1"
        ).fetchall()
        assert len(per_card) == 40 and {n for _, n in per_card} == {1}
        unlinked = conn.execute("SELECT count(*) FROM alerts WHERE case_id IS NULL").fetchone()
        assert unlinked[0] == 0


def test_two_analysts_claiming_one_case_the_second_is_told_who_holds_it(db_dsn):
    with connect(db_dsn) as setup:
        seed_cases(setup, 3)
        case_id = setup.execute("SELECT min(id) FROM cases WHERE assignee IS NULL").fetchone()[0]
    first, second = connect(db_dsn), connect(db_dsn)
    outcome: dict = {}
    try:
        tx = first.transaction()
        tx.__enter__()
        cases.claim(first, case_id, "alice")  # holds the row lock, not committed yet

        def bob():
            try:
                with second.transaction():
                    cases.claim(second, case_id, "bob")
                outcome["bob"] = "claimed"
            except cases.CaseHeld as exc:
                outcome["bob"] = exc.holder

        thread = threading.Thread(target=bob)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive()  # waiting for alice's transaction
        tx.__exit__(None, None, None)
        thread.join(5)
        assert outcome["bob"] == "alice"
        assert (
            first.execute("SELECT assignee FROM cases WHERE id = %s", (case_id,)).fetchone()[0]
            == "alice"
        )
    finally:
        first.close()
        second.close()


def test_release_by_another_analyst_is_refused_and_notes_are_bounded(conn):
    seed_cases(conn, 2)
    case_id = conn.execute("SELECT min(id) FROM cases WHERE assignee IS NULL").fetchone()[0]
    with conn.transaction():
        cases.claim(conn, case_id, "alice")
    with pytest.raises(cases.CaseHeld, match="alice"), conn.transaction():
        cases.release(conn, case_id, "bob")
    for bad in ("x" * (case_writes.MAX_NOTE + 1), "bell\x07", "esc\x1b[31m", "   "):
        with pytest.raises(StorageError), conn.transaction():
            cases.note(conn, case_id, bad, "alice")
    with conn.transaction():
        cases.note(conn, case_id, "<b>looks</b> like\nfraud", "alice")
    timeline = cases.events(conn, case_id)
    assert timeline["kind"].tolist() == ["claim", "note"]


def _all(conn, filters, sort, limit, *, arrivals=0):
    seen, cursor, pages = [], None, 0
    while True:
        page = cases.page(conn, filters, sort, after=cursor, limit=limit)
        seen += page.ids
        pages += 1
        if arrivals and pages == 2:
            seed_cases(conn, arrivals, prefix="late", seed=0.9, alerts=False)
        if page.next is None:
            return seen
        cursor = page.next


@pytest.mark.parametrize("sort", list(cases.SORTS))
def test_keyset_paging_returns_every_row_once_while_cases_arrive(conn, sort):
    seed_cases(conn, 700)
    before = {i for (i,) in conn.execute("SELECT id FROM cases").fetchall()}
    seen = _all(conn, cases.Filters(), sort, 64, arrivals=50)
    assert len(seen) == len(set(seen))
    assert before <= set(seen)
    # And backwards: the page before the third is the second.
    p1 = cases.page(conn, None, sort, limit=40)
    p2 = cases.page(conn, None, sort, after=p1.next, limit=40)
    p3 = cases.page(conn, None, sort, after=p2.next, limit=40)
    assert cases.page(conn, None, sort, before=p3.previous, limit=40).ids == p2.ids


def test_filters_and_sorts_agree_with_pandas(conn):
    seed_cases(conn, 1500, seed=0.17)
    with conn.transaction():
        conn.execute("UPDATE cases SET status = 'closed', closed_at = now(),"
                     " outcome = 'valuable' WHERE id % 11 = 0")  # fmt: skip
    frame = pd.DataFrame(
        conn.execute(
            "SELECT id, status, assignee, band, max_score, max_amount::float8, rules,"
            " opened_at, sla_due FROM cases"
        ).fetchall(),
        columns=["id", "status", "assignee", "band", "score", "amount", "rules", "opened", "sla"],
    )
    rng = np.random.default_rng(5)
    combos = [
        cases.Filters(),
        cases.Filters(bands=("High",), assignee="unassigned"),
        cases.Filters(rule="velocity", score_min=60.0, amount_max=3000.0),
        cases.Filters(statuses=("closed",)),
        cases.Filters(statuses=("open", "investigating", "closed"), assignee="me", user="bob"),
        cases.Filters(statuses=("investigating",), amount_min=1000.0, score_max=90.0),
    ]
    for filters in combos:
        expected = frame[frame["status"].isin(filters.statuses)]
        if filters.bands:
            expected = expected[expected["band"].isin(filters.bands)]
        if filters.rule:
            expected = expected[expected["rules"].map(lambda r, k=filters.rule: k in r)]
        if filters.assignee == "unassigned":
            expected = expected[expected["assignee"].isna()]
        elif filters.assignee == "me":
            expected = expected[expected["assignee"] == filters.user]
        for col, low, high in (("score", filters.score_min, filters.score_max),
                               ("amount", filters.amount_min, filters.amount_max)):  # fmt: skip
            if low is not None:
                expected = expected[expected[col] >= low]
            if high is not None:
                expected = expected[expected[col] <= high]
        sort = str(rng.choice(list(cases.SORTS)))
        name, desc = {"score": ("score", True), "opened": ("opened", False),
                      "sla": ("sla", False), "amount": ("amount", True)}[sort]  # fmt: skip
        order = expected.sort_values([name, "id"], ascending=not desc)["id"].tolist()
        assert _all(conn, filters, sort, 97) == order, (filters, sort)
        counted = cases.counts(conn, filters)
        assert sum(counted["status"][s] for s in filters.statuses) >= len(expected)
        if len(set(filters.statuses)) == 1:
            assert counted["status"][filters.statuses[0]] == len(expected)


def test_counts_are_capped(conn):
    seed_cases(conn, 300, alerts=False)
    counted = cases.counts(conn, cases.Filters(), cap=100)
    assert counted["status"]["open"] == 101  # "100+"
    assert counted["status"]["closed"] == 0


def _due_after_opening(conn, card: str):
    return conn.execute(
        "SELECT sla_due - opened_at FROM cases WHERE card_id = %s", (card,)
    ).fetchone()[0]


def test_a_new_case_is_due_the_case_sla_after_it_opens(conn, make_batch):
    write_batch(conn, make_batch(100, cards=["quick"] * 100), case_sla_s=7200.0)
    write_batch(conn, make_batch(100, cards=["usual"] * 100, prefix="u"))
    assert _due_after_opening(conn, "quick") == timedelta(hours=2)
    assert _due_after_opening(conn, "usual") == timedelta(hours=24)  # the default


def test_the_worker_opens_cases_with_the_case_sla_setting(db_dsn, rules_dir, make_batch):
    settings = Settings.load({"WORKBENCH_RULES_DIR": str(rules_dir), "WORKBENCH_CASE_SLA": "2h"})
    pipeline = build_pipeline(settings, db_dsn)
    try:
        assert asyncio.run(pipeline.writer.write(make_batch(100, cards=["piped"] * 100)))
    finally:
        pipeline.writer.close()
    with connect(db_dsn) as conn:
        assert _due_after_opening(conn, "piped") == timedelta(hours=2)


def test_a_case_keeps_the_currency_of_its_largest_amount(conn, make_batch):
    batch = make_batch(100, cards=["cur"] * 100, scores=[90.0] * 100)
    batch.frame["amount"] = 10.0 + np.arange(100)  # the largest: 109.00, in USD
    batch.frame["currency"] = ["EUR"] * 99 + ["USD"]
    write_batch(conn, batch)
    row = conn.execute("SELECT max_amount, currency FROM cases WHERE card_id = 'cur'").fetchone()
    assert (str(row[0]), row[1]) == ("109.00", "USD")
    # A later batch with a smaller largest amount keeps it; a larger one brings its currency.
    for amount, currency, prefix, expected in [
        (50.0, "GBP", "u", ("109.00", "USD")),
        (250.25, "CHF", "v", ("250.25", "CHF")),
    ]:
        later = make_batch(
            10, cards=["cur"] * 10, scores=[90.0] * 10, start="2026-01-03T00:00:00Z", prefix=prefix
        )
        later.frame["amount"] = [amount] * 10
        later.frame["currency"] = [currency] * 10
        write_batch(conn, later)
        row = conn.execute(
            "SELECT max_amount, currency FROM cases WHERE card_id = 'cur'"
        ).fetchone()
        assert (str(row[0]), row[1]) == expected
    assert conn.execute("SELECT count(*) FROM cases WHERE card_id = 'cur'").fetchone()[0] == 1
