"""Honest statistics: block bootstrap, closed-form null baseline, rank IC."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.stats import block_bootstrap_ci, block_length, null_baseline, one_sided_p, rank_ic


def test_block_bootstrap_is_reproducible_and_wider_for_autocorrelated_returns():
    rng = np.random.default_rng(1)
    e = rng.normal(0, 0.01, 5001)
    x = e[1:] + e[:-1]  # MA(1): lag-1 autocorrelation 0.5, like 4h windows shifted by 2h
    a = block_bootstrap_ci(x, samples=800, block=block_length(len(x), 2), confidence=0.95, seed=7)
    b = block_bootstrap_ci(x, samples=800, block=block_length(len(x), 2), confidence=0.95, seed=7)
    iid = block_bootstrap_ci(x, samples=800, block=1, confidence=0.95, seed=7)
    assert a == b
    assert a[0] < x.mean() < a[1]
    # x_t = e_t + e_{t-1}: variance 2s^2, lag-1 autocovariance s^2, long-run variance 4s^2, so the true
    # std of the mean is sqrt(4/2) = 1.41x what an i.i.d. resampling assumes
    ratio = (a[1] - a[0]) / (iid[1] - iid[0])
    assert 1.25 < ratio < 1.6


def test_block_length_rules():
    assert block_length(4380, 2) == 16  # round(4380 ** (1/3))
    assert block_length(50, 2) == 4
    assert block_length(3, 2) == 3


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
    # Spearman with a tie: scores (1, 2, 2, 3) vs returns (1, 2, 3, 4) -> ranks (1, 2.5, 2.5, 4)
    tie_ic = rank_ic(np.zeros(4), np.array([1.0, 2.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    a = np.array([1, 2.5, 2.5, 4]) - 2.5
    b = np.array([1, 2, 3, 4]) - 2.5
    assert tie_ic["rank_ic_mean"] == pytest.approx((a @ b) / np.sqrt((a @ a) * (b @ b)))
