"""The run statistics on the hand-checked four-symbol scenario: every number derived by hand.

Reuses the scenario of test_walk_forward_hand_checked (decision times 14:00 with nobody eligible, then
16:00, 18:00 and 20:00; fee 10 + slippage 5 bps; A > B > C > D preference; C void at 20:00).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from engine.stats.costs import COST_COLUMNS, cost_sensitivity
from engine.stats.summary import MONTHLY_COLUMNS, RANK_IC_COLUMNS
from tests import test_walk_forward_hand_checked as hand
from tests.test_walk_forward_hand_checked import C, at, net

scenario = hand.scenario  # the hand-checked run (a module-scoped fixture), reused here

# outcomes of every eligible symbol (void = 0), by decision time; D's zigzag closes are 100.1 at 19:55/23:55
OUTCOMES = {
    "16:00": {"A": net(100, 110), "B": net(100, 90), "C": net(100, 100), "D": net(100, 100.1)},
    "18:00": {"B": net(100, 105), "C": net(100, 100), "D": net(100, 100)},
    "20:00": {"A": net(110, 121), "B": net(90, 99), "D": net(100.1, 100.1)},  # C is void
}
PICKS = {"16:00": "ABC", "18:00": "BCD", "20:00": "ABC"}
# (entry, exit) of the completed trades, with their window
TRADES = [("16:00", 100, 110), ("16:00", 100, 90), ("16:00", 100, 100), ("18:00", 100, 105),
          ("18:00", 100, 100), ("18:00", 100, 100), ("20:00", 110, 121), ("20:00", 90, 99)]


def _window_returns() -> np.ndarray:
    w = [0.0]
    for t in ("16:00", "18:00", "20:00"):
        w.append(sum(OUTCOMES[t].get(s, 0.0) for s in PICKS[t]) / 3)
    return np.array(w)


def test_new_window_columns_are_the_random_pick_null(scenario):
    w = scenario.windows
    expected_mean, expected_std = [0.0], [0.0]  # 14:00: nobody eligible, no picks
    for t in ("16:00", "18:00", "20:00"):
        values = np.array(list(OUTCOMES[t].values()) + ([0.0] if t == "20:00" else []))  # C's void = 0
        n, k = len(values), 3
        expected_mean.append(values.mean())
        expected_std.append(math.sqrt(values.var() / k * (n - k) / (n - 1)))
    assert w["null_mean_return"].tolist() == pytest.approx(expected_mean, rel=1e-12)
    assert w["null_std_return"].tolist() == pytest.approx(expected_std, rel=1e-12, abs=1e-15)
    assert w.loc[2, "null_std_return"] == 0.0  # 3 picks of 3 eligible: no randomness
    assert scenario.metrics["null_mean_window_return"] == pytest.approx(np.mean(expected_mean), rel=1e-12)


def test_return_distribution_metrics_by_hand(scenario):
    m = scenario.metrics
    wr = _window_returns()
    assert scenario.windows["window_return"].tolist() == pytest.approx(wr.tolist(), rel=1e-12)
    s = np.sort(wr)
    assert m["median_window_return"] == pytest.approx((s[1] + s[2]) / 2, rel=1e-12)
    q05 = s[0] + 0.05 * 3 * (s[1] - s[0])  # linear interpolation at position 0.05 * (n - 1)
    assert m["return_q05"] == pytest.approx(q05, rel=1e-12)
    assert m["cvar_05"] == pytest.approx(s[0], rel=1e-12)  # only the worst window is at or below q05
    assert m["worst_trade"] == pytest.approx(net(100, 90), rel=1e-12)
    losing = [x < 0 for x in wr]
    longest, run = 0, 0
    for lose in losing:
        run = run + 1 if lose else 0
        longest = max(longest, run)
    assert m["longest_losing_streak"] == longest
    contribution = wr / 2
    sharpe = contribution.mean() / contribution.std(ddof=1) * math.sqrt(365 * 24 / 2)
    assert m["sharpe"] == pytest.approx(sharpe, rel=1e-12)
    assert 0 < m["probabilistic_sharpe"] < 1


def test_four_windows_are_too_few_for_a_block_bootstrap(scenario):
    m = scenario.metrics
    assert m["bootstrap_block"] == 4  # the floor of 12 is cut to the series length: one block
    for name in ("mean_window_return", "median_window_return", "win_rate", "profit_factor", "sharpe"):
        # every resample is a rotation of the one block, so there is no sampling variation to measure
        assert m[f"{name}_ci_low"] is None or m[f"{name}_ci_low"] == pytest.approx(m[f"{name}_ci_high"])
    assert m["mean_window_return_ci_low"] is None and m["null_p_value"] is None


def test_cost_table_is_fee_levels_plus_the_run_slippage(scenario):
    table = scenario.cost_sensitivity
    assert list(table.columns) == COST_COLUMNS
    assert table["fee_bps"].tolist() == [0.0, 10.0, 20.0, 30.0]
    assert table["slippage_bps"].tolist() == [5.0] * 4
    assert table["cost_bps_per_side"].tolist() == [5.0, 15.0, 25.0, 35.0]
    for row in table.itertuples(index=False):
        c = row.cost_bps_per_side / 10_000
        total = sum((x * (1 - c) / (e * (1 + c)) - 1) / 3 for _, e, x in TRADES)
        assert row.mean_window_return == pytest.approx(total / 4, rel=1e-12)
        assert row.total_return == pytest.approx(total / 2, rel=1e-12)
    m = scenario.metrics
    # the run's own fee (10 bps) reproduces the run's mean, whatever its slippage (5 bps)
    assert m["mean_window_return_at_10bps"] == pytest.approx(m["mean_window_return"], rel=1e-12)
    assert m["mean_window_return_at_0bps"] == pytest.approx(table["mean_window_return"].iloc[0])
    assert "mean_window_return_at_5bps" not in m and "mean_window_return_at_15bps" not in m


def test_break_even_fee_agrees_with_the_table(scenario):
    be = scenario.metrics["break_even_fee_bps"]
    table = scenario.cost_sensitivity
    # mean window return falls with the fee and crosses 0 at the break-even fee
    means = table["mean_window_return"].to_numpy()
    assert np.all(np.diff(means) < 0)
    lower = table.loc[table["fee_bps"] <= be, "mean_window_return"]
    upper = table.loc[table["fee_bps"] > be, "mean_window_return"]
    assert (lower >= 0).all() and (upper < 0).all()
    # the same trades charged the break-even fee (plus the run's slippage) earn exactly nothing
    at_break_even, _ = cost_sensitivity(scenario.trades, 4, (be,), scenario.config.slippage_bps, 0.5)
    assert at_break_even["mean_window_return"].iloc[0] == pytest.approx(0.0, abs=1e-15)


def test_monthly_table_by_hand(scenario):
    monthly = scenario.monthly
    assert list(monthly.columns) == MONTHLY_COLUMNS
    assert len(monthly) == 1
    row = monthly.iloc[0]
    wr = _window_returns()
    returns = [x * (1 - C) / (e * (1 + C)) - 1 for _, e, x in TRADES]
    assert row["month"] == "2024-01" and row["windows"] == 4
    assert row["trades"] == 8  # completed trades: C's void trade at 20:00 is not one of the 8 in TRADES
    assert row["win_rate"] == pytest.approx(sum(r > 0 for r in returns) / 8)
    assert row["mean_window_return"] == pytest.approx(wr.mean(), rel=1e-12)
    assert row["total_return"] == pytest.approx(wr.sum() / 2, rel=1e-12)
    bench = [0.0] + [np.mean(list(OUTCOMES[t].values()) + ([0.0] if t == "20:00" else []))
                     for t in ("16:00", "18:00", "20:00")]
    assert row["benchmark_total_return"] == pytest.approx(sum(bench) / 2, rel=1e-12)
    assert row["max_drawdown"] == pytest.approx(scenario.metrics["max_drawdown_aggregated"], abs=1e-15)


def test_rank_ic_frame_and_quantile_spread(scenario):
    ic = scenario.rank_ic
    assert list(ic.columns) == RANK_IC_COLUMNS
    assert ic["decision_time"].tolist() == [at("16:00"), at("18:00"), at("20:00")]
    assert ic["n_scored"].tolist() == [4, 3, 3]  # C's void outcome at 20:00 is not scored
    score = {"A": 4.0, "B": 3.0, "C": 2.0, "D": 1.0}
    for value, t in zip(ic["rank_ic"], ("16:00", "18:00", "20:00"), strict=True):
        symbols = list(OUTCOMES[t])
        expected = spearmanr([score[s] for s in symbols], [OUTCOMES[t][s] for s in symbols]).statistic
        assert value == pytest.approx(expected, rel=1e-12)
    assert scenario.metrics["rank_ic_mean"] == pytest.approx(ic["rank_ic"].mean())
    # quintiles of one symbol each (n < 10): best-scored minus worst-scored outcome, D is always last
    spreads = [OUTCOMES["16:00"]["A"] - OUTCOMES["16:00"]["D"], OUTCOMES["18:00"]["B"] - OUTCOMES["18:00"]["D"],
               OUTCOMES["20:00"]["A"] - OUTCOMES["20:00"]["D"]]
    assert scenario.metrics["quantile_spread_mean"] == pytest.approx(np.mean(spreads), rel=1e-12)


def test_every_new_metric_is_a_plain_number_or_none(scenario):
    keys = ["sharpe", "sharpe_ci_low", "sharpe_ci_high", "probabilistic_sharpe", "rank_ic_tstat",
            "quantile_spread_mean", "return_q05", "cvar_05", "worst_trade", "longest_losing_streak",
            "median_window_return", "median_window_return_ci_low", "median_window_return_ci_high",
            "win_rate_ci_low", "win_rate_ci_high", "profit_factor_ci_low", "profit_factor_ci_high",
            "null_mean_window_return", "null_std", "null_p_value", "bootstrap_block"]
    for key in keys:
        assert key in scenario.metrics
        value = scenario.metrics[key]
        assert value is None or (type(value) in (float, int) and math.isfinite(value)), (key, value)
    assert isinstance(scenario.monthly, pd.DataFrame)
