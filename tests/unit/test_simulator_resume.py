"""A simulator resumed at a position continues the stream an uninterrupted run makes."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.sources.simulator import Simulator

SMALL = {"sim_customers": 1500, "sim_terminals": 600}
HIGH = {
    "fraud_large_amount": 0.02,
    "fraud_compromised_terminal": 0.01,
    "fraud_leaked_card": 0.01,
    "fraud_impossible_travel": 0.02,
}
# The two scenarios whose state a restart loses (a burst's rows still due, each card's walk).
CARRIED = {"fraud_card_testing": 0.005, "fraud_account_takeover": 0.02}
N, BATCH = 16, 2000


def _batches(sim: Simulator, count: int) -> list[pd.DataFrame]:
    return [sim.next_batch(BATCH).frame for _ in range(count)]


@pytest.mark.parametrize("k", [0, 1, 7, 15])
@pytest.mark.parametrize("rate", [None, 2.0])  # 2 tx/s: every batch spans simulated days
def test_resumed_batches_equal_the_uninterrupted_ones(k: int, rate: float | None) -> None:
    settings = {"seed": 5, **SMALL, **HIGH, "fraud_card_testing": 0, "fraud_account_takeover": 0}
    if rate:
        settings["rate"] = rate
    whole = Simulator(**settings)
    expected = _batches(whole, N)
    resumed = Simulator(**settings)
    resumed.resume(k * BATCH, after=expected[k - 1]["ts"].max() if k else None)
    got = _batches(resumed, N - k)
    for want, frame in zip(expected[k:], got, strict=True):
        pd.testing.assert_frame_equal(frame, want, check_exact=True)
    assert resumed.sim_time == whole.sim_time and resumed.position == whole.position
    pd.testing.assert_frame_equal(resumed.leaked_cards(), whole.leaked_cards())
    pd.testing.assert_frame_equal(resumed.compromised_terminals(), whole.compromised_terminals())


def test_with_every_scenario_ids_continue_and_time_never_goes_back() -> None:
    settings = {"seed": 9, **SMALL, **HIGH, **CARRIED}
    k = 6
    whole = Simulator(**settings)
    expected = _batches(whole, N)
    resumed = Simulator(**settings)
    before = pd.concat(expected[:k])
    resumed.resume(k * BATCH, after=before["ts"].max())
    got = _batches(resumed, N - k)
    after = pd.concat(got)
    # The same tx_ids, none of them stored before, in time after everything stored before.
    assert list(after["tx_id"]) == list(pd.concat(expected[k:])["tx_id"])
    assert not set(after["tx_id"]) & set(before["tx_id"])
    assert after["ts"].min() >= before["ts"].max()
    assert resumed.sim_time == whole.sim_time
    # What differs is confined to what a restart loses: the rest of the rows agree.
    want = pd.concat(expected[k:])
    same = (after["ts"].to_numpy() == want["ts"].to_numpy()).mean()
    assert same > 0.9, same


def test_a_lower_rate_after_a_restart_still_moves_time_forward() -> None:
    first = Simulator(seed=2, **SMALL, rate=50)
    frames = _batches(first, 4)
    newest = pd.concat(frames)["ts"].max()
    faster = Simulator(seed=2, **SMALL, rate=500)  # the same position means an earlier time
    faster.resume(4 * BATCH, after=newest)
    frame = faster.next_batch(BATCH).frame
    assert frame["ts"].min() >= newest
    assert frame["tx_id"].iloc[0] == f"sim2-{4 * BATCH}"


def test_resume_rejects_a_negative_position() -> None:
    with pytest.raises(ValueError, match="position"):
        Simulator(seed=1, **SMALL).resume(-1)
