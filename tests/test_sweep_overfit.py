"""PBO by CSCV (hand-checked cases and a brute-force reference), Hansen's SPA orientation, daily P&L for
the deflated Sharpe, and the deflated Sharpe of a sweep's best configuration."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from engine import stats
from engine.sweep import pbo_cscv
from engine.sweep.overfit import daily_pnl, deflated_sharpe_of, spa_test


def frame(rows) -> pd.DataFrame:
    m = np.asarray(rows, dtype=float)
    return pd.DataFrame(m, index=pd.date_range("2024-01-01", periods=len(m), freq="2h", tz="UTC"),
                        columns=pd.Index(range(10, 10 + m.shape[1]), name="config_id"))


def test_pbo_two_blocks_by_hand() -> None:
    # split A: IS = row 0 -> config 10 (3%) wins, OOS row 1 ranks it last of 3 -> w = 1/4, logit ln(1/3)
    # split B: IS = row 1 -> config 11 (2%) wins, OOS row 0 ranks it last     -> w = 1/4, logit ln(1/3)
    overfit = pbo_cscv(frame([[0.03, 0.01, 0.02], [0.00, 0.02, 0.01]]), blocks=2, metric="mean")
    assert overfit.pbo == 1.0 and overfit.n_splits == 2
    assert np.allclose(overfit.logits, [math.log(1 / 3)] * 2)
    assert list(overfit.chosen) == [10, 11] and np.allclose(overfit.oos_performance, [0.0, 0.01])
    assert overfit.prob_oos_loss == 0.0
    # a configuration best in both halves: it ranks first out of sample -> w = 3/4, logit ln(3), PBO 0
    robust = pbo_cscv(frame([[0.03, 0.01, 0.02], [0.04, 0.02, 0.01]]), blocks=2, metric="mean")
    assert robust.pbo == 0.0 and np.allclose(robust.logits, [math.log(3)] * 2)
    # ties share their average rank: the IS winner ties the OOS best -> rank 2.5 of 3 -> w = 2.5/4
    tied = pbo_cscv(frame([[0.03, 0.01, 0.03], [0.02, 0.00, 0.02]]), blocks=2, metric="mean")
    assert list(tied.chosen) == [10, 10]  # ties in sample go to the lowest id
    assert np.allclose(tied.logits, [math.log(2.5 / 1.5)] * 2) and tied.pbo == 0.0


def brute_force_pbo(m: np.ndarray, blocks: int) -> tuple[float, np.ndarray]:
    """The paper's procedure spelled out (as pypbo does it): concatenate blocks, Sharpe, rankdata."""
    t = len(m) - len(m) % blocks
    parts = np.split(m[len(m) - t:], blocks)
    logits = []
    for chosen in itertools.combinations(range(blocks), blocks // 2):
        is_ = np.concatenate([parts[i] for i in chosen])
        oos = np.concatenate([parts[i] for i in range(blocks) if i not in chosen])
        sr_is = is_.mean(axis=0) / is_.std(axis=0, ddof=1)
        sr_oos = oos.mean(axis=0) / oos.std(axis=0, ddof=1)
        best = int(np.argmax(sr_is))
        w = rankdata(sr_oos)[best] / (m.shape[1] + 1)
        logits.append(math.log(w / (1 - w)))
    logits = np.array(logits)
    return float((logits <= 0).mean()), logits


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pbo_equals_the_brute_force_procedure(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = rng.normal(0, 0.01, size=(123, 7)) + rng.normal(0, 0.002, size=7)  # 123 rows: 3 dropped for 8 blocks
    got = pbo_cscv(frame(m), blocks=8, metric="sharpe")
    pbo, logits = brute_force_pbo(m, 8)
    assert got.n_splits == math.comb(8, 4) == len(logits) and got.rows_used == 120
    assert got.pbo == pbo and np.allclose(got.logits, logits, rtol=0, atol=1e-9)


def test_pbo_on_noise_is_about_half_and_on_a_real_edge_near_zero() -> None:
    # one noise matrix gives anything from 0.05 to 0.9 (seeds 0-19 here): PBO is a property of the
    # selection procedure, so average it over independent noise markets
    pbos = [pbo_cscv(frame(np.random.default_rng(s).normal(0, 0.01, size=(800, 30)))).pbo for s in range(16)]
    assert 0.38 < np.mean(pbos) < 0.62  # 16 blocks, C(16, 8) = 12,870 splits each
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 0.01, size=(1600, 30))
    edge = noise.copy()
    edge[:, 4] += 0.004  # one configuration earns 0.4 sd per window more in every period
    result = pbo_cscv(frame(edge))
    assert result.pbo < 0.02 and np.median(result.logits) > 2 and (result.chosen == 14).mean() > 0.95


def test_pbo_degenerate_inputs() -> None:
    one = pbo_cscv(frame(np.zeros((64, 1))))
    assert one.pbo is None and one.n_splits == 0
    flat = pbo_cscv(frame(np.zeros((64, 3))))  # nothing traded: all Sharpe ratios are 0, all tied
    assert flat.pbo == 1.0 and np.allclose(flat.logits, 0.0)
    with pytest.raises(ValueError, match="even integer"):
        pbo_cscv(frame(np.zeros((64, 3))), blocks=5)
    with pytest.raises(ValueError, match="metric must be one of"):
        pbo_cscv(frame(np.zeros((64, 3))), metric="sortino")


def test_spa_rejects_only_a_real_edge() -> None:
    rng = np.random.default_rng(3)
    bench = rng.normal(0, 0.01, 800)
    noise = pd.DataFrame(bench[:, None] + rng.normal(0, 0.01, size=(800, 6)))
    none = spa_test(noise, bench, min_block=4, reps=500, seed=0)
    assert none.p_value > 0.2 and none.p_lower <= none.p_value <= none.p_upper
    better = noise.copy()
    better[3] += 0.003  # mean excess 0.3% per window, t about 4
    edge = spa_test(better, bench, min_block=4, reps=500, seed=0)
    assert edge.p_value < 0.01 and edge.block >= 4 and edge.n_models == 6
    worse = noise.copy() - 0.003  # every configuration below the benchmark: no superior model
    assert spa_test(worse, bench, min_block=4, reps=500, seed=0).p_value > 0.5
    same = spa_test(pd.DataFrame({0: bench, 1: bench}), bench, min_block=4, reps=100, seed=0)
    assert same.p_value is None and same.n_models == 0


def test_daily_pnl_counts_a_window_on_the_day_it_closes() -> None:
    idx = pd.DatetimeIndex(["2024-01-01 18:00", "2024-01-01 20:00", "2024-01-01 22:00"], tz="UTC")
    returns = pd.DataFrame({1: [0.01, 0.02, 0.04]}, index=idx)
    daily = daily_pnl(returns, window_hours=4, sleeve_factor=0.5)
    # 18:00 closes 22:00 (day 1), 20:00 closes at midnight (still day 1), 22:00 closes 02:00 (day 2)
    assert daily[1].tolist() == [0.015, 0.02]
    assert list(daily.index.strftime("%Y-%m-%d")) == ["2024-01-01", "2024-01-02"]


def test_deflated_sharpe_of_the_best_configuration() -> None:
    rng = np.random.default_rng(5)
    daily = pd.DataFrame(rng.normal(0, 0.01, size=(400, 20)))
    daily[7] += 0.004  # annualised Sharpe about 7.6: far above what 20 noise trials reach
    out = deflated_sharpe_of(daily, 7, n_trials=20)
    sharpes = daily.mean() / daily.std(ddof=1) * math.sqrt(365.25)
    assert out.config_id == 7 and out.n_trials == 20 and out.n_days == 400
    assert out.trials_sharpe_variance is None  # the bar comes from the sampling variance of skill-less trials
    assert out.across_variance == pytest.approx(sharpes.var(ddof=1), rel=1e-12)
    assert out.sharpe == pytest.approx(sharpes[7], rel=1e-9)
    direct = stats.deflated_sharpe(daily[7].to_numpy(), 20, periods_per_year=365.25)
    assert (out.probability, out.threshold) == (direct.probability, direct.threshold) and out.probability > 0.99
    across = deflated_sharpe_of(daily, 7, n_trials=20, variance="across")
    direct = stats.deflated_sharpe(daily[7].to_numpy(), 20, periods_per_year=365.25,
                                   trials_sharpe_variance=sharpes.var(ddof=1))
    assert across.trials_sharpe_variance == out.across_variance
    assert across.probability == pytest.approx(direct.probability, rel=1e-12)
    noise_best = int(daily.drop(columns=7).mean().idxmax())
    assert deflated_sharpe_of(daily.drop(columns=7), noise_best, n_trials=19).probability < 0.95
    # more trials raise the bar the same Sharpe must clear
    assert deflated_sharpe_of(daily, 7, n_trials=1000).threshold > out.threshold
    with pytest.raises(ValueError, match="variance must be 'sampling' or 'across'"):
        deflated_sharpe_of(daily, 7, n_trials=20, variance="cross")
