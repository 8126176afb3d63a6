"""The transaction simulator: an endless, seeded, labelled stream of card transactions.

::

    population.py   the world built once from the seed (customers, cards, devices, terminals)
    clock.py        simulated time with a daily rhythm per time zone
    scenarios.py    the six fraud scenarios, vectorized over a batch
    __init__.py     :class:`Simulator`: genuine rows, scenarios, the typed batch

Every batch is generated with numpy only (no per-row Python), so the same settings always
give the same batches. Labels (``is_fraud``, ``fraud_scenario``) are exact ground truth.

>>> sim = Simulator(seed=7, sim_customers=200, sim_terminals=100)
>>> batch = sim.next_batch(500)
>>> len(batch.frame), batch.position, batch.frame["ts"].is_monotonic_increasing
(500, 500, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from workbench.errors import ConfigError
from workbench.schema import NAMES, empty_dead_letters
from workbench.settings import Settings
from workbench.sources.base import SourceBatch, register_source
from workbench.sources.simulator import scenarios as sc
from workbench.sources.simulator.clock import DAY, Clock
from workbench.sources.simulator.population import (
    CATEGORIES,
    CATEGORY_MULT,
    CHANNELS,
    COUNTRY_CODES,
    CURRENCIES,
    ECOM,
    USUAL_K,
    USUAL_START,
    USUAL_WIDTH,
    UTC_OFFSET_H,
    Population,
    build_population,
)

__all__ = ["Simulator"]

_CASH = CATEGORIES.index("cash_withdrawal")
_USUAL_START = np.array([USUAL_START[k] for k in range(3)])
_USUAL_WIDTH = np.array([USUAL_WIDTH[k] for k in range(3)])
_SKEW = np.array([1.7, 1.0, 1.3])  # > 1: the nearest shops and first favourites are used most


def _vocab(values: tuple[str, ...]) -> pa.Array:
    return pa.array(list(values), pa.large_string())


_CATEGORY_VOCAB = _vocab(CATEGORIES)
_CHANNEL_VOCAB = _vocab(CHANNELS)
_COUNTRY_VOCAB = _vocab(COUNTRY_CODES)
_CURRENCY_VOCAB = _vocab(CURRENCIES)
_SCENARIO_VOCAB = _vocab(sc.SCENARIOS)
_STR = pd.StringDtype("pyarrow", na_value=np.nan)  # the schema's "str" dtype
_NO_DEAD = empty_dead_letters()


@register_source("simulator")
class Simulator:
    """Endless simulated transactions with labelled fraud scenarios.

    ``settings`` defaults to the declared defaults (the environment is the CLI's business);
    ``overrides`` replace any setting by name, e.g. ``Simulator(seed=1, rate=50)``. A batch of
    ``n`` rows covers the simulated interval in which ``n`` transactions are expected at
    ``rate / sim_speedup`` transactions per simulated second on average (following the daily
    rhythm). The simulator never sleeps: pacing is the caller's job (:class:`~base.Pacer`).
    """

    name = "simulator"

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        settings = Settings.load({}) if settings is None else settings
        self.settings = settings.replace(**overrides) if overrides else settings
        s = self.settings
        try:
            start = pd.Timestamp(s.sim_start)
        except ValueError as exc:
            raise ConfigError(
                f"invalid value {s.sim_start!r} for WORKBENCH_SIM_START: {exc}"
            ) from None
        start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
        origin = start.normalize()  # times are seconds since the start day's UTC midnight
        self._origin_ns = int(origin.as_unit("ns").value)
        pop_seed, stream_seed = np.random.SeedSequence(s.seed).spawn(2)
        self.population: Population = build_population(
            np.random.default_rng(pop_seed), s.sim_customers, s.sim_terminals
        )
        self._rng = np.random.default_rng(stream_seed)
        pop = self.population
        self._ids = pop.id_vocabularies()
        self._tx_prefix = pa.scalar(f"sim{s.seed}-", pa.large_string())
        self._clock = Clock(
            np.bincount(pop.cust_country, pop.cust_weight, len(COUNTRY_CODES)), UTC_OFFSET_H
        )
        # Customers by weight within a country: its block of the cumulative weights (cw).
        cw = np.concatenate([[0.0], np.cumsum(pop.cust_weight)])
        block = np.searchsorted(pop.cust_country, np.arange(len(COUNTRY_CODES) + 1))
        self._search = _Search(cw)
        self._block_w, self._block_span = cw[block[:-1]], cw[block[1:]] - cw[block[:-1]]
        self._block_lo, self._block_hi = block[:-1], np.maximum(block[1:] - 1, block[:-1])
        self._channel_cdf = np.ascontiguousarray(pop.cust_channel_cdf.T)
        self._usual_flat = pop.usual.ravel()
        self._per_second = s.rate / s.sim_speedup  # mean transactions per simulated second
        self._t = (start - origin).total_seconds()
        self._w = float(self._clock.warp(self._t))
        self._next_day = int(self._t // DAY)
        self.compromised = sc.Windows(pop.n_terminals, s.fraud_compromised_terminal, 28)
        self.leaked = sc.Windows(pop.n_cards, s.fraud_leaked_card, 14)
        self._walk = sc.ShopWalk(self._rng, pop)
        self._pending = sc.Pending()
        self._next_device = pop.n_devices
        self.position = 0
        self.acked: Any = None

    @property
    def sim_time(self) -> pd.Timestamp:
        """The simulated time reached: the end of the last batch's interval."""
        return pd.Timestamp(self._origin_ns + round(self._t * 1e9), tz="UTC")

    def next_batch(self, n: int | None = None) -> SourceBatch:
        """The next ``n`` rows (default ``batch_rows``), sorted by time, after the last batch."""
        n = self.settings.batch_rows if n is None else int(n)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        rng, s = self._rng, self.settings
        w_end = self._w + n / self._per_second
        t = np.clip(self._clock.unwarp(np.sort(rng.uniform(self._w, w_end, n))), self._t, None)
        t_end = max(float(self._clock.unwarp(w_end)), self._t)
        t = np.minimum(t, t_end)
        while self._next_day * DAY < t_end:  # windows of each simulated day before its rows
            self.compromised.draw_day(rng, self._next_day * DAY)
            self.leaked.draw_day(rng, self._next_day * DAY)
            self._next_day += 1

        rows = self._genuine(t)
        pop = self.population
        sc.large_amount(rng, rows, pop, s.fraud_large_amount)
        self._next_device += sc.account_takeover(
            rng, rows, pop, s.fraud_account_takeover, self._next_device, self._walk
        )
        travel, travel_anchor = sc.impossible_travel(
            rng, rows, pop, s.fraud_impossible_travel, t_end
        )
        tests, test_anchor = sc.card_testing(
            rng, rows, pop, s.fraud_card_testing, self._next_device, self._walk
        )
        self._next_device += len(test_anchor)
        self._pending.add(tests)
        self._inject(
            rows,
            sc.Rows.concat([travel, self._pending.pop_due(t_end)]),
            np.concatenate([travel_anchor, test_anchor]),
        )

        genuine = rows.scen == sc.GENUINE
        leak = genuine & self.leaked.active(rows.card, rows.t) & (rng.random(n) < 1 / 3)
        rows.amount[leak] *= 5.0
        rows.scen[leak] = sc.LEAKED
        rows.scen[genuine & ~leak & self.compromised.active(rows.term, rows.t)] = sc.COMPROMISED

        rows = rows.take(np.argsort(rows.t, kind="stable"))
        frame = self._frame(rows)
        self.position += n
        self._t, self._w = t_end, w_end
        return SourceBatch(frame=frame, dead=_NO_DEAD.copy(deep=False), position=self.position)

    def ack(self, position: Any) -> None:
        """Nothing to release: a simulator cannot replay. Kept for inspection (``acked``)."""
        self.acked = position

    def close(self) -> None:
        """Nothing to close."""

    def compromised_terminals(self) -> pd.DataFrame:
        """Ground truth so far: ``terminal_id, start, end`` of every compromise drawn."""
        return self._events(self.compromised, "terminal_id", self._ids["terminal"])

    def leaked_cards(self) -> pd.DataFrame:
        """Ground truth so far: ``card_id, start, end`` of every card leak drawn."""
        return self._events(self.leaked, "card_id", self._ids["card"])

    # -- internals -------------------------------------------------------------------------

    def _genuine(self, t: np.ndarray) -> sc.Rows:
        """Ordinary purchases: who pays (by local time), where (usual terminals), how much."""
        rng, pop, n = self._rng, self.population, len(t)
        country = self._clock.country_at(rng, t)
        # A customer of that country, by weight: a uniform in the country's stretch of cw.
        u = self._block_w.take(country) + rng.random(n) * self._block_span.take(country)
        cust = np.clip(self._search(u), self._block_lo.take(country), self._block_hi.take(country))
        r = rng.random((n, 4))
        r0 = r[:, 0]
        kind = (r0 >= self._channel_cdf[0].take(cust)).astype(np.int64)
        kind += r0 >= self._channel_cdf[1].take(cust)
        kind += r0 >= self._channel_cdf[2].take(cust)
        kind = np.minimum(kind, 2, out=kind)
        col = _USUAL_START[kind] + (_USUAL_WIDTH[kind] * r[:, 1] ** _SKEW[kind]).astype(np.int64)
        term = self._usual_flat.take(cust * USUAL_K + col)
        card = pop.card_start.take(cust) + (r[:, 2] * pop.card_count.take(cust)).astype(np.int64)
        dev = pop.device_start.take(cust) + (r[:, 3] * pop.device_count.take(cust)).astype(np.int64)
        dev[pop.term_kind.take(term) != ECOM] = sc.UNKNOWN_DEVICE
        category = pop.term_category.take(term)
        sigma = pop.cust_sigma.take(cust)
        amount = (
            pop.cust_amount.take(cust)
            * CATEGORY_MULT.take(category)
            * np.exp(sigma * rng.standard_normal(n) - sigma**2 / 2)
        )
        cash = np.flatnonzero(category == _CASH)
        amount_cash = np.maximum(10.0, np.round(amount[cash] / 10) * 10)
        amount = np.maximum(amount, 1.0, out=amount)
        amount[cash] = amount_cash
        return sc.Rows(t, cust, card, term, dev, amount, np.zeros(n, np.int8))

    def _inject(self, rows: sc.Rows, new: sc.Rows, anchors: np.ndarray) -> None:
        """Overwrite random genuine rows (never an anchor) with ``new``; the batch keeps n rows."""
        free = rows.scen == sc.GENUINE
        free[anchors] = False
        victims = self._rng.permutation(np.flatnonzero(free))[: len(new)]
        # Only a batch far smaller than its scenario rows runs out of victims: drop the rest.
        rows.put(victims, new.take(np.arange(len(victims))))

    def _frame(self, rows: sc.Rows) -> pd.DataFrame:
        pop, n, ids = self.population, len(rows), self._ids
        seq = pa.array(np.arange(self.position, self.position + n), pa.int64())
        tx_id = pc.binary_join_element_wise(
            self._tx_prefix, pc.cast(seq, pa.large_string()), pa.scalar("", pa.large_string())
        )
        ns = self._origin_ns + np.round(rows.t * 1e9).astype(np.int64)
        ts = pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC")
        term, cust = rows.term, rows.cust
        # A card-not-present payment says nothing about where the card is: no coordinates.
        remote = pop.term_kind[term] == ECOM
        lat = np.where(remote, np.nan, pop.term_lat[term])
        lon = np.where(remote, np.nan, pop.term_lon[term])
        data = {
            "tx_id": tx_id,
            "ts": ts,
            "card_id": ids["card"].take(rows.card),
            "customer_id": ids["customer"].take(cust),
            "terminal_id": ids["terminal"].take(term),
            "merchant_category": _CATEGORY_VOCAB.take(pop.term_category[term]),
            "amount": np.round(rows.amount, 2),
            "currency": _CURRENCY_VOCAB.take(pop.cust_country[cust]),
            "country": _COUNTRY_VOCAB.take(pop.term_country[term]),
            "lat": lat,
            "lon": lon,
            "channel": _CHANNEL_VOCAB.take(pop.term_kind[term]),
            "device_id": self._devices(rows.dev),
            "is_fraud": pd.arrays.BooleanArray(rows.scen != sc.GENUINE, np.zeros(n, bool)),
            "fraud_scenario": _SCENARIO_VOCAB.take(rows.scen),
        }
        return pd.DataFrame({name: _column(data[name]) for name in NAMES})

    def _devices(self, dev: np.ndarray) -> pa.Array:
        base = self.population.n_devices
        vocab = self._ids["device"]  # dev0 .. dev{base-1}, then "unknown"
        new = np.unique(dev[dev >= base])
        if len(new):
            names = pc.binary_join_element_wise(
                pa.scalar("dev", pa.large_string()),
                pc.cast(pa.array(new, pa.int64()), pa.large_string()),
                pa.scalar("", pa.large_string()),
            )
            vocab = pa.concat_arrays([vocab, names])
        index = np.where(dev == sc.UNKNOWN_DEVICE, base, dev)
        index = np.where(dev >= base, base + 1 + np.searchsorted(new, dev), index)
        return vocab.take(index)

    def _events(self, windows: sc.Windows, column: str, vocab: pa.Array) -> pd.DataFrame:
        entity, start = windows.events()
        begin = pd.DatetimeIndex(
            (self._origin_ns + np.round(start * 1e9).astype(np.int64)).view("datetime64[ns]")
        ).tz_localize("UTC")
        return pd.DataFrame(
            {
                column: _column(vocab.take(entity)),
                "start": begin,
                "end": begin + pd.Timedelta(seconds=windows.length),
            }
        )


class _Search:
    """``np.searchsorted(cum, u, side="right") - 1`` for a fixed sorted ``cum >= 0``, bucketed.

    A binary search per row costs a cache miss and a mispredicted branch per step. Instead,
    ``bucket(x) = clip(int(x * scale), 0, last)`` is monotone in ``x``: entries of a lower bucket
    than ``bucket(u)`` are ``< u``, entries of a higher one ``> u``. So the answer is the count
    of entries before ``u``'s bucket plus a count over its few entries (``width``, padded with
    ``+inf``): exactly searchsorted's, in ``width + 1`` gathers for the whole batch.
    """

    def __init__(self, cum: np.ndarray, per_entry: int = 4) -> None:
        self._cum = cum
        n_buckets = per_entry * len(cum)
        self._scale = n_buckets / cum[-1] if cum[-1] > 0 else 0.0
        self._last = n_buckets - 1
        keys = np.clip((cum * self._scale).astype(np.int64), 0, self._last)
        self._before = np.searchsorted(keys, np.arange(n_buckets + 1)) - 1
        self.width = int(np.diff(self._before).max())
        self._padded = np.concatenate([cum, np.full(self.width, np.inf)])

    def __call__(self, u: np.ndarray) -> np.ndarray:
        if not self._scale or self.width > 8:  # degenerate weights: the plain search
            return np.searchsorted(self._cum, u, side="right") - 1
        at = self._before.take(np.clip((u * self._scale).astype(np.int64), 0, self._last))
        found = at.copy()
        for k in range(1, self.width + 1):
            found += self._padded.take(at + k) <= u
        return found


def _column(values: Any) -> Any:
    if isinstance(values, pa.Array):
        return pd.array(values, dtype=_STR)
    return values
