"""The case queue page without a browser: its callbacks called directly, a real PostgreSQL."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.case_seed import seed_cases
from workbench.auth.roles import Identity, Role
from workbench.dashboard.case_view import CasesPage
from workbench.dashboard.queue import PAGE_ROWS
from workbench.storage.writer import write_batch

pytestmark = pytest.mark.integration

ANA = Identity("ana", Role.ANALYST, provider="basic")
VERA = Identity("vera", Role.VIEWER, provider="basic")


def run(coroutine):
    return asyncio.run(coroutine)


def test_paging_filtering_and_a_close_that_keeps_the_position(conn, db_dsn):
    seed_cases(conn, 180)
    page = CasesPage(db_dsn, ANA)
    run(page.refresh())
    queue = page.queue
    first = list(queue.page.ids)
    assert len(first) == PAGE_ROWS and queue.current == first[0]
    assert page.case.case is not None and int(page.case.case["id"]) == first[0]
    assert len(page.case.alerts.queue.value) == 1  # the case's one alert
    run(queue.next_page())
    second = list(queue.page.ids)
    assert not set(first) & set(second)
    # Select the 4th row, close it: the 5th takes its place, still on page 2.
    run(queue.choose(second[3]))
    run(page.case.close("false_positive"))
    assert queue.page.ids[:3] == second[:3] and queue.page.ids[3] == second[4]
    assert queue.current == second[4]
    assert "closed as False positive by ana" in page.case.message.object
    run(queue.previous_page())
    assert queue.page.ids == first
    # A filter goes back to the first page of what it selects.
    queue.band.value = ["High"]
    run(queue.refresh(keep_position=False))
    assert set(queue.table.value["band"]) == {"High"}
    assert "band" in queue.counts.object


def test_claim_by_key_and_bulk_close(conn, db_dsn):
    seed_cases(conn, 60)
    conn.execute("UPDATE cases SET assignee = NULL")
    page = CasesPage(db_dsn, ANA)
    run(page.refresh())
    run(page._on_key("c"))
    assert page.case.case["assignee"] == "ana"
    run(page.queue.step(1))
    assert page.queue.current == page.queue.page.ids[1]
    page.queue.table.selection = [0, 1, 2]
    ticked = page.queue.ticked()
    run(page.queue.close_ticked())
    closed = conn.execute(
        "SELECT count(*) FROM cases WHERE status = 'closed' AND id = ANY(%s)", (ticked,)
    ).fetchone()[0]
    assert closed == 3
    assert "Closed 3 case(s)" in page.queue.message.object


def test_a_viewer_sees_the_queue_but_every_button_is_refused(conn, db_dsn):
    seed_cases(conn, 5)
    page = CasesPage(db_dsn, VERA)
    run(page.refresh())
    assert page.case.claim_button.disabled and page.queue.bulk_button.disabled
    run(page.case.claim())  # called anyway, as a crafted message would
    assert "Not allowed" in page.case.message.object
    assert conn.execute("SELECT count(*) FROM cases WHERE assignee = 'vera'").fetchone()[0] == 0


def test_amounts_show_their_currency_to_the_cent(conn, db_dsn, make_batch):
    batch = make_batch(100, cards=["usd-card"] * 100, scores=[90.0] * 100)
    batch.frame["currency"] = "USD"
    batch.frame["amount"] = 1234.56 + np.arange(100) * 0.01  # the largest: 1,235.55
    write_batch(conn, batch)
    page = CasesPage(db_dsn, ANA)
    run(page.refresh())
    row = page.queue.table.value.iloc[0]
    assert (row["card_id"], row["amount"], row["currency"]) == ("usd-card", 1235.55, "USD")
    header = page.case.header.object
    assert "largest amount 1,235.55 USD" in str(header)
    alert = page.case.alerts.queue.value.iloc[0]
    run(page.case.alerts.select(int(alert["id"])))
    timeline = page.case.alerts.evidence.timeline.value
    assert set(timeline["currency"]) == {"USD"}
    assert timeline["amount"].iloc[0] == 1234.56  # the alert's transaction, to the cent
