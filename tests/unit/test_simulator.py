"""The transaction simulator: typed batches, time, reproducibility, and each fraud scenario."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from workbench.errors import ConfigError
from workbench.schema import empty_batch
from workbench.sources.simulator import Simulator
from workbench.sources.simulator.population import COUNTRY_CODES, haversine_km
from workbench.sources.simulator.scenarios import SCENARIOS, ShopWalk

PER_DAY = 20_000  # simulated transactions per simulated day in these tests
SMALL = {
    "sim_customers": 2000,
    "sim_terminals": 1000,
    "rate": 1000.0,
    "sim_speedup": 1000.0 * 86_400 / PER_DAY,
}
HIGH = {
    "fraud_large_amount": 0.01,
    "fraud_account_takeover": 0.005,
    "fraud_impossible_travel": 0.005,
    "fraud_card_testing": 0.0005,
    "fraud_compromised_terminal": 0.004,
    "fraud_leaked_card": 0.005,
}
ROWS, BATCH = 300_000, 10_000  # 15 simulated days


def _stream(sim: Simulator, rows: int, batch: int) -> list[pd.DataFrame]:
    return [sim.next_batch(batch).frame for _ in range(rows // batch)]


@pytest.fixture(scope="module")
def run() -> tuple[Simulator, list[pd.DataFrame], pd.DataFrame]:
    sim = Simulator(seed=11, **SMALL, **HIGH)
    frames = _stream(sim, ROWS, BATCH)
    return sim, frames, pd.concat(frames, ignore_index=True)


def _customer_table(sim: Simulator) -> pd.DataFrame:
    pop = sim.population
    return pd.DataFrame(
        {"typical": pop.cust_amount, "home": np.array(COUNTRY_CODES)[pop.cust_country]},
        index=[f"cust{i}" for i in range(pop.n_customers)],
    )


# -- the batch contract --------------------------------------------------------------------


def test_batches_have_exactly_the_schema_dtypes_and_no_dead_letters() -> None:
    sim = Simulator(seed=1, **SMALL)
    batch = sim.next_batch(2000)
    pd.testing.assert_series_equal(batch.frame.dtypes, empty_batch().dtypes)
    assert list(batch.frame.columns) == list(empty_batch().columns)
    assert len(batch.frame) == 2000 and batch.position == 2000 and len(batch.dead) == 0
    assert sim.next_batch().position == 2000 + sim.settings.batch_rows
    frame = batch.frame
    assert frame.drop(columns=["lat", "lon"]).notna().all().all()
    # Only card-not-present payments lack coordinates.
    located = frame["lat"].notna() & frame["lon"].notna()
    assert (located == (frame["channel"] != "ecom")).all()


def test_labels_are_never_missing_and_agree(run) -> None:
    _, _, df = run
    assert not df["is_fraud"].isna().any()
    assert (df["is_fraud"].to_numpy(bool) == (df["fraud_scenario"] != "").to_numpy()).all()
    assert set(df["fraud_scenario"]) == set(SCENARIOS)
    assert (df["amount"] > 0).all() and df["lat"].abs().max() <= 90
    assert set(df["channel"]) == {"pos", "atm", "ecom"}
    assert (df.loc[df["channel"] != "ecom", "device_id"] == "unknown").all()


def test_time_is_monotone_within_and_across_batches(run) -> None:
    sim, frames, df = run
    assert frames[0]["ts"].is_monotonic_increasing
    for prev, cur in itertools.pairwise(frames):
        assert cur["ts"].is_monotonic_increasing
        assert cur["ts"].iloc[0] >= prev["ts"].iloc[-1]
    assert df["ts"].iloc[-1] <= sim.sim_time
    assert df["tx_id"].is_unique


def test_interval_holds_the_expected_count_under_the_daily_rhythm(run) -> None:
    sim, _, df = run
    days = (sim.sim_time - pd.Timestamp(sim.settings.sim_start)).total_seconds() / 86_400
    assert days == pytest.approx(ROWS / PER_DAY, rel=0.05)
    hours = df["ts"].dt.hour.value_counts()
    assert hours[12] > 4 * hours[3], hours.sort_index().to_dict()
    assert hours[19] > 3 * hours[3]
    # Local time: French customers are awake at 13:00 local, asleep at 03:00 local.
    fr = df.loc[df["currency"].eq("EUR") & df["country"].eq("FR"), "ts"].dt.hour + 1
    assert (fr % 24 == 13).sum() > 8 * (fr % 24 == 3).sum()


def test_sim_time_starts_at_sim_start_and_advances() -> None:
    sim = Simulator(seed=1, sim_start="2026-03-01T08:00:00Z", **SMALL)
    assert sim.sim_time == pd.Timestamp("2026-03-01T08:00:00Z")
    frame = sim.next_batch(1000).frame
    assert frame["ts"].iloc[0] >= pd.Timestamp("2026-03-01T08:00:00Z")
    assert sim.sim_time >= frame["ts"].iloc[-1] > pd.Timestamp("2026-03-01T08:00:00Z")


def test_same_seed_same_batches_other_seed_differs() -> None:
    a, b, c = (Simulator(seed=s, **SMALL, **HIGH) for s in (5, 5, 6))
    for _ in range(3):
        fa, fb, fc = (x.next_batch(3000).frame for x in (a, b, c))
        pd.testing.assert_frame_equal(fa, fb)
        assert not fa["amount"].equals(fc["amount"])


def test_overrides_are_validated() -> None:
    with pytest.raises(ConfigError):
        Simulator(no_such_setting=1)
    with pytest.raises(ConfigError):
        Simulator(fraud_large_amount=2.0)


def test_ack_and_registry() -> None:
    sim = Simulator(seed=1, **SMALL)
    sim.ack(sim.next_batch(10).position)
    assert sim.acked == 10
    sim.close()
    pytest.importorskip("workbench.sources.replay")
    from workbench.sources.base import create_source

    assert isinstance(create_source("simulator", seed=2, sim_customers=50), Simulator)


# -- scenario rates ------------------------------------------------------------------------


def _count(df: pd.DataFrame, name: str) -> int:
    return int((df["fraud_scenario"] == name).sum())


@pytest.mark.parametrize("name", ["large_amount", "account_takeover", "impossible_travel"])
def test_row_scenarios_appear_at_their_rate(run, name) -> None:
    _, _, df = run
    expected = HIGH["fraud_" + name] * len(df)
    assert abs(_count(df, name) - expected) < 5 * np.sqrt(expected) + 0.03 * expected


def test_card_testing_bursts_start_at_their_rate(run) -> None:
    _, _, df = run
    bursts = df.loc[df["fraud_scenario"] == "card_testing", "device_id"].nunique()
    expected = HIGH["fraud_card_testing"] * len(df)
    assert abs(bursts - expected) < 5 * np.sqrt(expected) + 0.05 * expected


def test_windows_are_drawn_at_their_daily_rate(run) -> None:
    sim, _, df = run
    days = int(np.ceil((sim.sim_time - pd.Timestamp(sim.settings.sim_start)).days)) + 1
    for events, n, p in (
        (
            sim.compromised_terminals(),
            sim.population.n_terminals,
            HIGH["fraud_compromised_terminal"],
        ),
        (sim.leaked_cards(), sim.population.n_cards, HIGH["fraud_leaked_card"]),
    ):
        expected = n * p * days
        assert abs(len(events) - expected) < 5 * np.sqrt(expected), (len(events), expected)
    assert _count(df, "compromised_terminal") > 100 and _count(df, "leaked_card") > 100


@pytest.mark.parametrize("name", SCENARIOS[1:])
def test_a_scenario_disappears_at_rate_zero(name) -> None:
    sim = Simulator(seed=3, **SMALL, **{**HIGH, "fraud_" + name: 0.0})
    df = pd.concat(_stream(sim, 60_000, 20_000))
    present = set(df["fraud_scenario"])
    assert name not in present
    assert present == set(SCENARIOS) - {name}


def test_all_rates_zero_means_no_fraud() -> None:
    sim = Simulator(seed=3, **SMALL, **{k: 0.0 for k in HIGH})
    df = pd.concat(_stream(sim, 40_000, 20_000))
    assert not df["is_fraud"].any() and (df["fraud_scenario"] == "").all()


# -- scenario truths -----------------------------------------------------------------------


def test_large_amounts_are_over_1000_and_10x_typical(run) -> None:
    sim, _, df = run
    rows = df[df["fraud_scenario"] == "large_amount"]
    typical = _customer_table(sim).loc[rows["customer_id"], "typical"].to_numpy()
    assert (rows["amount"] > 1000).all()
    assert (rows["amount"].to_numpy() >= 10 * typical - 0.01).all()


def test_compromised_terminal_labels_every_tx_for_28_days(run) -> None:
    sim, _, df = run
    events = sim.compromised_terminals()
    assert ((events["end"] - events["start"]) == pd.Timedelta(days=28)).all()
    hits = df.merge(events, on="terminal_id")
    inside = hits[(hits["ts"] >= hits["start"]) & (hits["ts"] < hits["end"])]
    assert len(inside) > 100 and inside["is_fraud"].all()
    # and the label is used for nothing else
    labelled = df[df["fraud_scenario"] == "compromised_terminal"]
    assert labelled["tx_id"].isin(inside["tx_id"]).all()


def test_leaked_card_multiplies_a_third_of_amounts_by_5(run) -> None:
    sim, _, df = run
    events = sim.leaked_cards()
    hits = df.merge(events, on="card_id")
    inside = hits[(hits["ts"] >= hits["start"]) & (hits["ts"] < hits["end"])]
    inside = inside[inside["fraud_scenario"].isin(["", "leaked_card", "compromised_terminal"])]
    leaked = inside["fraud_scenario"] == "leaked_card"
    assert abs(leaked.mean() - 1 / 3) < 4 * np.sqrt(2 / 9 / len(inside)), (
        leaked.mean(),
        len(inside),
    )
    labelled = df[df["fraud_scenario"] == "leaked_card"]
    assert labelled["tx_id"].isin(inside["tx_id"]).all()
    typical = _customer_table(sim)["typical"]
    log_ratio = np.log(inside["amount"] / typical.loc[inside["customer_id"]].to_numpy())
    gap = log_ratio[leaked.to_numpy()].mean() - log_ratio[~leaked.to_numpy()].mean()
    assert gap == pytest.approx(np.log(5), abs=0.2)


def test_card_testing_bursts_tiny_amounts_at_terminals_new_to_the_card(run) -> None:
    _, _, df = run
    seen_before = df.duplicated(["card_id", "terminal_id"], keep="first")
    rows = df[df["fraud_scenario"] == "card_testing"]
    assert len(rows) > 500
    assert not seen_before[rows.index].any()
    assert rows["amount"].between(0.5, 2.0).all() and (rows["channel"] == "ecom").all()
    bursts = rows.groupby("device_id").agg(
        n=("tx_id", "size"), cards=("card_id", "nunique"), span=("ts", lambda s: s.max() - s.min())
    )
    complete = bursts.iloc[:-3]  # the last bursts may still be pending at the stream's end
    assert complete["n"].between(5, 15).all() and (bursts["cards"] == 1).all()
    assert (bursts["span"] <= pd.Timedelta(minutes=8)).all()


def test_impossible_travel_is_faster_than_1000_kmh_from_the_cards_previous_tx(run) -> None:
    _, _, df = run
    prev = df.groupby("card_id")[["ts", "lat", "lon"]].shift(1)
    rows = df["fraud_scenario"] == "impossible_travel"
    assert rows.sum() > 500 and prev.loc[rows, "ts"].notna().all()
    km = haversine_km(
        prev.loc[rows, "lat"], prev.loc[rows, "lon"], df.loc[rows, "lat"], df.loc[rows, "lon"]
    )
    hours = (df.loc[rows, "ts"] - prev.loc[rows, "ts"]).dt.total_seconds() / 3600
    assert (hours > 0).all() and (hours <= 1).all()
    assert (km / hours > 1000).all(), (km / hours).min()


def test_account_takeover_uses_a_new_device_abroad_with_a_high_amount(run) -> None:
    sim, _, df = run
    rows = df[df["fraud_scenario"] == "account_takeover"]
    assert not df.duplicated(["card_id", "terminal_id"], keep="first")[rows.index].any()
    first_use = ~df["device_id"].duplicated(keep="first")
    assert first_use[rows.index].all() and (rows["device_id"] != "unknown").all()
    customers = _customer_table(sim).loc[rows["customer_id"]]
    assert (rows["country"].to_numpy() != customers["home"].to_numpy()).all()
    assert (rows["amount"].to_numpy() >= 5 * customers["typical"].to_numpy()).all()
    assert (rows["amount"] >= 400).all() and (rows["channel"] == "ecom").all()


def test_shop_walk_never_gives_a_card_the_same_webshop_twice() -> None:
    sim = Simulator(seed=2, sim_customers=50, sim_terminals=400)
    walk = ShopWalk(np.random.default_rng(0), sim.population)
    card = np.array([3, 1, 3, 3, 1])
    first = walk.take(card, np.array([4, 2, 3, 5, 1]))
    second = walk.take(np.array([3]), np.array([6]))
    mine = np.concatenate([first[np.repeat(card, [4, 2, 3, 5, 1]) == 3], second])
    assert len(mine) == 18 and len(set(mine)) == 18
    assert (sim.population.term_kind[mine] == 2).all()  # webshops only
