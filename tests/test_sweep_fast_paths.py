"""The fast paths a sweep relies on give bit-identical results to the plain definitions: percentile ranks
on a dense layout, ranking ties by categorical codes, the joined names of the selected symbols."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from engine.backtest.evaluate import _rank_candidates
from engine.backtest.walk_forward import _selected_names
from engine.features.cross_section import pct_rank_by_code, symbol_sort_keys
from engine.reuse import reuse_scope
from engine.stats import BlockResamples, quantile_spread
from engine.stats.summary import month_labels


def reference_pct_rank(x: np.ndarray, codes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Average rank within each group over the valid rows, divided by the group's count (scipy)."""
    out = np.full(len(x), np.nan)
    valid = mask & np.isfinite(x)
    for g in np.unique(codes[valid]):
        rows = np.flatnonzero(valid & (codes == g))
        out[rows] = rankdata(x[rows], method="average") / len(rows)
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("layout", ["grouped", "shuffled", "one_big_group"])
def test_pct_rank_paths_equal_the_definition(seed: int, layout: str) -> None:
    rng = np.random.default_rng(seed)
    n_groups = 1 if layout == "one_big_group" else int(rng.integers(1, 40))
    codes = np.sort(rng.integers(0, n_groups, size=int(rng.integers(1, 400))))
    if layout == "shuffled":
        codes = rng.permutation(codes)
    x = rng.integers(-3, 4, size=len(codes)).astype(float)  # many ties
    x[rng.random(len(x)) < 0.1] = np.nan
    mask = rng.random(len(x)) < 0.9
    got = pct_rank_by_code(x, codes.astype(np.int64), n_groups, mask)
    want = reference_pct_rank(x, codes, mask)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(got[~np.isnan(got)], want[~np.isnan(want)])  # bit-identical, not merely close


def test_skewed_groups_take_the_general_path_and_agree() -> None:
    rng = np.random.default_rng(3)
    codes = np.r_[np.zeros(5000, dtype=np.int64), np.arange(1, 3000)]  # one huge group, many singletons
    x = rng.normal(size=len(codes))
    got = pct_rank_by_code(x, codes, 3000, np.ones(len(x), dtype=bool))
    assert np.array_equal(got, reference_pct_rank(x, codes, np.ones(len(x), dtype=bool)))


def test_categorical_codes_rank_ties_like_symbol_names() -> None:
    rng = np.random.default_rng(0)
    names = ["ETH/BTC", "ADA/BTC", "XLM/BTC", "DASH/BTC", "LTC/BTC", "Zed/BTC", "eth/BTC"]
    symbols = rng.choice(names, size=600)
    times = np.repeat(np.arange(100), 6)
    score = rng.integers(0, 3, size=600).astype(float)  # ties everywhere: the symbol decides
    candidate = rng.random(600) < 0.8
    by_name = _rank_candidates(times, symbols.astype(str), score, candidate)
    panel_like = pd.Series(pd.Categorical(symbols, categories=sorted(names)))
    keys = symbol_sort_keys(panel_like)
    assert keys.dtype.kind == "i"  # the fast path is taken for the panel's sorted categories
    assert np.array_equal(_rank_candidates(times, keys, score, candidate), by_name, equal_nan=True)
    unsorted = pd.Series(pd.Categorical(symbols, categories=names))
    assert symbol_sort_keys(unsorted).dtype.kind in "OU"  # categories out of name order: use the names
    assert np.array_equal(_rank_candidates(times, symbol_sort_keys(unsorted), score, candidate), by_name,
                          equal_nan=True)


def reference_ranks(times, names, score, candidate) -> np.ndarray:
    """Rank within each time by score descending, then name, written as a Python sort."""
    rank = np.full(len(times), np.nan)
    for t in np.unique(times):
        rows = [i for i in np.flatnonzero(times == t) if candidate[i]]
        for r, i in enumerate(sorted(rows, key=lambda i: (-score[i], names[i])), start=1):
            rank[i] = r
    return rank


def test_ranks_reuse_one_sort_for_every_candidate_set() -> None:
    rng = np.random.default_rng(4)
    names = np.array(["B/X", "A/X", "D/X", "C/X"])
    symbols = pd.Series(pd.Categorical(np.tile(names, 50), categories=sorted(names)))
    times = np.repeat(np.arange(50), 4)
    score = rng.integers(0, 4, size=200).astype(float)
    score[rng.random(200) < 0.1] = np.nan
    keys = symbol_sort_keys(symbols)
    sets = [np.isfinite(score) & (rng.random(200) < p) for p in (0.3, 0.6, 1.0)]
    with reuse_scope():
        inside = [_rank_candidates(times, keys, score, c) for c in sets]
    for c, got in zip(sets, inside, strict=True):
        want = reference_ranks(times, symbols.astype(str).to_numpy(), score, c)
        assert np.array_equal(got, want, equal_nan=True)
        assert np.array_equal(_rank_candidates(times, keys, score, c), want, equal_nan=True)


def test_selected_names_are_joined_in_rank_order() -> None:
    decision_ms = np.array([0, 10, 20, 30])
    ev = pd.DataFrame({
        "decision_ms": [0, 0, 0, 20, 20, 30],
        "rank": [2.0, 1.0, 3.0, 1.0, np.nan, 1.0],
        "symbol": pd.Categorical(["B/X", "A/X", "C/X", "C/X", "A/X", "B/X"]),
    })
    sel = np.array([True, True, False, True, False, True])
    names = _selected_names(ev, sel, decision_ms)
    assert names.tolist() == ["A/X,B/X", "", "C/X", "B/X"]


@pytest.mark.parametrize("n", [1, 2, 7, 250, 251])
def test_resampled_medians_equal_numpy_median(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.normal(0, 0.01, n)
    x[rng.random(n) < 0.3] = 0.0  # idle windows: many ties
    rs = BlockResamples(n, block=min(n, 4), samples=300, seed=1)
    assert np.array_equal(rs.medians(x), np.median(rs.gather(x), axis=1))
    x[0] = np.nan  # not a window return, but the fallback keeps numpy's answer
    assert np.array_equal(rs.medians(x), np.median(rs.gather(x), axis=1), equal_nan=True)


def test_month_labels_equal_strftime() -> None:
    times = pd.Series(pd.date_range("2023-12-31 20:00", periods=40, freq="2h", tz="UTC"))
    want = times.dt.tz_convert("UTC").dt.strftime("%Y-%m").to_numpy()
    assert month_labels(pd.DatetimeIndex(times).asi8).tolist() == want.tolist()


def test_quantile_spread_with_keys_equals_with_names() -> None:
    rng = np.random.default_rng(2)
    names = np.array([f"S{i}/X" for i in (3, 10, 1, 22, 5, 7, 9, 12, 40, 2, 31, 8)])
    symbols = pd.Series(pd.Categorical(np.tile(names, 30), categories=sorted(names)))
    times = np.repeat(np.arange(30), len(names))
    score = rng.integers(0, 2, size=len(times)).astype(float)  # ties decided by the name
    forward = rng.normal(0, 0.01, len(times))
    by_name = quantile_spread(times, symbols.astype(str).to_numpy(), score, forward)
    keys = symbol_sort_keys(symbols)
    assert quantile_spread(times, keys, score, forward) == by_name
    # keys turned into text ("10" < "2") would break the ties in another order: the check has teeth
    assert quantile_spread(times, keys.astype(str), score, forward) != by_name


def test_a_run_without_its_per_symbol_table_has_the_same_metrics_and_windows() -> None:
    """The sweep's chunks skip `symbol_metrics` (they keep metrics and window returns only): nothing else
    may change, on the real sample."""
    from engine.backtest import WalkForwardConfig, prepare_histories
    from engine.backtest.walk_forward import decision_panel
    from engine.data.sample import load_sample_candles
    from engine.strategies import get_strategy
    from engine.sweep.run import run_config

    cfg = WalkForwardConfig(start="2018-01-22", end="2018-01-30", max_positions=2)
    shared = decision_panel(prepare_histories(load_sample_candles(), cfg.feature_timeframe), cfg)
    strategy = get_strategy("macd_rsi_confluence", {"rsi_low": 35})
    full, lean = run_config(shared, strategy, cfg), run_config(shared, strategy, cfg, per_symbol=False)
    assert len(full.symbol_metrics) > 0 and len(lean.symbol_metrics) == 0
    assert list(lean.symbol_metrics.columns) == list(full.symbol_metrics.columns)
    assert lean.metrics == full.metrics
    pd.testing.assert_frame_equal(lean.windows, full.windows, check_exact=True)
    pd.testing.assert_frame_equal(lean.trades, full.trades, check_exact=True)
