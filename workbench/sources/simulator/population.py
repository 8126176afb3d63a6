"""The simulated world, built once from the seed: countries, customers, cards, devices, terminals.

Customers and terminals live in a dozen countries on five continents, mostly around real
cities (the rest spread over the country's bounding box). Each customer has a spending profile
(typical amount, spread, relative activity, channel mix), 1-2 cards, 1-2 devices, and a fixed
row of *usual terminals*: the nearest point-of-sale terminals and ATMs to home plus a few
favourite online merchants. Genuine transactions only ever use those usual terminals, which is
what lets the fraud scenarios pick terminals a card has provably never used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

# code, currency, continent, UTC offset (h, no DST), bbox (lat0, lat1, lon0, lon1), share, cities
# Ordered by continent so that every continent is one contiguous block of country indices.
_COUNTRIES = (
    (
        "FR",
        "EUR",
        0,
        1,
        (42.5, 51.0, -4.5, 8.0),
        0.20,
        ((48.86, 2.35), (45.76, 4.84), (43.30, 5.37), (43.60, 1.44)),
    ),
    (
        "DE",
        "EUR",
        0,
        1,
        (47.5, 54.8, 6.0, 15.0),
        0.18,
        ((52.52, 13.40), (48.14, 11.58), (53.55, 9.99), (50.94, 6.96)),
    ),
    (
        "ES",
        "EUR",
        0,
        1,
        (36.0, 43.7, -9.3, 3.3),
        0.09,
        ((40.42, -3.70), (41.39, 2.17), (39.47, -0.38), (37.39, -5.98)),
    ),
    (
        "IT",
        "EUR",
        0,
        1,
        (37.0, 46.5, 7.0, 18.5),
        0.09,
        ((41.90, 12.50), (45.46, 9.19), (40.85, 14.27)),
    ),
    ("NL", "EUR", 0, 1, (51.0, 53.5, 3.5, 7.1), 0.05, ((52.37, 4.90), (51.92, 4.48))),
    (
        "GB",
        "GBP",
        0,
        0,
        (50.0, 58.5, -5.5, 1.8),
        0.10,
        ((51.51, -0.13), (53.48, -2.24), (52.49, -1.89), (55.86, -4.25)),
    ),
    ("CH", "CHF", 0, 1, (45.9, 47.7, 6.0, 10.4), 0.03, ((47.37, 8.54), (46.20, 6.14))),
    (
        "US",
        "USD",
        1,
        -6,
        (29.0, 47.0, -122.0, -72.0),
        0.12,
        ((40.71, -74.01), (34.05, -118.24), (41.88, -87.63), (29.76, -95.37)),
    ),
    (
        "CA",
        "CAD",
        1,
        -5,
        (43.0, 53.5, -123.5, -63.5),
        0.04,
        ((43.65, -79.38), (45.50, -73.57), (49.28, -123.12)),
    ),
    (
        "BR",
        "BRL",
        2,
        -3,
        (-30.0, -5.0, -52.0, -35.0),
        0.05,
        ((-23.55, -46.63), (-22.91, -43.17), (-15.79, -47.88)),
    ),
    ("SG", "SGD", 3, 8, (1.24, 1.45, 103.6, 104.0), 0.02, ((1.29, 103.85),)),
    (
        "AU",
        "AUD",
        4,
        10,
        (-38.5, -27.0, 115.0, 153.5),
        0.03,
        ((-33.87, 151.21), (-37.81, 144.96), (-27.47, 153.03), (-31.95, 115.86)),
    ),
)
COUNTRY_CODES = tuple(c[0] for c in _COUNTRIES)
CURRENCIES = tuple(c[1] for c in _COUNTRIES)
CONTINENT = np.array([c[2] for c in _COUNTRIES], dtype=np.int64)
UTC_OFFSET_H = np.array([c[3] for c in _COUNTRIES], dtype=np.int64)
_BBOX = np.array([c[4] for c in _COUNTRIES], dtype=np.float64)
_SHARE = np.array([c[5] for c in _COUNTRIES]) / sum(c[5] for c in _COUNTRIES)
_CITY = np.array([city for c in _COUNTRIES for city in c[6]], dtype=np.float64)
_CITY_START = np.cumsum([0] + [len(c[6]) for c in _COUNTRIES])[:-1]
_CITY_COUNT = np.array([len(c[6]) for c in _COUNTRIES])

CHANNELS = ("pos", "atm", "ecom")  # terminal kinds; a transaction's channel is its terminal's
POS, ATM, ECOM = 0, 1, 2
_KIND_SHARE = (0.75, 0.10, 0.15)

# category, amount multiplier (x the customer's typical amount), share per terminal kind
_CATEGORIES = (
    ("grocery", 0.8, (0.30, 0, 0.04)),
    ("restaurant", 0.7, (0.24, 0, 0.04)),
    ("fuel", 1.0, (0.14, 0, 0)),
    ("retail", 1.2, (0.20, 0, 0.25)),
    ("electronics", 3.0, (0.06, 0, 0.14)),
    ("travel", 4.0, (0.06, 0, 0.10)),
    ("online_services", 0.4, (0, 0, 0.25)),
    ("gambling", 1.5, (0, 0, 0.07)),
    ("crypto", 3.0, (0, 0, 0.05)),
    ("money_transfer", 3.0, (0, 0, 0.06)),
    ("cash_withdrawal", 2.0, (0, 1.0, 0)),
)
CATEGORIES = tuple(c[0] for c in _CATEGORIES)
CATEGORY_MULT = np.array([c[1] for c in _CATEGORIES])
_CATEGORY_P = np.array([c[2] for c in _CATEGORIES]).T  # kind x category

# Layout of a customer's row of usual terminals: nearest POS, nearest ATMs, favourite webshops.
USUAL_WIDTH = {POS: 10, ATM: 2, ECOM: 5}
USUAL_START = {POS: 0, ATM: 10, ECOM: 12}
USUAL_K = 17


@dataclass
class Population:
    """Every entity of the simulated world as numpy arrays (index = entity number).

    Terminals are ordered by (kind, country), so each kind, and each country (and continent)
    within a kind, is a contiguous index range: see :meth:`block`.
    """

    cust_country: np.ndarray
    cust_lat: np.ndarray
    cust_lon: np.ndarray
    cust_amount: np.ndarray  # typical (median) amount
    cust_sigma: np.ndarray  # log-space spread of amounts
    cust_weight: np.ndarray  # relative transactions per day
    cust_channel_cdf: np.ndarray  # customer x 3 cumulative probability of pos, atm, ecom
    card_start: np.ndarray
    card_count: np.ndarray
    card_customer: np.ndarray
    device_start: np.ndarray
    device_count: np.ndarray
    term_kind: np.ndarray
    term_country: np.ndarray
    term_lat: np.ndarray
    term_lon: np.ndarray
    term_category: np.ndarray
    usual: np.ndarray  # customer x USUAL_K terminal numbers
    kind_start: np.ndarray  # kind -> first terminal of that kind (len 4, last = n_terminals)
    kind_country_start: np.ndarray  # kind x (n_countries + 1) -> first terminal of kind+country
    ecom_order: np.ndarray  # a fixed random order of the webshops (offsets from the first)

    @property
    def n_customers(self) -> int:
        return len(self.cust_country)

    @property
    def n_cards(self) -> int:
        return len(self.card_customer)

    @property
    def n_devices(self) -> int:
        return int(self.device_start[-1] + self.device_count[-1])

    @property
    def n_terminals(self) -> int:
        return len(self.term_kind)

    def block(self, kind: int, countries: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        """First and end terminal number of the given kind in ``countries`` (arrays or ints)."""
        table = self.kind_country_start[kind]
        return table[countries], table[np.asarray(countries) + 1]

    def id_vocabularies(self) -> dict[str, pa.Array]:
        """Arrow string arrays of the ids, indexed by entity number (built once, taken per row).

        ``device`` has one more entry at the end: ``unknown``, the device of card-present rows.
        """

        def ids(prefix: str, n: int) -> pa.Array:
            return pa.array([f"{prefix}{i}" for i in range(n)], pa.large_string())

        return {
            "customer": ids("cust", self.n_customers),
            "card": ids("card", self.n_cards),
            "terminal": ids("term", self.n_terminals),
            "device": pa.concat_arrays(
                [ids("dev", self.n_devices), pa.array(["unknown"], pa.large_string())]
            ),
        }


def build_population(rng: np.random.Generator, n_customers: int, n_terminals: int) -> Population:
    """A reproducible population for ``rng``'s seed."""
    n_countries = len(COUNTRY_CODES)
    cust_country = np.repeat(np.arange(n_countries), rng.multinomial(n_customers, _SHARE))
    cust_lat, cust_lon = _place(rng, cust_country)
    cust_amount = np.exp(rng.normal(np.log(35.0), 0.6, n_customers))
    cust_sigma = rng.uniform(0.3, 0.8, n_customers)
    cust_weight = rng.gamma(2.0, 1.0, n_customers) + 0.2
    ecom = rng.beta(2.0, 6.0, n_customers)
    atm = rng.beta(1.5, 20.0, n_customers)
    cust_channel_cdf = np.column_stack([1.0 - ecom - atm, 1.0 - ecom, np.ones(n_customers)])

    card_count = 1 + (rng.random(n_customers) < 0.3)
    card_start = np.concatenate([[0], np.cumsum(card_count)[:-1]])
    card_customer = np.repeat(np.arange(n_customers), card_count)
    device_count = 1 + (rng.random(n_customers) < 0.4)
    device_start = np.concatenate([[0], np.cumsum(device_count)[:-1]])

    # Terminals, sorted by (kind, country); kinds get at least one terminal each when possible.
    kind_n = rng.multinomial(n_terminals, _KIND_SHARE)
    term_kind = np.repeat(np.arange(3), kind_n)
    term_country = np.concatenate(
        [np.repeat(np.arange(n_countries), rng.multinomial(k, _SHARE)) for k in kind_n]
    )
    term_lat, term_lon = _place(rng, term_country)
    cat_cdf = np.cumsum(_CATEGORY_P[term_kind], axis=1)
    term_category = (rng.random(n_terminals)[:, None] > cat_cdf).sum(axis=1)
    term_category = np.minimum(term_category, len(CATEGORIES) - 1)
    key = term_kind * n_countries + term_country
    bounds = np.searchsorted(key, np.arange(3 * n_countries + 1))
    kind_country_start = np.stack(
        [bounds[k * n_countries : (k + 1) * n_countries + 1] for k in range(3)]
    )
    kind_start = np.append(kind_country_start[:, 0], n_terminals)

    pop = Population(
        cust_country,
        cust_lat,
        cust_lon,
        cust_amount,
        cust_sigma,
        cust_weight,
        cust_channel_cdf,
        card_start,
        card_count,
        card_customer,
        device_start,
        device_count,
        term_kind,
        term_country,
        term_lat,
        term_lon,
        term_category,
        np.zeros((n_customers, USUAL_K), dtype=np.int64),
        kind_start,
        kind_country_start,
        rng.permutation(kind_n[ECOM]),
    )
    pop.usual = _usual_terminals(rng, pop)
    return pop


def _place(rng: np.random.Generator, country: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points in their countries: 80 % around a city, 20 % anywhere in the bounding box."""
    n = len(country)
    city = _CITY_START[country] + (rng.random(n) * _CITY_COUNT[country]).astype(np.int64)
    lat = _CITY[city, 0] + rng.normal(0.0, 0.3, n)
    lon = _CITY[city, 1] + rng.normal(0.0, 0.3, n) / np.cos(np.radians(_CITY[city, 0]))
    box = _BBOX[country]
    spread = rng.random(n) < 0.2
    lat = np.where(spread, box[:, 0] + rng.random(n) * (box[:, 1] - box[:, 0]), lat)
    lon = np.where(spread, box[:, 2] + rng.random(n) * (box[:, 3] - box[:, 2]), lon)
    return np.clip(lat, box[:, 0], box[:, 1]), np.clip(lon, box[:, 2], box[:, 3])


def _usual_terminals(rng: np.random.Generator, pop: Population) -> np.ndarray:
    usual = np.empty((pop.n_customers, USUAL_K), dtype=np.int64)
    fallback = np.arange(pop.n_terminals)  # a tiny population may lack a kind: use any terminal
    cust_block = np.searchsorted(pop.cust_country, np.arange(len(COUNTRY_CODES) + 1))
    for kind in (POS, ATM):
        cols = slice(USUAL_START[kind], USUAL_START[kind] + USUAL_WIDTH[kind])
        anywhere = np.arange(pop.kind_start[kind], pop.kind_start[kind + 1])
        anywhere = anywhere if len(anywhere) else fallback
        # Domestic terminals only: cheaper than the whole world, and home is in one country.
        for country in range(len(COUNTRY_CODES)):
            who = slice(cust_block[country], cust_block[country + 1])
            lo, hi = pop.block(kind, country)
            pool = np.arange(lo, hi) if hi > lo else anywhere
            usual[who, cols] = _nearest(pop, who, pool, USUAL_WIDTH[kind])
    # Favourite webshops: mostly domestic (when the country has any), some foreign.
    lo, hi = pop.block(ECOM, pop.cust_country)
    n_ecom = pop.kind_start[ECOM + 1] - pop.kind_start[ECOM]
    shape = (pop.n_customers, USUAL_WIDTH[ECOM])
    domestic = (rng.random(shape) < 0.8) & (hi > lo)[:, None]
    local = lo[:, None] + (rng.random(shape) * (hi - lo)[:, None]).astype(np.int64)
    anywhere = pop.kind_start[ECOM] + (rng.random(shape) * n_ecom).astype(np.int64)
    fav = np.where(domestic, local, anywhere)
    if n_ecom == 0:
        fav = usual[:, : USUAL_WIDTH[ECOM]]
    usual[:, USUAL_START[ECOM] :] = fav
    return usual


def _nearest(pop: Population, who: slice, pool: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` terminals of ``pool`` nearest to the homes of customers ``who``, nearest first."""
    c_lat, c_lon = pop.cust_lat[who], pop.cust_lon[who]
    out = np.empty((len(c_lat), k), dtype=np.int64)
    t_lat, t_lon = pop.term_lat[pool].astype(np.float32), pop.term_lon[pool].astype(np.float32)
    chunk = max(1, 4_000_000 // len(pool))  # bounded memory for big populations
    for s in range(0, len(c_lat), chunk):
        lat = c_lat[s : s + chunk, None].astype(np.float32)
        lon = c_lon[s : s + chunk, None].astype(np.float32)
        # Equirectangular distance: exact enough to rank terminals around one home.
        d2 = (t_lat - lat) ** 2 + ((t_lon - lon) * np.cos(np.radians(lat))) ** 2
        if len(pool) > k:
            part = np.argpartition(d2, k, axis=1)[:, :k]
        else:
            part = np.broadcast_to(np.arange(len(pool)), d2.shape)
        order = np.argsort(np.take_along_axis(d2, part, axis=1), axis=1)
        best = np.take_along_axis(part, order, axis=1)
        out[s : s + chunk] = pool[best[:, np.arange(k) % best.shape[1]]]
    return out


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km (vectorized)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
