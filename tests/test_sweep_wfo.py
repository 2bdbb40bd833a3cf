"""Walk-forward optimisation: fold layout, purged choices that data after a fold's test start cannot
change (truncation), and an out-of-sample run stitched from the chosen configurations' test periods."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from engine_helpers import truncate_at

from engine.backtest import WalkForwardConfig, run_walk_forward
from engine.data.sample import load_sample_candles
from engine.strategies import get_strategy
from engine.sweep import run_walk_forward_optimization
from engine.sweep.wfo import fold_ranges

CFG = WalkForwardConfig(start="2018-01-21", end="2018-01-30")
GRID = {"rsi_low": [30, 40, 50], "rsi_high": [60, 70], "max_positions": [1, 3]}
DAY = pd.Timedelta(days=1)
T = pd.Timestamp


@pytest.fixture(scope="module")
def candles() -> dict[str, pd.DataFrame]:
    return load_sample_candles()


@pytest.fixture(scope="module")
def wfo(candles):
    return run_walk_forward_optimization(candles, "macd_rsi_confluence", GRID, CFG, train_days=3, test_days=2)


def test_fold_layout_rolling_and_anchored() -> None:
    hour = 3_600_000
    ms = np.arange(0, 9 * 24 * hour, 2 * hour)  # 9 days of 2h decisions: last at day 9 - 2h
    rolling = fold_ranges(ms, 2 * hour, 3 * 24 * hour, 2 * 24 * hour, anchored=False)
    days = [(a / 24 / hour, b / 24 / hour, c / 24 / hour) for a, b, c in rolling]
    assert days == [(0, 3, 5), (2, 5, 7), (4, 7, 9)]
    anchored = fold_ranges(ms, 2 * hour, 3 * 24 * hour, 2 * 24 * hour, anchored=True)
    assert [a for a, _, _ in anchored] == [0, 0, 0] and [b for _, b, _ in anchored] == [b for _, b, _ in rolling]
    assert fold_ranges(ms, 2 * hour, 9 * 24 * hour, DAY.value // 1_000_000, anchored=False) == []


def test_folds_of_the_sample(wfo) -> None:
    starts = [f.test_start for f in wfo.folds]
    assert starts == [T("2018-01-24", tz="UTC"), T("2018-01-26", tz="UTC"), T("2018-01-28", tz="UTC")]
    assert [f.train_start for f in wfo.folds] == [s - 3 * DAY for s in starts]
    assert all(f.train_end == f.test_start and f.test_end == f.test_start + 2 * DAY for f in wfo.folds)
    # 3 days of 2h decisions minus the window that straddles the test start: 36 - 1 = 35 purged windows
    assert [f.train_windows for f in wfo.folds] == [35, 35, 35]
    assert [f.test_windows for f in wfo.folds] == [24, 24, 23]  # the last ends with the data (t + 4h <= end)
    assert set(wfo.scores.columns) == set(wfo.sweep.table["config_id"]) and wfo.scores.shape == (3, 12)


def test_choices_are_the_best_purged_training_score(candles, wfo) -> None:
    """Recompute each fold's objective from independent single runs and compare the choice."""
    for fold in wfo.folds:
        best_id, best = None, -np.inf
        for config in wfo.sweep.configs:
            params = {k: v for k, v in config.items() if k in ("rsi_low", "rsi_high")}
            single = run_walk_forward(candles, get_strategy("macd_rsi_confluence", params),
                                      dataclasses.replace(CFG, max_positions=config["max_positions"]))
            w = single.windows
            closed = (w["decision_time"] >= fold.train_start) & (w["decision_time"] + 4 * pd.Timedelta(hours=1)
                                                                 <= fold.test_start)
            score = w.loc[closed, "window_return"].mean()
            assert score == wfo.scores.loc[fold.index, config["config_id"]]
            if score > best:
                best_id, best = config["config_id"], score
        assert fold.config_id == best_id and fold.train_score == best
    assert len({f.config_id for f in wfo.folds}) > 1  # the choice moves: the stitching is exercised


@pytest.mark.parametrize("anchored", [False, True])
def test_data_after_a_test_start_never_changes_that_folds_choice(candles, anchored) -> None:
    full = run_walk_forward_optimization(candles, "macd_rsi_confluence", GRID, CFG, train_days=3, test_days=2,
                                         anchored=anchored)
    for k in (1, 2):
        cut = full.folds[k].test_start
        truncated = run_walk_forward_optimization(truncate_at(candles, cut), "macd_rsi_confluence", GRID, CFG,
                                                  train_days=3, test_days=2, anchored=anchored)
        for j in range(k + 1):  # this fold and every earlier one
            assert truncated.folds[j] == full.folds[j]
            pd.testing.assert_series_equal(truncated.scores.loc[j], full.scores.loc[j], check_exact=True)
        # the truncation does bite: the window straddling the cut (opened 2h before it) changes, which is
        # exactly the one the purge leaves out
        straddling = cut - pd.Timedelta(hours=2)
        a = full.sweep.returns.loc[straddling]
        b = truncated.sweep.returns.loc[straddling]
        assert not np.array_equal(a.to_numpy(), b.to_numpy())


def test_out_of_sample_is_the_chosen_runs_in_their_test_periods(candles, wfo) -> None:
    oos = wfo.out_of_sample
    first, last = wfo.folds[0].test_start, wfo.folds[-1].test_end
    assert oos.windows["decision_time"].iloc[0] == first and oos.windows["decision_time"].iloc[-1] < last
    assert len(oos.windows) == sum(f.test_windows for f in wfo.folds) == oos.metrics["decision_times"]
    per_window = ["decision_time", "n_eligible", "n_candidates", "n_selected", "n_trades", "n_void", "selected",
                  "invested_weight", "window_return", "benchmark_return"]
    trades = []
    for fold in wfo.folds:
        params = {k: v for k, v in fold.params.items() if k in ("rsi_low", "rsi_high")}
        single = run_walk_forward(candles, get_strategy("macd_rsi_confluence", params),
                                  dataclasses.replace(CFG, max_positions=fold.params["max_positions"]))
        in_test = (single.windows["decision_time"] >= fold.test_start) & (single.windows["decision_time"] < fold.test_end)
        got = oos.windows.loc[(oos.windows["decision_time"] >= fold.test_start)
                              & (oos.windows["decision_time"] < fold.test_end), per_window]
        pd.testing.assert_frame_equal(got.reset_index(drop=True),
                                      single.windows.loc[in_test, per_window].reset_index(drop=True), check_exact=True)
        t = single.trades["decision_time"]
        trades.append(single.trades.loc[(t >= fold.test_start) & (t < fold.test_end)])
    pd.testing.assert_frame_equal(oos.trades, pd.concat(trades, ignore_index=True), check_exact=True)
    assert oos.metrics["mean_window_return"] == pytest.approx(oos.windows["window_return"].mean(), abs=0)
    assert oos.metrics["trade_count"] == int((~oos.trades["void"]).sum()) > 0
    assert oos.config.start == first and oos.params["max_positions"] in (1, 3, [f.params["max_positions"]
                                                                                for f in wfo.folds])


def test_objectives_and_refusals(candles) -> None:
    def worst(windows: pd.DataFrame) -> float:  # a custom objective: the smallest mean wins
        return -float(windows["window_return"].mean())

    low = run_walk_forward_optimization(candles, "momentum_rank", {"max_positions": [1, 2, 3]}, CFG,
                                        train_days=4, test_days=2, objective=worst)
    high = run_walk_forward_optimization(candles, "momentum_rank", {"max_positions": [1, 2, 3]}, CFG,
                                         train_days=4, test_days=2)
    assert low.objective == "worst"
    for a, b in zip(low.folds, high.folds, strict=True):
        assert low.scores.loc[a.index].idxmax() == a.config_id
        assert high.scores.loc[b.index].idxmax() == b.config_id
        assert low.scores.loc[a.index].equals(-high.scores.loc[b.index])
    sharpe = run_walk_forward_optimization(candles, "momentum_rank", {"max_positions": [1, 2]}, CFG, train_days=4,
                                           test_days=3, objective="sharpe", anchored=True)
    assert len(sharpe.folds) == 2 and sharpe.folds[1].train_start == sharpe.folds[0].train_start
    with pytest.raises(ValueError, match="unknown objective 'profit'; valid: mean_window_return, total_return"):
        run_walk_forward_optimization(candles, "momentum_rank", {"max_positions": [1]}, CFG, train_days=3,
                                      test_days=2, objective="profit")
    with pytest.raises(ValueError, match=r"\['fee_bps'\] cannot be optimised"):
        run_walk_forward_optimization(candles, "momentum_rank", {"fee_bps": [0, 10]}, CFG, train_days=3, test_days=2)
    with pytest.raises(ValueError, match="too short for train_days=20"):
        run_walk_forward_optimization(candles, "momentum_rank", {"max_positions": [1]}, CFG, train_days=20,
                                      test_days=2)
    with pytest.raises(ValueError, match="test_days must be a positive number"):
        run_walk_forward_optimization(candles, "momentum_rank", {"max_positions": [1]}, CFG, train_days=3,
                                      test_days=0)
