"""Overfitting control on simulated markets (docs/sweeps.md quotes these figures).

- No edge: prices are martingales in levels and costs are zero, so every configuration's expected return
  is 0 whatever it selects. The best of 27 configurations must not look significant by the deflated
  Sharpe (at 5%, in at least 90% of the seeds), PBO must be high (mean above 0.4) and Hansen's SPA must
  reject about as often as its level says.
- Planted edge: calm regimes drift up, wild ones down, and only an ATR cap between the two regimes'
  ATR trades the calm drift alone. The sweep must pick such a cap every time, with a low PBO, and the
  deflated Sharpe and SPA must see it.
"""

from __future__ import annotations

import numpy as np
import pytest
from sweep_markets import calm_drift_market, martingale_market

from engine.backtest import WalkForwardConfig
from engine.sweep import run_sweep

pytestmark = pytest.mark.slow

CFG = WalkForwardConfig(fee_bps=0, slippage_bps=0, bootstrap_samples=200)
NOISE_GRID = {"rsi_low": [30, 40, 50], "rsi_high": [60, 70, 80], "max_positions": [1, 2, 3]}
EDGE_GRID = {"max_atr_pct": [0.008, 0.012, 0.02, 0.03, 0.05, 0.1], "require_positive_trend": [False, True],
             "max_positions": [1, 2, 3]}
CAPTURING = (0.008, 0.012)  # calm ATR is about 0.6% of the price, wild about 1.7%
NOISE_SEEDS, EDGE_SEEDS = range(40), range(12)


def figures(sweep) -> dict[str, float | None]:
    dsr = sweep.deflated_sharpe
    return {"pbo": sweep.pbo, "dsr": None if dsr is None else dsr.probability, "spa": sweep.spa_p_value,
            "cap": float(sweep.best()["max_atr_pct"]), "windows": len(sweep.returns), "configs": len(sweep.table)}


@pytest.fixture(scope="module")
def noise() -> list[dict]:
    return [figures(run_sweep(martingale_market(seed), "macd_rsi_confluence", NOISE_GRID, CFG)) for seed in NOISE_SEEDS]


@pytest.fixture(scope="module")
def edge() -> list[dict]:
    return [figures(run_sweep(calm_drift_market(seed), "momentum_rank", EDGE_GRID, CFG)) for seed in EDGE_SEEDS]


def test_no_edge_is_not_significant_and_overfit(noise) -> None:
    assert all(f["configs"] == 27 and f["windows"] == 301 for f in noise)
    dsr = np.array([f["dsr"] for f in noise], dtype=float)
    pbo = np.array([f["pbo"] for f in noise], dtype=float)
    spa = np.array([f["spa"] for f in noise], dtype=float)
    print(f"\nno edge, {len(noise)} seeds: DSR > 0.95 in {np.mean(dsr > 0.95):.1%}, mean PBO {pbo.mean():.3f}, "
          f"SPA p < 0.05 in {np.mean(spa < 0.05):.1%}")
    assert np.mean(dsr > 0.95) <= 0.10  # the best of 27 is not significant in at least 90% of the seeds
    assert pbo.mean() > 0.4
    assert np.mean(spa < 0.05) <= 0.15  # 5% test: about 2 of 40 by chance


def test_planted_edge_is_found_with_low_pbo(edge) -> None:
    caps = [f["cap"] for f in edge]
    dsr = np.array([f["dsr"] for f in edge], dtype=float)
    pbo = np.array([f["pbo"] for f in edge], dtype=float)
    spa = np.array([f["spa"] for f in edge], dtype=float)
    print(f"\nplanted edge, {len(edge)} seeds: best cap {sorted(set(caps))}, DSR > 0.95 in {np.mean(dsr > 0.95):.1%}, "
          f"mean PBO {pbo.mean():.3f}, SPA p < 0.05 in {np.mean(spa < 0.05):.1%}")
    assert all(cap in CAPTURING for cap in caps)  # the sweep finds the configurations that can use the edge
    assert pbo.mean() < 0.2 and np.median(pbo) < 0.1
    assert np.mean(dsr > 0.95) >= 0.75
    assert np.mean(spa < 0.05) >= 0.9
