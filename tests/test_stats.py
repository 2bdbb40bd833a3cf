"""Honest statistics: block bootstrap (arch), studentized mean test, null baseline, rank IC, quintiles."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from arch.bootstrap import optimal_block_length
from arch.covariance.kernel import Bartlett

from engine.stats import (
    BlockResamples,
    block_bootstrap_ci,
    block_length,
    block_standard_error,
    bootstrap_indices,
    compare_window_returns,
    mean_test,
    newey_west_tstat,
    null_baseline,
    one_sided_p,
    quantile_spread,
    rank_ic,
    rank_ic_series,
    window_null,
)


def _ma1(n: int, seed: int) -> np.ndarray:
    e = np.random.default_rng(seed).normal(0, 0.01, n + 1)
    return e[1:] + e[:-1]  # lag-1 autocorrelation 0.5, like 4h windows shifted by 2h


def test_block_bootstrap_is_reproducible_and_wider_for_autocorrelated_returns():
    x = _ma1(5000, 1)
    block = block_length(x, 2)
    a = block_bootstrap_ci(x, samples=800, block=block, confidence=0.95, seed=7)
    b = block_bootstrap_ci(x, samples=800, block=block, confidence=0.95, seed=7)
    iid = block_bootstrap_ci(x, samples=800, block=1, confidence=0.95, seed=7)
    assert a == b
    assert a[0] < x.mean() < a[1]
    # x_t = e_t + e_{t-1}: variance 2s^2, lag-1 autocovariance s^2, long-run variance 4s^2, so the true
    # std of the mean is sqrt(4/2) = 1.41x what an i.i.d. resampling assumes (block 12: 1.38x)
    ratio = (a[1] - a[0]) / (iid[1] - iid[0])
    assert 1.25 < ratio < 1.6


def test_block_length_rules():
    white = np.random.default_rng(0).normal(size=4380)
    assert block_length(white, 2) == 12  # the floor, 6 x window/shift, beats the estimate for white noise
    assert block_length(white, 4) == 24
    assert block_length(np.zeros(100), 2) == 12  # no variation: the floor
    assert block_length(np.arange(5.0), 2) == 5  # never longer than the series
    # a persistent series: arch's Politis-White circular estimate (rounded up) beats the floor
    ar = np.zeros(4000)
    shocks = np.random.default_rng(1).normal(size=4000)
    for t in range(1, 4000):
        ar[t] = 0.95 * ar[t - 1] + shocks[t]
    expected = math.ceil(optimal_block_length(ar)["circular"].iloc[0])
    assert expected > 12 and block_length(ar, 2) == expected
    # several columns: the longest of their blocks
    assert block_length(np.column_stack([white[:4000], ar]), 2) == expected


def test_bootstrap_indices_are_arch_circular_blocks():
    idx = bootstrap_indices(10, block=4, samples=50, seed=3)
    assert idx.shape == (50, 10)
    assert np.array_equal(idx, bootstrap_indices(10, block=4, samples=50, seed=3))
    # within each block of 4 the indices step by one, wrapping around the end (circular)
    for row in idx:
        for start in (0, 4, 8):
            block = row[start:start + 4]
            assert all((b - a) % 10 == 1 for a, b in zip(block[:-1], block[1:], strict=False))


def test_block_standard_error_by_hand():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    # block 1: population variance 1.25 over n = 4
    assert block_standard_error(x, 1) == pytest.approx(math.sqrt(1.25 / 4))
    # block 2: deviations (-1.5, -0.5, 0.5, 1.5); circular pair sums (-2, 0, 2, 0); mean square 2;
    # variance of the bootstrap mean = 2 / (n * block) = 0.25
    assert block_standard_error(x, 2) == pytest.approx(0.5)
    # the bootstrap's own std of the mean matches it when n is a multiple of the block
    rs = BlockResamples(4, block=2, samples=20000, seed=0)
    assert np.std(rs.totals(x) / 4) == pytest.approx(0.5, rel=0.03)


def test_block_sums_match_gathered_resamples():
    x = np.random.default_rng(5).normal(size=23)  # 23 = 4 blocks of 5 and a cut one of 3
    rs = BlockResamples(23, block=5, samples=40, seed=9)
    gathered = rs.gather(x)
    assert np.allclose(rs.totals(x), gathered.sum(axis=1))
    assert np.allclose(rs.block_sums(x)[:, -1], gathered[:, 20:].sum(axis=1))
    assert list(rs.lengths) == [5, 5, 5, 5, 3]


def test_mean_test_is_the_symmetric_percentile_t_by_hand():
    x = _ma1(300, 2) + 0.002
    block = 12
    rs = BlockResamples(len(x), block=block, samples=500, seed=4)
    got = mean_test(x, rs, 0.9)
    # independent computation: each resample's mean and block-sum standard error from the index rows
    se = block_standard_error(x, block)
    abs_t = []
    for row in rs.indices:
        xs = x[row]
        m = xs.mean()
        chunks = [xs[i:i + block] - m for i in range(0, len(xs), block)]
        se_star = math.sqrt(sum(c.sum() ** 2 for c in chunks)) / len(xs)
        abs_t.append(abs(m - x.mean()) / se_star)
    q = np.quantile(abs_t, 0.9)
    assert got.ci_low == pytest.approx(x.mean() - q * se)
    assert got.ci_high == pytest.approx(x.mean() + q * se)
    t_obs = x.mean() / se
    p_two = (1 + sum(t >= abs(t_obs) for t in abs_t)) / 501
    assert got.p_two_sided == pytest.approx(p_two)
    assert got.p_greater == pytest.approx(p_two / 2)
    flipped = mean_test(-x, rs, 0.9)
    assert flipped.p_greater == pytest.approx(1 - p_two / 2)


def test_mean_test_without_variation_or_samples_is_undefined():
    assert mean_test(np.zeros(50), BlockResamples(50, block=5, samples=10, seed=0), 0.95).ci_low is None
    assert block_bootstrap_ci(np.ones(1), samples=100, block=1, confidence=0.95, seed=0) == (None, None)
    assert block_bootstrap_ci(_ma1(50, 0), samples=0, block=4, confidence=0.95, seed=0) == (None, None)


def test_compare_window_returns_pairs_and_aligns():
    rng = np.random.default_rng(11)
    market = rng.normal(0, 0.02, 600)  # shared by both strategies: pairing removes it
    a = market + rng.normal(0.001, 0.002, 600)
    b = market + rng.normal(0.0, 0.002, 600)
    better = compare_window_returns(a, b, samples=500, seed=1)
    assert better.mean_difference == pytest.approx(float((a - b).mean()))
    assert better.ci_low > 0 and better.p_value_greater < 0.01 and better.p_value_two_sided < 0.02
    assert better.block == 12 and better.n_windows == 600
    worse = compare_window_returns(b, a, samples=500, seed=1)
    assert worse.p_value_greater > 0.99
    assert worse.ci_high == pytest.approx(-better.ci_low)
    same = compare_window_returns(a, a + rng.normal(0, 0.002, 600), samples=500, seed=1)
    assert same.ci_low < 0 < same.ci_high
    # Series are aligned on their index (decision times); windows missing on either side are dropped
    idx = pd.date_range("2024-01-01", periods=600, freq="2h", tz="UTC")
    sa, sb = pd.Series(a, index=idx), pd.Series(b, index=idx).iloc[::-1].iloc[:-10]
    aligned = compare_window_returns(sa, sb, samples=500, seed=1)
    assert aligned.n_windows == 590
    assert aligned.mean_difference == pytest.approx(float((a[10:] - b[10:]).mean()))
    with pytest.raises(ValueError, match="aligned"):
        compare_window_returns(a, b[:-1])


def test_window_null_by_hand():
    # t=0: outcomes 0.1, 0.2, 0.3 with 1 pick; t=1: same with 3 picks (no randomness); t=2: no picks
    times = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    outcome = np.array([0.1, 0.2, 0.3, 0.1, 0.2, 0.3, 0.5, -0.5])
    mean, std = window_null(times, outcome, np.array([0, 1, 2, 3]), np.array([1, 3, 0, 0]))
    assert mean == pytest.approx([0.2, 0.2, 0.0, 0.0])
    # one random pick of three: its std is the population std sqrt(((-0.1)^2 + 0 + 0.1^2) / 3)
    assert std == pytest.approx([math.sqrt(0.02 / 3), 0.0, 0.0, 0.0])


def test_null_baseline_matches_monte_carlo():
    rng = np.random.default_rng(3)
    rows = []
    picks = {}
    for t in range(40):
        n = int(rng.integers(1, 7))
        for _ in range(n):
            rows.append({"decision_ms": t, "outcome_return": rng.normal(0.001, 0.02)})
        picks[t] = int(min(n, rng.integers(0, 4)))
    eligible = pd.DataFrame(rows)
    decision_ms = np.arange(45)  # 5 decision times with nobody eligible
    k = np.array([picks.get(t, 0) for t in decision_ms])
    closed = null_baseline(eligible["decision_ms"].to_numpy(), eligible["outcome_return"].to_numpy(), decision_ms, k)
    sims = []
    by_t = {t: g["outcome_return"].to_numpy() for t, g in eligible.groupby("decision_ms")}
    for _ in range(6000):
        total = 0.0
        for t, k in picks.items():
            if k:
                total += rng.choice(by_t[t], size=k, replace=False).mean()
        sims.append(total / 45)
    assert closed["null_mean_window_return"] == pytest.approx(np.mean(sims), abs=3 * np.std(sims) / np.sqrt(6000))
    assert closed["null_std"] == pytest.approx(np.std(sims), rel=0.04)


def test_one_sided_p():
    assert one_sided_p(0.0, 0.0, 1.0) == pytest.approx(0.5)
    assert one_sided_p(1.959963984540054, 0.0, 1.0) == pytest.approx(0.025, rel=1e-6)
    assert one_sided_p(1.0, 0.0, 0.0) is None


def test_rank_ic_by_hand():
    # t=0: perfect agreement (IC 1); t=1: perfect disagreement (-1); t=2: only two symbols -> skipped
    ev = pd.DataFrame({
        "decision_ms": [0, 0, 0, 1, 1, 1, 1, 2, 2],
        "score": [1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0],
        "return_pct": [0.01, 0.02, 0.05, 0.04, 0.03, 0.02, -0.01, 0.0, 0.1],
        "void": False,
    })
    ic = rank_ic(ev["decision_ms"].to_numpy(), ev["score"].to_numpy(), ev["return_pct"].to_numpy())
    assert ic["rank_ic_count"] == 2
    assert ic["rank_ic_mean"] == pytest.approx(0.0)
    assert ic["rank_ic_positive_share"] == pytest.approx(0.5)
    times, values, n = rank_ic_series(ev["decision_ms"].to_numpy()[::-1], ev["score"].to_numpy()[::-1],
                                      ev["return_pct"].to_numpy()[::-1])
    assert list(times) == [0, 1] and list(values) == pytest.approx([1.0, -1.0]) and list(n) == [3, 4]
    # Spearman with a tie: scores (1, 2, 2, 3) vs returns (1, 2, 3, 4) -> ranks (1, 2.5, 2.5, 4)
    tie_ic = rank_ic(np.zeros(4), np.array([1.0, 2.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    a = np.array([1, 2.5, 2.5, 4]) - 2.5
    b = np.array([1, 2, 3, 4]) - 2.5
    assert tie_ic["rank_ic_mean"] == pytest.approx((a @ b) / np.sqrt((a @ a) * (b @ b)))


def test_newey_west_tstat_by_hand():
    x = _ma1(200, 6) + 0.003
    bandwidth = max(Bartlett(x).bandwidth, 7.0)  # arch's automatic choice, at least the minimum asked for
    d = x - x.mean()
    n = len(x)
    lrv = d @ d / n
    for j in range(1, int(bandwidth) + 1):
        lrv += 2 * (1 - j / (bandwidth + 1)) * (d[j:] @ d[:-j]) / n
    assert newey_west_tstat(x, 7) == pytest.approx(x.mean() / math.sqrt(lrv / n))
    assert newey_west_tstat(np.ones(10), 2) is None
    assert newey_west_tstat(np.array([0.1, 0.2]), 2) is None


def test_quantile_spread_by_hand():
    times = np.array([0] * 10 + [1] * 3 + [2] * 2)
    symbols = np.array(list("ABCDEFGHIJ") + ["X", "Y", "Z"] + ["P", "Q"])
    score = np.array([10, 9, 8, 7, 6, 5, 4, 3, 2, 1] + [1.0, 1.0, 0.0] + [1.0, 2.0], dtype=float)
    fwd = np.array([0.05, 0.03, 0, 0, 0, 0, 0, 0, -0.01, -0.02] + [0.01, 0.04, -0.02] + [0.5, -0.5])
    # t=0: 10 symbols -> quintiles of 2: (0.05 + 0.03)/2 - (-0.01 - 0.02)/2 = 0.055
    # t=1: 3 symbols -> 1 each; X and Y tie at 1.0, the engine's rank order puts X first: 0.01 - (-0.02)
    # t=2: 2 symbols, below the 3 needed: skipped
    assert quantile_spread(times, symbols, score, fwd) == pytest.approx((0.055 + 0.03) / 2)
    assert quantile_spread(times[:0], symbols[:0], score[:0], fwd[:0]) is None
