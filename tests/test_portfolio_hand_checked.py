"""Portfolio mode checked by hand: the sleeve maths on hand-made window returns, then end-to-end runs on
the hand-made candles of tests/portfolio_scenario.py (read its docstring for every price).

Every expected number below is written out from the prices; nothing is computed by the code under test.
Two sleeves of initial_capital/2: sleeve 0 trades k0 (16:00) and k2 (20:00), sleeve 1 k1 (18:00) and
k3 (22:00). Trade returns (no fees): C +5%, +5%, void; A +20%, -10%, -10%, +10%; B (k3 only) +5%.
ATR/price at the decision: C 10/100 = 0.1 (k0, k1), 10/105 (k2); A 40/100 = 0.4 (k0, k1), 40/120 = 1/3
(k2), 40/90 = 4/9 (k3); B 20/100 = 0.2 (k3).
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from portfolio_scenario import at, candles, config, strategy

from engine.backtest import WalkForwardConfig, run_walk_forward
from engine.portfolio import EQUITY_METRICS, simulate_sleeves

# ---------------------------------------------------------------------------------------------------------
# 1. the sleeve maths on hand-made window returns
# ---------------------------------------------------------------------------------------------------------

R = [0.10, -0.20, 0.05, 0.0, -0.10]  # window returns k0..k4 (k3 traded nothing)
W = [1.0, 0.5, 1.0, 0.0, 0.8]  # invested weight of each window


def test_two_sleeves_compounding_by_hand():
    values, cash = simulate_sleeves(np.array(R), np.array(W), 2, 100.0, True)
    # sleeve 0 (k0, k2, k4): 50 * 1.10 = 55; 55 * 1.05 = 57.75; 57.75 * 0.90 = 51.975
    # sleeve 1 (k1, k3):     50 * 0.80 = 40; 40 * 1.00 = 40
    expected = [[55.0, 50.0], [55.0, 40.0], [57.75, 40.0], [57.75, 40.0], [51.975, 40.0]]
    np.testing.assert_allclose(values, expected, rtol=1e-12)
    # cash share during [t_k, t_k + 2h), against the stakes (each sleeve's equity when its window opened):
    # k0: sleeve 0 stakes 50 fully, sleeve 1 has not started (50 in cash)       -> 50/100
    # k1: 50 * 1.0 + 50 * 0.5 = 75 of 100 invested                               -> 25/100
    # k2: sleeve 0 stakes 55 * 1.0, sleeve 1 still 50 * 0.5 = 25 -> 80 of 105   -> 25/105
    # k3: 55 * 1.0 + 40 * 0.0 = 55 of 95                                        -> 40/95
    # k4: 57.75 * 0.8 = 46.2 + 40 * 0.0 of 97.75                                 -> 51.55/97.75
    np.testing.assert_allclose(cash, [0.5, 0.25, 25 / 105, 40 / 95, 51.55 / 97.75], rtol=1e-12)


def test_two_sleeves_without_compounding_by_hand():
    values, cash = simulate_sleeves(np.array(R), np.array(W), 2, 100.0, False)
    # each window stakes the sleeve's initial 50: sleeve 0: 50 + 5 = 55; + 2.5 = 57.5; - 5 = 52.5
    #                                              sleeve 1: 50 - 10 = 40; + 0 = 40
    expected = [[55.0, 50.0], [55.0, 40.0], [57.5, 40.0], [57.5, 40.0], [52.5, 40.0]]
    np.testing.assert_allclose(values, expected, rtol=1e-12)
    # total = 100 * (1 + cumsum(R)/2): 105, 95, 97.5, 97.5, 92.5 (the v1 curve)
    np.testing.assert_allclose(values.sum(axis=1), [105.0, 95.0, 97.5, 97.5, 92.5], rtol=1e-12)
    # stakes are always 50: invested 50, 75, 75, 50, 40 of 100
    np.testing.assert_allclose(cash, [0.5, 0.25, 0.25, 0.5, 0.6], rtol=1e-12)


def test_three_sleeves_and_one_sleeve_by_hand():
    values, _ = simulate_sleeves(np.array([0.3, 0.6, -0.3, 0.1]), np.ones(4), 3, 3.0, True)
    # sleeves of 1.0: k0 -> sleeve 0: 1.3; k1 -> sleeve 1: 1.6; k2 -> sleeve 2: 0.7; k3 -> sleeve 0: 1.43
    np.testing.assert_allclose(values, [[1.3, 1, 1], [1.3, 1.6, 1], [1.3, 1.6, 0.7], [1.43, 1.6, 0.7]], rtol=1e-12)
    values, cash = simulate_sleeves(np.array([0.5, -0.5]), np.array([1.0, 0.5]), 1, 2.0, True)
    np.testing.assert_allclose(values[:, 0], [3.0, 1.5], rtol=1e-12)  # 2 * 1.5 = 3; 3 * 0.5 = 1.5
    np.testing.assert_allclose(cash, [0.0, 0.5], rtol=1e-12)
    empty_values, empty_cash = simulate_sleeves(np.array([]), np.array([]), 2, 1.0, True)
    assert empty_values.shape == (0, 2) and len(empty_cash) == 0


# ---------------------------------------------------------------------------------------------------------
# 2. end to end on hand-made candles
# ---------------------------------------------------------------------------------------------------------

T = [at("16:00"), at("18:00"), at("20:00"), at("22:00")]

CASES = {
    # equal weights 1/2; k2: C void (capital back untouched), A 1/2 * -10%
    "equal_compounding": dict(
        cfg={"compounding": True},
        weights={("16:00", "C"): 0.5, ("16:00", "A"): 0.5, ("18:00", "C"): 0.5, ("18:00", "A"): 0.5,
                 ("20:00", "C"): 0.5, ("20:00", "A"): 0.5, ("22:00", "A"): 0.5, ("22:00", "B"): 0.5},
        window_return=[0.5 * 0.05 + 0.5 * 0.20, 0.5 * 0.05 - 0.5 * 0.10, -0.5 * 0.10, 0.5 * 0.10 + 0.5 * 0.05],
        invested=[1.0, 1.0, 0.5, 1.0],
        # sleeve 0: 0.5 * 1.125 = 0.5625; * 0.95 = 0.534375 | sleeve 1: 0.5 * 0.975 = 0.4875; * 1.075 = 0.5240625
        sleeves=[[0.5625, 0.5], [0.5625, 0.4875], [0.534375, 0.4875], [0.534375, 0.5240625]],
        # stakes: k0 0.5 (+0.5 not started), k1 0.5 + 0.5, k2 0.5625 at 1/2 + 0.5, k3 0.5625 at 1/2 + 0.4875
        cash=[0.5, 0.0, 0.28125 / 1.0625, 0.28125 / 1.05],
    ),
    "equal_v1_capital_1000": dict(
        cfg={"initial_capital": 1000.0},
        window_return=[0.125, -0.025, -0.05, 0.075],
        invested=[1.0, 1.0, 0.5, 1.0],
        # stakes stay 500: sleeve 0: 500 + 62.5 = 562.5; - 25 = 537.5 | sleeve 1: 500 - 12.5 = 487.5; + 37.5 = 525
        sleeves=[[562.5, 500.0], [562.5, 487.5], [537.5, 487.5], [537.5, 525.0]],
        cash=[0.5, 0.0, 0.25, 0.25],
    ),
    # 1/atr: C 10, A 2.5 -> 0.8, 0.2 (k0, k1); k2: C 10.5, A 3 -> 7/9, 2/9; k3: A 2.25, B 5 -> 9/29, 20/29
    "inverse_volatility_compounding": dict(
        cfg={"sizing": "inverse_volatility", "compounding": True},
        weights={("16:00", "C"): 0.8, ("16:00", "A"): 0.2, ("18:00", "C"): 0.8, ("18:00", "A"): 0.2,
                 ("20:00", "C"): 7 / 9, ("20:00", "A"): 2 / 9, ("22:00", "A"): 9 / 29, ("22:00", "B"): 20 / 29},
        window_return=[0.8 * 0.05 + 0.2 * 0.20, 0.8 * 0.05 - 0.2 * 0.10, -2 / 9 * 0.10, 0.9 / 29 + 1.0 / 29],
        invested=[1.0, 1.0, 2 / 9, 1.0],
        # sleeve 0: 0.5 * 1.08 = 0.54; * (1 - 1/45) = 0.528 | sleeve 1: 0.5 * 1.02 = 0.51; * (1 + 1.9/29)
        sleeves=[[0.54, 0.5], [0.54, 0.51], [0.528, 0.51], [0.528, 0.51 * 30.9 / 29]],
        # k2: sleeve 0 stakes 0.54 at 2/9 (0.12), sleeve 1's open window is k1 (stake 0.5, fully invested);
        # k3: 0.12 again plus sleeve 1's new stake 0.51, fully invested
        cash=[0.5, 0.0, 1 - (0.12 + 0.5) / 1.04, 1 - (0.12 + 0.51) / 1.05],
    ),
    # the 0.5 cap binds on C (0.8 -> 0.5, 7/9 -> 0.5) and B (20/29 -> 0.5): the excess stays in cash
    "inverse_volatility_cap_compounding": dict(
        cfg={"sizing": "inverse_volatility", "max_weight": 0.5, "compounding": True},
        weights={("16:00", "C"): 0.5, ("16:00", "A"): 0.2, ("18:00", "C"): 0.5, ("18:00", "A"): 0.2,
                 ("20:00", "C"): 0.5, ("20:00", "A"): 2 / 9, ("22:00", "A"): 9 / 29, ("22:00", "B"): 0.5},
        window_return=[0.025 + 0.04, 0.025 - 0.02, -2 / 9 * 0.10, 0.9 / 29 + 0.025],
        invested=[0.7, 0.7, 2 / 9, 9 / 29 + 0.5],
        # sleeve 0: 0.5 * 1.065 = 0.5325; * 44/45 = 0.5206666.. | sleeve 1: 0.5 * 1.005 = 0.5025; * (1 + 1.625/29)
        sleeves=[[0.5325, 0.5], [0.5325, 0.5025], [0.5325 * 44 / 45, 0.5025],
                 [0.5325 * 44 / 45, 0.5025 * 30.625 / 29]],
        cash=[1 - 0.35, 1 - 0.7, 1 - (0.5325 * 2 / 9 + 0.35) / 1.0325,
              1 - (0.5325 * 2 / 9 + 0.5025 * (9 / 29 + 0.5)) / 1.035],
    ),
    "inverse_volatility_cap_v1": dict(
        cfg={"sizing": "inverse_volatility", "max_weight": 0.5},
        window_return=[0.065, 0.005, -1 / 45, 1.625 / 29],
        invested=[0.7, 0.7, 2 / 9, 9 / 29 + 0.5],
        # stakes stay 0.5: sleeve 0: 0.5 + 0.0325 = 0.5325; - 1/90 | sleeve 1: 0.5 + 0.0025 = 0.5025; + 0.8125/29
        sleeves=[[0.5325, 0.5], [0.5325, 0.5025], [0.5325 - 1 / 90, 0.5025], [0.5325 - 1 / 90, 0.5025 + 0.8125 / 29]],
        cash=[0.65, 0.3, 1 - (1 / 9 + 0.35), 1 - (1 / 9 + 0.5 * (9 / 29 + 0.5))],
    ),
    # 0.3 of the sleeve per position: k0 0.3*5% + 0.3*20%; k1 0.3*5% - 0.3*10%; k2 -0.3*10%; k3 0.3*10% + 0.3*5%
    "fixed_fraction_compounding": dict(
        cfg={"sizing": "fixed_fraction", "position_fraction": 0.3, "compounding": True},
        window_return=[0.075, -0.015, -0.03, 0.045],
        invested=[0.6, 0.6, 0.3, 0.6],
        sleeves=[[0.5375, 0.5], [0.5375, 0.4925], [0.521375, 0.4925], [0.521375, 0.5146625]],
        cash=[0.7, 0.4, 1 - (0.5375 * 0.3 + 0.5 * 0.6) / 1.0375, 1 - (0.5375 * 0.3 + 0.4925 * 0.6) / 1.03],
    ),
}


@pytest.fixture(scope="module")
def runs():
    data = candles()
    return {name: run_walk_forward(data, strategy(), config(**case["cfg"])) for name, case in CASES.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_end_to_end_portfolio_by_hand(runs, name):
    case, result = CASES[name], runs[name]
    capital = case["cfg"].get("initial_capital", 1.0)
    if "weights" in case:
        got = {(t.strftime("%H:%M"), s): w for t, s, w in result.trades[["decision_time", "symbol", "weight"]]
               .itertuples(index=False)}
        assert got.keys() == case["weights"].keys()
        for key, weight in case["weights"].items():
            assert got[key] == pytest.approx(weight, rel=1e-12), key
    w = result.windows
    assert list(w["decision_time"]) == T
    assert list(w["selected"]) == ["C,A", "C,A", "C,A", "A,B"]
    assert list(w["window_return"]) == pytest.approx(case["window_return"], rel=1e-12, abs=1e-15)
    assert list(w["invested_weight"]) == pytest.approx(case["invested"], rel=1e-12)

    eq = result.equity
    assert list(eq.index) == T and eq.index.name == "decision_time"
    assert list(eq.columns) == ["total_equity", "sleeve_0", "sleeve_1", "drawdown", "cash_share", "marked_at"]
    assert list(eq["marked_at"]) == [at("20:00"), at("22:00"), at("1d00:00"), at("1d02:00")]
    sleeves = np.array(case["sleeves"])
    np.testing.assert_allclose(eq[["sleeve_0", "sleeve_1"]].to_numpy(), sleeves, rtol=1e-12)
    total = sleeves.sum(axis=1)
    np.testing.assert_allclose(eq["total_equity"], total, rtol=1e-12)
    np.testing.assert_allclose(eq["cash_share"], case["cash"], rtol=1e-12, atol=1e-15)
    peak = np.maximum.accumulate(np.r_[capital, total])[1:]
    np.testing.assert_allclose(eq["drawdown"], total / peak - 1, rtol=1e-12, atol=1e-15)
    assert result.metrics["final_equity"] == pytest.approx(total[-1], rel=1e-12)
    if not case["cfg"].get("compounding", False):
        # v1: the capital curve is the non-compounded curve scaled by the initial capital
        np.testing.assert_allclose(eq["total_equity"], capital * (1 + w["equity"]), rtol=1e-12)


def test_equal_compounding_metrics_by_hand(runs):
    m = runs["equal_compounding"].metrics
    total = [1.0625, 1.05, 1.021875, 1.0584375]
    # span: first decision 16:00 to the close of the last window (22:00 + 4h) = 10 hours
    years = 10 / (365.25 * 24)
    returns = [1.0625 / 1.0 - 1, 1.05 / 1.0625 - 1, 1.021875 / 1.05 - 1, 1.0584375 / 1.021875 - 1]
    per_year = 4 / years
    cagr = 1.0584375 ** (1 / years) - 1
    mdd = 1.021875 / 1.0625 - 1  # the peak 1.0625 (k0) to the trough 1.021875 (k2)
    downside = math.sqrt((returns[1] ** 2 + returns[2] ** 2) / 4)
    assert m["final_equity"] == pytest.approx(total[-1], rel=1e-12)
    assert m["cagr"] == pytest.approx(cagr, rel=1e-9)
    assert m["max_drawdown_compounded"] == pytest.approx(mdd, rel=1e-12)
    assert m["calmar"] == pytest.approx(cagr / -mdd, rel=1e-9)
    assert m["volatility_annual"] == pytest.approx(statistics.stdev(returns) * math.sqrt(per_year), rel=1e-12)
    assert m["sharpe_compounded"] == pytest.approx(
        statistics.mean(returns) / statistics.stdev(returns) * math.sqrt(per_year), rel=1e-12)
    assert m["sortino"] == pytest.approx(statistics.mean(returns) / downside * math.sqrt(per_year), rel=1e-12)
    # invested share per row: 1/2, 1, 1 - 0.28125/1.0625, 1 - 0.28125/1.05
    assert m["avg_invested_share"] == pytest.approx(
        (0.5 + 1.0 + (1 - 0.28125 / 1.0625) + (1 - 0.28125 / 1.05)) / 4, rel=1e-12)


def test_v1_metrics_are_unchanged_by_the_capital(runs):
    """The v1 metrics of the 1000-capital run are those of a default run on the same scenario."""
    default = run_walk_forward(candles(), strategy(), config())
    scaled = runs["equal_v1_capital_1000"]
    for key, value in default.metrics.items():
        if key == "final_equity":
            assert scaled.metrics[key] == pytest.approx(1000 * value, rel=1e-12)
        elif key in EQUITY_METRICS:  # ratios of the curve: the same up to rounding
            assert scaled.metrics[key] == pytest.approx(value, rel=1e-9), key
        else:  # every v1 metric: exactly
            assert scaled.metrics[key] == value, key
    pd.testing.assert_frame_equal(default.windows, scaled.windows, check_exact=True)
    pd.testing.assert_frame_equal(default.trades, scaled.trades, check_exact=True)


def test_run_without_decisions_has_an_empty_curve():
    cfg = WalkForwardConfig(start=at("16:00"), end=at("19:00"), warmup_bars=40, compounding=True,
                            initial_capital=5.0)
    result = run_walk_forward(candles(), strategy(), cfg)
    assert len(result.windows) == 0 and len(result.equity) == 0
    assert list(result.equity.columns) == ["total_equity", "sleeve_0", "sleeve_1", "drawdown", "cash_share",
                                           "marked_at"]
    assert result.metrics["final_equity"] == 5.0 and result.metrics["cagr"] is None
