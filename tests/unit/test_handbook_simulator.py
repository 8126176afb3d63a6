"""The Fraud Detection Handbook's simulator: the book's published statistics, its pieces, and
that its output replays through the built-in ``handbook`` mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.errors import ConfigError
from workbench.sources.replay import ReplaySource, write_dataset
from workbench.sources.simulator import handbook as hb


@pytest.fixture(scope="module")
def book() -> pd.DataFrame:
    """The book's data set: 5,000 customers, 10,000 terminals, 183 days (about 3 s)."""
    return hb.simulate(hb.HandbookConfig(seed=3))


def test_published_statistics(book: pd.DataFrame) -> None:
    # The book: 1,754,155 transactions, 14,681 fraud (0.837 %), scenario 2 the largest, then
    # scenario 3, scenario 1 a few percent of the fraud; 2018-04-01 .. 2018-09-30.
    assert 1_700_000 < len(book) < 1_850_000
    share = book["TX_FRAUD"].mean()
    assert 0.0080 < share < 0.0090
    fraud = book[book["TX_FRAUD"] == 1]["TX_FRAUD_SCENARIO"].value_counts(normalize=True)
    assert 0.04 < fraud[1] < 0.10
    assert 0.55 < fraud[2] < 0.68
    assert 0.27 < fraud[3] < 0.38
    assert book["TX_DATETIME"].iloc[0].startswith("2018-04-01")
    assert book["TX_DATETIME"].iloc[-1].startswith("2018-09-30")
    assert (book["TX_FRAUD"] == (book["TX_FRAUD_SCENARIO"] > 0)).all()
    assert book["TRANSACTION_ID"].tolist() == list(range(len(book)))
    assert book["TX_TIME_SECONDS"].is_monotonic_increasing


def test_scenarios_follow_their_rules(book: pd.DataFrame) -> None:
    genuine = book[book["TX_FRAUD"] == 0]
    assert genuine["TX_AMOUNT"].max() <= hb.LARGE_AMOUNT  # (1) every amount > 220 is fraud
    s1 = book[book["TX_FRAUD_SCENARIO"] == 1]
    assert (s1["TX_AMOUNT"] > hb.LARGE_AMOUNT).all()
    # (2) a compromised terminal's transactions are all fraud for a while: on the terminals of
    # scenario 2, most transactions of the days between their first and last fraud are fraud.
    s2 = book[book["TX_FRAUD_SCENARIO"] == 2]
    assert s2["TERMINAL_ID"].nunique() > 150  # about 2 a day
    # (3) about a third of a compromised customer's transactions in the window, amount x 5:
    s3 = book[book["TX_FRAUD_SCENARIO"] == 3]
    assert s3["TX_AMOUNT"].mean() > 4 * genuine["TX_AMOUNT"].mean()
    assert 300 < s3["CUSTOMER_ID"].nunique() < 3 * 182


def test_amounts_times_and_radius_on_a_small_population() -> None:
    rng = np.random.default_rng(11)
    customers = hb.customer_profiles(300, rng)
    terminals = hb.terminal_profiles(600, rng)
    assert customers["mean_amount"].between(5, 100).all()
    assert np.allclose(customers["std_amount"], customers["mean_amount"] / 2)
    assert customers["mean_nb_tx_per_day"].between(0, 4).all()
    start, ids = hb.terminals_within(customers, terminals, 5.0)
    # The CSR lists are exactly the terminals strictly within the radius (brute force check).
    cxy, txy = customers[["x", "y"]].to_numpy(), terminals[["x", "y"]].to_numpy()
    dist = np.sqrt(((cxy[:, None, :] - txy[None, :, :]) ** 2).sum(axis=2))
    for c in (0, 57, 299):
        assert sorted(ids[start[c] : start[c + 1]]) == np.flatnonzero(dist[c] < 5.0).tolist()
    tx = hb.genuine_transactions(customers, start, ids, 60, rng)
    used = dist[tx["CUSTOMER_ID"].to_numpy(), tx["TERMINAL_ID"].to_numpy()]
    assert (used < 5.0).all()
    # Amounts: mean about the customer's mean_amount, never negative, cents.
    assert (tx["TX_AMOUNT"] >= 0).all()
    assert np.allclose(tx["TX_AMOUNT"] * 100, np.rint(tx["TX_AMOUNT"] * 100))
    ratio = tx["TX_AMOUNT"] / customers["mean_amount"].to_numpy()[tx["CUSTOMER_ID"]]
    assert 0.95 < ratio.mean() < 1.1
    # Times of day: Normal(43200, 20000) cut to the day.
    of_day = tx["TX_TIME_SECONDS"] % hb.DAY_S
    assert (of_day > 0).all() and abs(of_day.mean() - 43_200) < 1_000
    # Transactions per day per customer: Poisson(mean_nb_tx_per_day), less the dropped times.
    expected = customers["mean_nb_tx_per_day"][np.diff(start) > 0].sum() * 60 * 0.969
    assert abs(len(tx) / expected - 1) < 0.05


def test_same_seed_same_data() -> None:
    config = hb.HandbookConfig(customers=100, terminals=200, days=20, seed=5)
    pd.testing.assert_frame_equal(hb.simulate(config), hb.simulate(config))
    other = hb.simulate(hb.HandbookConfig(customers=100, terminals=200, days=20, seed=6))
    assert len(other) != len(hb.simulate(config)) or not other.equals(hb.simulate(config))


def test_too_small_a_population_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 3 customers"):
        hb.HandbookConfig(customers=2)


def test_output_replays_with_the_handbook_mapping(tmp_path: Path) -> None:
    data = hb.simulate(hb.HandbookConfig(customers=200, terminals=400, days=30, seed=2))
    path = tmp_path / "hb.csv"
    write_dataset(hb.frames(data, 1_000), path)
    source = ReplaySource(path, mapping="handbook", batch_rows=5_000)
    frames = []
    while (batch := source.next_batch()) is not None:
        assert len(batch.dead) == 0
        frames.append(batch.frame)
    source.close()
    got = pd.concat(frames, ignore_index=True)
    assert len(got) == len(data)
    assert got["is_fraud"].sum() == data["TX_FRAUD"].sum()
    assert (got["amount"].to_numpy() == data["TX_AMOUNT"].to_numpy()).all()
    assert got["ts"].iloc[0] == pd.Timestamp(data["TX_DATETIME"].iloc[0], tz="UTC")


def test_simulate_command_writes_the_handbook_kind(tmp_path: Path) -> None:
    from tests.unit.test_cli import cli  # the command run as a user runs it

    out = cli(
        "simulate", "--kind", "handbook", "--customers", "100", "--terminals", "200",
        "--days", "10", "--seed", "4", "--out", str(tmp_path / "hb.parquet"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "handbook transactions" in out.stdout and "replay with --mapping handbook" in out.stdout
    written = pd.read_parquet(tmp_path / "hb.parquet")
    config = hb.HandbookConfig(customers=100, terminals=200, days=10, seed=4)
    pd.testing.assert_frame_equal(written, hb.simulate(config), check_dtype=False)
    refused = cli("simulate", "--kind", "handbook", "--rows", "5", "--out", str(tmp_path / "x.csv"))
    assert refused.returncode == 1 and "--rows: only with --kind workbench" in refused.stderr
