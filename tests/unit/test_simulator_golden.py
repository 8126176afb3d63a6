"""The simulator's fast paths give exactly the batches of the plain formulas they replace.

``Reference`` is the simulator with its hot paths written the straightforward way (binary
searches, comparison sorts, ``pd.DataFrame(dict)``, Arrow casts and joins): for the same seed
and settings, every frame must be identical, every column, dtype, value and row order.
The helpers are also checked one by one on inputs chosen to hit their edge cases.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import workbench.sources.simulator as simulator
from workbench.schema import NAMES, STR
from workbench.sources.simulator import Simulator
from workbench.sources.simulator import clock as clock_module
from workbench.sources.simulator import scenarios as sc
from workbench.sources.simulator.clock import DAY, Clock
from workbench.sources.simulator.population import CATEGORY_MULT, ECOM, UTC_OFFSET_H

SMALL = {"sim_customers": 1500, "sim_terminals": 600}
HIGH = {
    "fraud_large_amount": 0.02,
    "fraud_compromised_terminal": 0.01,
    "fraud_leaked_card": 0.01,
    "fraud_card_testing": 0.005,
    "fraud_impossible_travel": 0.02,
    "fraud_account_takeover": 0.02,
}


def _country_at(self: Clock, rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    minute = ((t % DAY) // 60.0).astype(np.int64)
    cdf = self._country_cdf[np.minimum(minute, 1439)]
    u = rng.random(len(t)) * cdf[:, -1]
    return np.minimum((u[:, None] >= cdf).sum(axis=1), cdf.shape[1] - 1)


def _active(self: sc.Windows, entity: np.ndarray, t: np.ndarray) -> np.ndarray:
    return ((self.start[entity] <= t) & (t < self.end[entity])) | (
        (self.prev_start[entity] <= t) & (t < self.prev_end[entity])
    )


def _joined(prefix: str, numbers: np.ndarray) -> pa.Array:
    text = pc.cast(pa.array(numbers, pa.int64()), pa.large_string())
    scalar = pa.scalar(prefix, pa.large_string())
    return pc.binary_join_element_wise(scalar, text, pa.scalar("", pa.large_string()))


class Reference(Simulator):
    """The simulator computed the plain way (the code before its fast paths)."""

    def _genuine(self, t: np.ndarray) -> sc.Rows:
        rng, pop, n = self._rng, self.population, len(t)
        country = _country_at(self._clock, rng, t)
        cw = np.concatenate([[0.0], np.cumsum(pop.cust_weight)])
        block = np.searchsorted(pop.cust_country, np.arange(len(UTC_OFFSET_H) + 1))
        lo, hi = block[country], block[country + 1]
        u = cw[lo] + rng.random(n) * (cw[hi] - cw[lo])
        cust = np.clip(np.searchsorted(cw, u, side="right") - 1, lo, np.maximum(hi - 1, lo))
        r = rng.random((n, 4))
        kind = np.minimum((r[:, :1] >= pop.cust_channel_cdf[cust]).sum(axis=1), 2)
        skew = simulator._SKEW[kind]
        col = simulator._USUAL_START[kind] + (
            simulator._USUAL_WIDTH[kind] * r[:, 1] ** skew
        ).astype(np.int64)
        term = pop.usual[cust, col]
        card = pop.card_start[cust] + (r[:, 2] * pop.card_count[cust]).astype(np.int64)
        dev = pop.device_start[cust] + (r[:, 3] * pop.device_count[cust]).astype(np.int64)
        dev = np.where(pop.term_kind[term] == ECOM, dev, sc.UNKNOWN_DEVICE)
        category = pop.term_category[term]
        sigma = pop.cust_sigma[cust]
        amount = (
            pop.cust_amount[cust]
            * CATEGORY_MULT[category]
            * np.exp(sigma * rng.standard_normal(n) - sigma**2 / 2)
        )
        amount = np.where(
            category == simulator._CASH,
            np.maximum(10.0, np.round(amount / 10) * 10),
            np.maximum(amount, 1.0),
        )
        return sc.Rows(t, cust, card, term, dev, amount, np.zeros(n, np.int8))

    def _frame(self, rows: sc.Rows) -> pd.DataFrame:
        pop, n, ids = self.population, len(rows), self._ids
        ns = self._origin_ns + np.round(rows.t * 1e9).astype(np.int64)
        term, cust = rows.term, rows.cust
        remote = pop.term_kind[term] == ECOM

        def vocab(values: tuple[str, ...], index: np.ndarray) -> pa.Array:
            return pa.array(list(values), pa.large_string()).take(index)

        data = {
            "tx_id": _joined(
                f"sim{self.settings.seed}-", np.arange(self.position, self.position + n)
            ),
            "ts": pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC"),
            "card_id": ids["card"].take(rows.card),
            "customer_id": ids["customer"].take(cust),
            "terminal_id": ids["terminal"].take(term),
            "merchant_category": vocab(simulator.CATEGORIES, pop.term_category[term]),
            "amount": np.round(rows.amount, 2),
            "currency": vocab(simulator.CURRENCIES, pop.cust_country[cust]),
            "country": vocab(simulator.COUNTRY_CODES, pop.term_country[term]),
            "lat": np.where(remote, np.nan, pop.term_lat[term]),
            "lon": np.where(remote, np.nan, pop.term_lon[term]),
            "channel": vocab(simulator.CHANNELS, pop.term_kind[term]),
            "device_id": self._reference_devices(rows.dev),
            "is_fraud": pd.arrays.BooleanArray(rows.scen != sc.GENUINE, np.zeros(n, bool)),
            "fraud_scenario": vocab(sc.SCENARIOS, rows.scen),
        }
        return pd.DataFrame(
            {
                k: pd.array(v, dtype=STR) if isinstance(v, pa.Array) else v
                for k, v in ((name, data[name]) for name in NAMES)
            }
        )

    def _reference_devices(self, dev: np.ndarray) -> pa.Array:
        base = self.population.n_devices
        vocab = pa.concat_arrays([self._device_vocab[1:], self._device_vocab[:1]])
        new = np.unique(dev[dev >= base])
        if len(new):
            vocab = pa.concat_arrays([vocab, _joined("dev", new)])
        index = np.where(dev == sc.UNKNOWN_DEVICE, base, dev)
        index = np.where(dev >= base, base + 1 + np.searchsorted(new, dev), index)
        return vocab.take(index)


def _plain(monkeypatch: pytest.MonkeyPatch) -> None:
    """Module-level fast paths replaced by their plain formulas, for ``Reference``."""
    monkeypatch.setattr(simulator, "_sort_uniform", lambda x, lo, hi: np.sort(x))
    monkeypatch.setattr(sc, "_by_card_then_time", lambda card, t, n: np.lexsort((t, card)))
    monkeypatch.setattr(sc.Windows, "active", _active)
    monkeypatch.setattr(clock_module, "_days", lambda x: np.divmod(np.asarray(x, float), DAY))


@pytest.mark.parametrize(
    ("settings", "sizes"),
    [
        ({"seed": 1, **SMALL}, [5000] * 12),
        ({"seed": 7, **SMALL, **HIGH}, [777] * 40),
        ({"seed": 4, "sim_customers": 300, "sim_terminals": 60, **HIGH}, [0, 1, 2, 4000, 13] * 8),
        ({"seed": 5, **SMALL, **HIGH, "rate": 2.0}, [3000] * 4),  # batches spanning days
    ],
)
def test_batches_equal_the_plain_formulas(monkeypatch, settings, sizes) -> None:
    fast = Simulator(**settings)
    batches = [fast.next_batch(n) for n in sizes]
    _plain(monkeypatch)
    reference = Reference(**settings)
    for n, batch in zip(sizes, batches, strict=True):
        want = reference.next_batch(n)
        pd.testing.assert_frame_equal(batch.frame, want.frame, check_exact=True)
        pd.testing.assert_frame_equal(batch.dead, want.dead, check_exact=True)
        assert batch.position == want.position
    assert fast.sim_time == reference.sim_time
    pd.testing.assert_frame_equal(fast.leaked_cards(), reference.leaked_cards())
    pd.testing.assert_frame_equal(fast.compromised_terminals(), reference.compromised_terminals())
    labels = pd.concat([b.frame for b in batches])["fraud_scenario"]
    if "fraud_large_amount" in settings and len(labels) > 20_000:
        assert set(labels) == set(sc.SCENARIOS)  # every scenario took part


# -- the helpers, on their edge cases -----------------------------------------------------


def test_bucketed_search_is_searchsorted() -> None:
    rng = np.random.default_rng(0)
    for cum in (
        np.concatenate([[0.0], np.cumsum(rng.gamma(2.0, 1.0, 20_000) + 0.2)]),
        np.concatenate([[0.0], np.cumsum(rng.choice([0.0, 1e-9, 1.0, 100.0], 3000))]),
        np.concatenate([[0.0], np.cumsum(rng.exponential(1.0, 500) ** 6)]),  # wide buckets
        np.array([0.0]),
        np.array([0.0, 0.0, 0.0]),
    ):
        u = np.concatenate(
            [
                rng.random(20_000) * cum[-1] * 1.1,
                cum,
                np.nextafter(cum, -np.inf),
                np.nextafter(cum, np.inf),
                [-1.0, -0.0, np.inf, -np.inf],
            ]
        )
        got = simulator._Search(cum)(u)
        np.testing.assert_array_equal(got, np.searchsorted(cum, u, side="right") - 1)


def test_sort_uniform_is_sort() -> None:
    rng = np.random.default_rng(1)
    for lo, hi, n in ((0.0, 1.0, 5000), (1e9, 1e9 + 1e-3, 5000), (3.0, 4.0, 10), (2.0, 2.0, 99)):
        x = rng.uniform(lo, hi, n)
        x[:2] = lo, hi
        np.testing.assert_array_equal(simulator._sort_uniform(x, lo, hi), np.sort(x))
    x = np.concatenate([rng.random(3000), np.full(100, 0.5), [7.0, -1.0]])  # out of range too
    np.testing.assert_array_equal(simulator._sort_uniform(x, 0.0, 1.0), np.sort(x))


def test_decimal_strings_and_fixed_width_vocabularies() -> None:
    rng = np.random.default_rng(2)
    edges = 10 ** np.arange(19, dtype=np.int64)
    for numbers in (
        np.sort(np.concatenate([[0, 2**63 - 1], edges, edges - 1, edges[1:] + 1])),
        np.sort(rng.integers(0, 2**62, 3000)),
        np.arange(99_990, 100_020),
        np.arange(0),
    ):
        got = simulator._decimal(b"sim12-", numbers)
        got.validate(full=True)
        assert got.equals(pa.array([f"sim12-{k}" for k in numbers.tolist()], pa.large_string()))
    codes = simulator._Vocab(("FR", "DE", "GB"))
    assert codes.fixed is not None
    index = rng.integers(0, 3, 1000)
    assert codes.take(index).equals(codes.arrow.take(index))
    assert simulator._Vocab(("pos", "ecom")).fixed is None


def test_clock_matches_divmod_and_the_cdf_count() -> None:
    rng = np.random.default_rng(3)
    minutes = np.arange(0, 3 * DAY, 60.0)
    t = np.concatenate(
        [
            rng.uniform(0, 1e8, 100_000),
            minutes,
            np.nextafter(minutes, 0),
            np.nextafter(minutes, 1e9),
        ]
    )
    for x in (t, -t[:5000]):
        day, rest = clock_module._days(x)
        want_day, want_rest = np.divmod(x, DAY)
        np.testing.assert_array_equal(day, want_day)
        np.testing.assert_array_equal(rest, want_rest)
    weight = rng.gamma(2.0, 1.0, len(UTC_OFFSET_H)) * (rng.random(len(UTC_OFFSET_H)) < 0.8)
    clock = Clock(weight, UTC_OFFSET_H)
    got = clock.country_at(np.random.default_rng(4), t)
    np.testing.assert_array_equal(got, _country_at(clock, np.random.default_rng(4), t))


def test_card_order_and_window_activity_match_the_plain_formulas() -> None:
    rng = np.random.default_rng(5)
    card = rng.integers(0, 300, 4000)
    for t in (np.sort(rng.random(4000)), rng.random(4000), np.repeat(rng.random(40), 100)):
        order = sc._by_card_then_time(card, t, 300)
        np.testing.assert_array_equal(order, np.lexsort((t, card)))
    windows = sc.Windows(500, 0.05, 2)
    for day in range(6):
        windows.draw_day(rng, day * DAY)
        for start in (day * DAY, (day - 3) * DAY, (day + 0.5) * DAY):  # also earlier times
            entity = rng.integers(0, 500, 3000)
            t = start + rng.random(3000) * DAY
            np.testing.assert_array_equal(windows.active(entity, t), _active(windows, entity, t))
