"""The sorted window amounts behind max/min and percentiles (:mod:`workbench.features.quantiles`):
the pool's blocks against plain sorted lists, and windows holding hundreds of one entity's rows
(blocks growing and shrinking through their size classes, missing amounts, late rows,
eviction, rows fed from elsewhere) against the brute-force reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.unit.test_features_engine import late_batches, make_history, stream_maintained
from tests.unit.test_features_language import reference
from workbench.features import FeatureEngine, passes
from workbench.features import quantiles as Q
from workbench.features.window_state import WindowState
from workbench.rules import parse_rules

DECLS = """
features:
  cust_max6h_lag2h: {agg: max, of: amount, by: customer_id, window: 6h, ending: 2h}
  cust_med6h_lag2h: {agg: median, of: amount, by: customer_id, window: 6h, ending: 2h}
  cust_p90_3h: {agg: percentile, q: 0.9, of: amount, by: customer_id, window: 3h}
  card_p25_big: {agg: percentile, q: 0.25, of: amount, by: card_id, window: 4h, ending: 30m,
                 where: "amount > 100"}
  card_max_big: {agg: max, of: amount, by: card_id, window: 4h, ending: 30m,
                 where: "amount > 100"}
rules:
  - {id: any, when: amount > 0, score: 1}
"""
SPECS = parse_rules({"f.yaml": DECLS}).features


def _block(pool, ent, s, b) -> list[float]:
    off, n = int(ent[s, b + Q.SB_OFF]), int(ent[s, b + Q.SB_N])
    return pool[off : off + n].tolist()


def _free(pool, pm) -> int:
    """Floats in the blocks on the free lists."""
    free = 0
    for c in range(Q.PM_FIELDS - Q.PM_FREE):
        off = int(pm[Q.PM_FREE + c])
        while off >= 0:
            free += 1 << c
            off = int(pool[off])
    return free


def test_sorted_blocks_follow_inserts_and_deletes_and_reuse_freed_blocks():
    rng = np.random.default_rng(3)
    slots = 5
    pool, pm = Q.new_pool()
    ent = np.zeros((slots, Q.SB_FIELDS), dtype=np.int64)
    held: list[list[float]] = [[] for _ in range(slots)]
    nans = [0] * slots
    values = [np.nan, 0.0, 0.5, 1.0, 99.99, 100.0, 250.0]  # many equal amounts
    high = grown = 0
    for rnd in range(3):
        for _ in range(4000):  # grow windows to hundreds of amounts, then shrink them to none
            s = int(rng.integers(slots))
            grow = rng.random() < (0.7 if _ < 2000 else 0.25)
            if grow or not (held[s] or nans[s]):
                v = float(rng.choice(values)) if rng.random() < 0.8 else float(rng.random())
                need = Q.sorted_add(pool, pm, ent, s, 0, v)
                if need:  # no room: nothing changed; grown as WindowState.grow_pool does
                    assert need > 0 and int(pm[Q.PM_HIGH]) + need > len(pool)
                    grown += 1
                    more = np.empty(max(2 * len(pool), int(pm[Q.PM_HIGH]) + need))
                    more[: pm[Q.PM_HIGH]] = pool[: pm[Q.PM_HIGH]]
                    pool = more
                    assert Q.sorted_add(pool, pm, ent, s, 0, v) == 0
                if v != v:
                    nans[s] += 1
                else:
                    held[s].append(v)
            else:
                i = int(rng.integers(len(held[s]) + nans[s]))
                v = held[s].pop(i) if i < len(held[s]) else np.nan
                nans[s] -= v != v
                Q.sorted_remove(pool, pm, ent, s, 0, v)
            assert _block(pool, ent, s, 0) == sorted(held[s])
            assert ent[s, Q.SB_NAN] == nans[s]
            c = ent[s, Q.SB_CLASS]
            # a block is at least a quarter full (past the smallest), and none when empty
            assert (c == 0) == (not held[s])
            assert c in (0, Q.MIN_CLASS) or 4 * len(held[s]) > 1 << (c - 1)
        for s in range(slots):  # empty every window: every block goes back
            while held[s]:
                Q.sorted_remove(pool, pm, ent, s, 0, held[s].pop())
            assert ent[s, Q.SB_CLASS] == 0 and ent[s, Q.SB_N] == 0
        assert _free(pool, pm) == pm[Q.PM_HIGH]  # every block is free again
        if rnd == 0:
            high = int(pm[Q.PM_HIGH])
        assert max(len(h) for h in held) == 0
    # the later rounds took freed blocks: the pool grew by little after the first one
    assert int(pm[Q.PM_HIGH]) <= 2 * high
    assert grown > 0  # the pool ran out of room (and grew between calls) at least once


def assert_sorted_windows_match(state, plan) -> None:
    """Each live entity's sorted amounts of each window are exactly the amounts of the rows
    from its first to its pend cursor that meet the window's condition; and the pool is
    exactly those blocks and the free ones (none leaks when its entity goes)."""
    dbase = passes.N_FIELDS + len(plan.win_w) * passes.W_FIELDS
    rowf = state.row.view(np.float64)
    pm = state.pool_meta
    used = _free(state.pool, pm)
    for s in range(int(state.meta[passes.M_ENTITIES])):
        if state.ent[s, passes.N_HEAD] < 0:
            continue
        for slot in range(int((plan.win_sorted >= 0).sum())):
            c = state.ent[s, dbase + len(plan.dist_win) + slot * Q.SB_FIELDS + Q.SB_CLASS]
            used += (1 << c) if c else 0
    assert used == pm[Q.PM_HIGH]
    for s in range(int(state.meta[passes.M_ENTITIES])):
        if state.ent[s, passes.N_HEAD] < 0:
            continue
        for k, slot in enumerate(plan.win_sorted.tolist()):
            if slot < 0:
                continue
            f = passes.N_FIELDS + k * passes.W_FIELDS
            e, amounts = int(state.ent[s, f + passes.W_FIRST]), []
            while e != state.ent[s, f + passes.W_PEND]:
                bit = plan.win_cond[k]
                if bit < 0 or (state.row[e, plan.lay[passes.L_COND]] >> bit) & 1:
                    amounts.append(rowf[e, plan.lay[passes.L_AMOUNT]])
                e = int(state.row[e, passes.R_NEXT])
            b = dbase + len(plan.dist_win) + slot * Q.SB_FIELDS
            known = [a for a in amounts if a == a]
            assert _block(state.pool, state.ent, s, b) == sorted(known)
            assert state.ent[s, b + Q.SB_NAN] == len(amounts) - len(known)
            assert state.ent[s, f + passes.W_AGG + passes.A_CNT] == len(amounts)


def _history(seed: int, gap: bool = False) -> pd.DataFrame:
    """Two days of 4 cards of 2 customers, a row every ~1.5 min each: windows of hundreds
    of rows; some amounts missing (a batch read without them). ``gap``: no rows from 20 h to
    31 h (every window empties, and the entities go when the retention is shorter)."""
    history = make_history(4000, seed, span_s=2 * 86400, cards=4, step_s=20)
    if gap:
        hours = (history["ts"] - history["ts"].min()).dt.total_seconds() / 3600
        history = history.loc[(hours < 20) | (hours >= 31)]
    rng = np.random.default_rng(seed)
    amount = history["amount"].to_numpy().copy()
    amount[rng.random(len(amount)) < 0.01] = np.nan
    amount[rng.random(len(amount)) < 0.3] = 150.0  # ties
    history["amount"] = amount
    return history


@pytest.mark.parametrize("seed", [1, 2])
def test_long_windows_with_late_rows_and_eviction_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    batches, arrived, batch_no = late_batches(_history(seed), rng, every=5, max_size=60)
    engine = FeatureEngine(SPECS, allowed_lateness_s=12 * 3600)  # the latest rows: ~10 h
    got = pd.concat(stream_maintained(engine, batches, rng))
    want = reference(arrived, SPECS, batch_no)
    for s in SPECS:
        np.testing.assert_array_equal(got[s.name], want[s.name].to_numpy(float), err_msg=s.name)
    for g in engine._groups:
        assert g.evicted > 0 and g.state.meta[passes.M_LATE] > 50
        assert_sorted_windows_match(g.state, g.plan)
        assert g.state.ent[:, -Q.SB_FIELDS + Q.SB_CLASS].max() > Q.MIN_CLASS + 3  # >= 128


def test_state_fed_then_computed_equals_state_computed_all_along():
    """A worker that rebuilds its state by feeding stored history (shuffled batches, late
    rows) then goes on computing gives what one computing all along gives."""
    rng = np.random.default_rng(7)
    history = _history(7, gap=True)
    batches, _, _ = late_batches(history, rng, every=4, max_size=80)
    half = len(batches) // 2
    along = FeatureEngine(SPECS, allowed_lateness_s=3600)
    for b in batches[:half]:
        along.compute(b)
    rebuilt = FeatureEngine(SPECS, allowed_lateness_s=3600)
    for b in batches[:half]:
        rebuilt.feed(b, rebuilt.entity_columns)
    for g in rebuilt._groups:
        assert_sorted_windows_match(g.state, g.plan)
    for b in batches[half:]:
        pd.testing.assert_frame_equal(rebuilt.compute(b), along.compute(b), check_exact=True)
    for g in rebuilt._groups:
        assert_sorted_windows_match(g.state, g.plan)


def test_pass_stopped_for_want_of_pool_room_resumes_with_the_same_values(monkeypatch):
    """With the pool not grown ahead of the batches, the compiled pass runs out of room in
    the middle of batches (in order and late rows): it stops, the pool grows, the pass
    resumes at the row it stopped on, and every value is still the brute-force one."""
    grown = []
    grow = WindowState.grow_pool
    monkeypatch.setattr(WindowState, "_pool_room", lambda self, n: None)
    monkeypatch.setattr(
        WindowState, "grow_pool", lambda self, need: grown.append(need) or grow(self, need)
    )
    rng = np.random.default_rng(5)
    batches, arrived, batch_no = late_batches(_history(5), rng, every=5, max_size=60)
    engine = FeatureEngine(SPECS, allowed_lateness_s=12 * 3600)
    got = pd.concat(stream_maintained(engine, batches, rng))
    want = reference(arrived, SPECS, batch_no)
    for s in SPECS:
        np.testing.assert_array_equal(got[s.name], want[s.name].to_numpy(float), err_msg=s.name)
    for g in engine._groups:
        assert_sorted_windows_match(g.state, g.plan)
    assert grown  # the pool (1,024 floats at first) grew between calls of the pass
