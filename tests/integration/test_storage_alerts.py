"""Alert dedup per card, set-based inside write_batch, against a real PostgreSQL."""

from __future__ import annotations

import pytest

from workbench import storage
from workbench.storage.writer import write_batch

pytestmark = pytest.mark.integration

DEDUP = 600.0  # 10 minutes


def _write(conn, batch, **kw):
    return write_batch(
        conn,
        batch,
        alert_min_band=kw.pop("band", "High"),
        alert_dedup_s=kw.pop("dedup", DEDUP),
        **kw,
    )


def _alerts(conn):
    return conn.execute(
        "SELECT card_id, tx_id, hit_count, risk_score, band, rules, status FROM alerts ORDER BY id"
    ).fetchall()


def test_several_rows_of_one_card_in_one_batch_open_one_alert(conn, make_batch):
    batch = make_batch(5, cards=["c1"] * 5, scores=[75, 10, 90, 80, 20], step_s=30)
    result = _write(conn, batch)
    assert (result.alerts_opened, result.alerts_attached) == (1, 2)
    [(card, tx_id, hits, score, band, rules, status)] = _alerts(conn)
    assert (card, tx_id, hits, score, band, status) == ("c1", "tx0000000", 3, 90.0, "High", "open")
    assert rules == {"big_amount": 40, "new_country": 50}  # each rule's maximum points
    attached = storage.alerts.hits(conn, 1)
    assert attached["tx_id"].tolist() == ["tx0000000", "tx0000002", "tx0000003"]


def test_different_cards_get_their_own_alerts(conn, make_batch):
    batch = make_batch(4, cards=["c1", "c2", "c1", "c3"], scores=[80, 80, 80, 10])
    result = _write(conn, batch)
    assert (result.alerts_opened, result.alerts_attached) == (2, 1)
    assert [(r[0], r[2]) for r in _alerts(conn)] == [("c1", 2), ("c2", 1)]


def test_a_later_batch_attaches_to_the_open_alert_within_the_window(conn, make_batch):
    _write(conn, make_batch(1, cards=["c1"], scores=[72], start="2026-01-01T10:00:00Z"))
    result = _write(
        conn,
        make_batch(
            2,
            cards=["c1", "c1"],
            scores=[95, 71],
            step_s=60,
            start="2026-01-01T10:05:00Z",
            prefix="b",
        ),
    )
    assert (result.alerts_opened, result.alerts_attached) == (0, 2)
    [(_, tx_id, hits, score, band, _, _)] = _alerts(conn)
    assert (tx_id, hits, score, band) == ("tx0000000", 3, 95.0, "High")
    last_ts = conn.execute("SELECT last_ts FROM alerts").fetchone()[0]
    assert last_ts.isoformat() == "2026-01-01T10:06:00+00:00"


def test_after_the_window_a_new_alert_opens(conn, make_batch):
    _write(conn, make_batch(1, cards=["c1"], scores=[80], start="2026-01-01T10:00:00Z"))
    result = _write(
        conn, make_batch(1, cards=["c1"], scores=[80], start="2026-01-01T10:10:01Z", prefix="b")
    )
    assert result.alerts_opened == 1
    assert len(_alerts(conn)) == 2


def test_a_gap_longer_than_the_window_inside_one_batch_opens_two_alerts(conn, make_batch):
    batch = make_batch(3, cards=["c1"] * 3, scores=[80, 80, 80], step_s=400)
    result = _write(conn, batch, dedup=300)
    assert (result.alerts_opened, result.alerts_attached) == (3, 0)
    result = _write(
        conn,
        make_batch(3, cards=["c9"] * 3, scores=[80, 80, 80], step_s=200, prefix="b"),
        dedup=300,
    )
    assert (result.alerts_opened, result.alerts_attached) == (1, 2)


def test_after_close_a_new_alert_opens(conn, make_batch):
    _write(conn, make_batch(1, cards=["c1"], scores=[80], start="2026-01-01T10:00:00Z"))
    storage.alerts.set_disposition(conn, 1, "false_positive", "ana", "known traveller")
    result = _write(
        conn, make_batch(1, cards=["c1"], scores=[80], start="2026-01-01T10:01:00Z", prefix="b")
    )
    assert result.alerts_opened == 1
    statuses = [r[-1] for r in _alerts(conn)]
    assert statuses == ["closed", "open"]


def test_alert_band_threshold_and_disabling(conn, make_batch):
    batch = make_batch(3, cards=["m", "h", "l"], scores=[50, 80, 10])
    assert _write(conn, batch, band="medium").alerts_opened == 2
    other = make_batch(3, cards=["m2", "h2", "l2"], scores=[50, 80, 10], prefix="b")
    result = _write(conn, other, band="none")
    assert (result.stored, result.alerts_opened) == (3, 0)
    assert len(_alerts(conn)) == 2


def test_concurrent_writers_share_one_alert_per_card(db_dsn, conn, make_batch):
    import threading

    from workbench.storage.connection import connect

    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            with connect(db_dsn) as own:
                for j in range(5):
                    batch = make_batch(
                        2,
                        cards=["c1", f"other{k}"],
                        scores=[90, 10],
                        prefix=f"w{k}b{j}-",
                        start=f"2026-01-01T10:0{j}:0{k}Z",
                    )
                    barrier.wait(10)
                    _write(conn=own, batch=batch)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert [(r[0], r[2], r[-1]) for r in _alerts(conn)] == [("c1", 10, "open")]
