"""The Fraud Detection Handbook's transaction simulator, vectorized.

Le Borgne et al., *Reproducible Machine Learning for Credit Card Fraud Detection — Practical
Handbook*, chapter 3 "Transaction data simulator". The published algorithm, with numpy over
whole arrays instead of the book's per-customer and per-day loops (so the rows are not the
book's rows for the same seed, but they follow the same distributions):

* customers: a location ``(x, y)`` uniform on a 100 x 100 grid, ``mean_amount`` U(5, 100),
  ``std_amount = mean_amount / 2``, ``mean_nb_tx_per_day`` U(0, 4);
* terminals: a location uniform on the same grid; a customer uses the terminals strictly
  within ``radius`` (5) of its location, each equally likely; a customer with none makes no
  transaction;
* per customer and day, Poisson(``mean_nb_tx_per_day``) transactions; time of day
  ``int(Normal(43200, 20000))`` seconds, and a time outside ``(0, 86400)`` drops the
  transaction (as the book does); amount Normal(mean, std), a negative one redrawn
  U(0, 2 x mean), rounded to the cent;
* fraud, in the book's order (a later scenario overwrites an earlier label):
  (1) every amount over 220 is fraud;
  (2) each day ``d`` (but the last), 2 random terminals are compromised: all their
  transactions of days ``d .. d+27`` are fraud;
  (3) each day ``d`` (but the last), 3 random customers are compromised: among their
  transactions of days ``d .. d+13``, a third (rounded down) chosen at random have their
  amount multiplied by 5 and are fraud.

The defaults are the book's data set: 5,000 customers, 10,000 terminals, 183 days from
2018-04-01 (about 1.75 million transactions, 0.8–0.9 % fraud). The output has the book's
columns (``TRANSACTION_ID``, ``TX_DATETIME``, ``CUSTOMER_ID``, ``TERMINAL_ID``,
``TX_AMOUNT``, ``TX_TIME_SECONDS``, ``TX_TIME_DAYS``, ``TX_FRAUD``, ``TX_FRAUD_SCENARIO``),
the format the built-in replay mapping ``handbook`` reads.

>>> data = simulate(HandbookConfig(customers=50, terminals=100, days=5, seed=1))
>>> list(data.columns) == list(COLUMNS), data["TX_TIME_SECONDS"].is_monotonic_increasing
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.errors import ConfigError

COLUMNS = (
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_TIME_SECONDS",
    "TX_TIME_DAYS",
    "TX_FRAUD",
    "TX_FRAUD_SCENARIO",
)
DAY_S = 86_400
GRID = 100.0
LARGE_AMOUNT = 220.0
TERMINAL_DAYS, TERMINALS_PER_DAY = 28, 2
CUSTOMER_DAYS, CUSTOMERS_PER_DAY = 14, 3
_CHUNK = 512  # customers per block of the distance matrix (bounded memory)


@dataclass(frozen=True)
class HandbookConfig:
    """The simulation's size and seed; the defaults are the book's."""

    customers: int = 5_000
    terminals: int = 10_000
    days: int = 183
    start: str = "2018-04-01"
    radius: float = 5.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("customers", "terminals", "days"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"handbook simulator: {name} must be at least 1")
        if self.customers < CUSTOMERS_PER_DAY or self.terminals < TERMINALS_PER_DAY:
            raise ConfigError(
                f"handbook simulator: needs at least {CUSTOMERS_PER_DAY} customers and "
                f"{TERMINALS_PER_DAY} terminals (the daily compromises)"
            )
        if not self.radius > 0:
            raise ConfigError(f"handbook simulator: radius must be positive, got {self.radius}")
        try:
            pd.Timestamp(self.start)
        except (TypeError, ValueError):
            raise ConfigError(f"handbook simulator: start is not a date: {self.start!r}") from None


def customer_profiles(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``CUSTOMER_ID``, ``x``, ``y``, ``mean_amount``, ``std_amount``, ``mean_nb_tx_per_day``."""
    mean = rng.uniform(5.0, 100.0, n)
    return pd.DataFrame(
        {
            "CUSTOMER_ID": np.arange(n),
            "x": rng.uniform(0.0, GRID, n),
            "y": rng.uniform(0.0, GRID, n),
            "mean_amount": mean,
            "std_amount": mean / 2.0,
            "mean_nb_tx_per_day": rng.uniform(0.0, 4.0, n),
        }
    )


def terminal_profiles(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``TERMINAL_ID``, ``x``, ``y``."""
    return pd.DataFrame(
        {
            "TERMINAL_ID": np.arange(n),
            "x": rng.uniform(0.0, GRID, n),
            "y": rng.uniform(0.0, GRID, n),
        }
    )


def terminals_within(
    customers: pd.DataFrame, terminals: pd.DataFrame, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's terminals strictly within ``radius``, as CSR arrays ``(start, ids)``:
    customer ``c`` uses ``ids[start[c]:start[c + 1]]``. The distance matrix is built a block
    of customers at a time."""
    cxy = customers[["x", "y"]].to_numpy()
    txy = terminals[["x", "y"]].to_numpy()
    counts, ids = [], []
    for lo in range(0, len(cxy), _CHUNK):
        block = cxy[lo : lo + _CHUNK]
        d2 = (block[:, None, 0] - txy[None, :, 0]) ** 2 + (block[:, None, 1] - txy[None, :, 1]) ** 2
        rows, cols = np.nonzero(d2 < radius * radius)
        counts.append(np.bincount(rows, minlength=len(block)))
        ids.append(cols)
    start = np.zeros(len(cxy) + 1, dtype=np.int64)
    if counts:
        np.cumsum(np.concatenate(counts), out=start[1:])
    return start, (np.concatenate(ids) if ids else np.zeros(0, np.int64)).astype(np.int64)


def genuine_transactions(
    customers: pd.DataFrame,
    start: np.ndarray,
    ids: np.ndarray,
    days: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Every customer's transactions over ``days`` days, sorted by time (no labels yet)."""
    n = len(customers)
    per_day = rng.poisson(customers["mean_nb_tx_per_day"].to_numpy()[:, None], size=(n, days))
    cust = np.repeat(np.repeat(np.arange(n), days), per_day.ravel())
    day = np.repeat(np.tile(np.arange(days), n), per_day.ravel())
    time = rng.normal(DAY_S / 2, 20_000, len(cust)).astype(np.int64)  # int(): toward zero
    usable = start[cust + 1] - start[cust]
    keep = (time > 0) & (time < DAY_S) & (usable > 0)
    cust, day, time, usable = cust[keep], day[keep], time[keep], usable[keep]
    mean = customers["mean_amount"].to_numpy()[cust]
    amount = rng.normal(mean, customers["std_amount"].to_numpy()[cust])
    negative = amount < 0
    amount[negative] = rng.uniform(0.0, 2.0 * mean[negative])
    pick = np.minimum((rng.random(len(cust)) * usable).astype(np.int64), usable - 1)
    terminal = ids[start[cust] + pick]
    seconds = time + day * DAY_S
    order = np.argsort(seconds, kind="stable")
    return pd.DataFrame(
        {
            "CUSTOMER_ID": cust[order],
            "TERMINAL_ID": terminal[order],
            "TX_AMOUNT": np.round(amount[order], 2),
            "TX_TIME_SECONDS": seconds[order],
            "TX_TIME_DAYS": day[order],
        }
    )


def _daily_picks(n: int, per_day: int, events: int, rng: np.random.Generator) -> np.ndarray:
    """``events x per_day`` distinct ids out of ``n`` per row (sampling without replacement)."""
    if events <= 0:
        return np.zeros((0, per_day), np.int64)
    return np.argpartition(rng.random((events, n)), per_day - 1, axis=1)[:, :per_day]


def add_frauds(
    tx: pd.DataFrame, customers: int, terminals: int, days: int, rng: np.random.Generator
) -> pd.DataFrame:
    """``TX_FRAUD`` and ``TX_FRAUD_SCENARIO`` (0 genuine, 1..3), scenario 3's amounts x 5."""
    amount = tx["TX_AMOUNT"].to_numpy().copy()
    day = tx["TX_TIME_DAYS"].to_numpy()
    scenario = np.where(amount > LARGE_AMOUNT, 1, 0).astype(np.int8)
    events = days - 1  # the book loops over range(TX_TIME_DAYS.max())

    # (2) compromised terminals: +1 on the day a compromise starts, -1 when it ends.
    picks = _daily_picks(terminals, TERMINALS_PER_DAY, events, rng)
    diff = np.zeros((terminals, days + TERMINAL_DAYS + 1), np.int32)
    first = np.repeat(np.arange(events), TERMINALS_PER_DAY)
    np.add.at(diff, (picks.ravel(), first), 1)
    np.add.at(diff, (picks.ravel(), first + TERMINAL_DAYS), -1)
    active = np.cumsum(diff, axis=1) > 0
    scenario[active[tx["TERMINAL_ID"].to_numpy(), day]] = 2

    # (3) compromised customers: each day's candidates are the transactions of that day's
    # customers in the 14 days from it; a third of them, chosen at random, become fraud.
    picks = _daily_picks(customers, CUSTOMERS_PER_DAY, events, rng)
    cust = tx["CUSTOMER_ID"].to_numpy()
    width = days + CUSTOMER_DAYS
    key = cust.astype(np.int64) * width + day
    by_key = np.argsort(key, kind="stable")
    sorted_key = key[by_key]
    event_day = np.repeat(np.arange(events), CUSTOMERS_PER_DAY)
    base = picks.ravel().astype(np.int64) * width
    lo = np.searchsorted(sorted_key, base + event_day, side="left")
    hi = np.searchsorted(sorted_key, base + event_day + CUSTOMER_DAYS, side="left")
    sizes = hi - lo
    group = np.repeat(event_day, sizes)  # one group per day: its 3 customers together
    offsets = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    rows = by_key[np.repeat(lo, sizes) + offsets]
    order = np.lexsort((rng.random(len(rows)), group))
    rows, group = rows[order], group[order]
    per_group = np.bincount(group, minlength=max(events, 0))
    rank = np.arange(len(rows)) - np.repeat(np.cumsum(per_group) - per_group, per_group)
    chosen = rows[rank < (per_group // 3)[group]]
    np.multiply.at(amount, chosen, 5.0)  # chosen twice (two overlapping days): x 25, as in the book
    scenario[chosen] = 3

    out = tx.copy()
    out["TX_AMOUNT"] = np.round(amount, 2)
    out["TX_FRAUD"] = (scenario > 0).astype(np.int8)
    out["TX_FRAUD_SCENARIO"] = scenario
    return out


def simulate(config: HandbookConfig | None = None) -> pd.DataFrame:
    """The whole data set, sorted by time, with the book's columns (:data:`COLUMNS`)."""
    config = config or HandbookConfig()
    rng = np.random.default_rng(config.seed)
    customers = customer_profiles(config.customers, rng)
    terminals = terminal_profiles(config.terminals, rng)
    start, ids = terminals_within(customers, terminals, config.radius)
    tx = genuine_transactions(customers, start, ids, config.days, rng)
    tx = add_frauds(tx, config.customers, config.terminals, config.days, rng)
    origin = pd.Timestamp(config.start)
    when = origin + pd.to_timedelta(tx["TX_TIME_SECONDS"].to_numpy(), unit="s")
    tx.insert(0, "TRANSACTION_ID", np.arange(len(tx)))
    tx.insert(1, "TX_DATETIME", pd.Series(when).dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy())
    return tx[list(COLUMNS)]


def frames(data: pd.DataFrame, rows: int = 200_000):
    """``data`` in slices of ``rows`` (for :func:`~workbench.sources.replay.write_dataset`)."""
    for lo in range(0, len(data), rows):
        yield data.iloc[lo : lo + rows]


__all__ = [
    "COLUMNS",
    "HandbookConfig",
    "add_frauds",
    "customer_profiles",
    "frames",
    "genuine_transactions",
    "simulate",
    "terminal_profiles",
    "terminals_within",
]
