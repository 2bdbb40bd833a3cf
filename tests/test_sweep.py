"""Sweeps: every row equals `run_walk_forward` for that configuration alone (exactly, on the real sample),
chunked runs equal the one-shot run, and bad grids fail before any work with the valid choices listed."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import pickle
from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd
import pytest

from engine.backtest import WalkForwardConfig, prepare_histories, run_walk_forward
from engine.data.sample import load_sample_candles
from engine.strategies import get_strategy
from engine.sweep import merge_chunks, plan_sweep, run_sweep, run_sweep_chunk, validate_grid

CFG = WalkForwardConfig(start="2018-01-21", end="2018-01-30")
RUN_LEVEL = ("max_positions", "fee_bps", "slippage_bps")
GRIDS = {
    "macd_rsi_confluence": {"rsi_low": [30, 45], "rsi_high": [60, 75], "max_atr_pct": [0.01, 0.05],
                            "max_positions": [1, 3], "fee_bps": [0, 10], "slippage_bps": [0, 5]},
    "momentum_rank": {"require_positive_trend": [False, True], "max_positions": [1, 2, 4], "fee_bps": [5, 20]},
}


@pytest.fixture(scope="module")
def candles() -> dict[str, pd.DataFrame]:
    return load_sample_candles()


def single_run(candles, name: str, config: Mapping, cfg: WalkForwardConfig):
    """`run_walk_forward` on the raw candles for one planned configuration, built without sweep code."""
    params = {k: v for k, v in config.items() if k not in (*RUN_LEVEL, "config_id")}
    run = {k: v for k, v in config.items() if k in RUN_LEVEL}
    return run_walk_forward(candles, get_strategy(name, params), dataclasses.replace(cfg, **run))


def same_value(a, b) -> bool:
    """Exact equality; None and NaN both mean "undefined" (a DataFrame cell holds None as NaN)."""
    a_missing = a is None or (isinstance(a, float) and math.isnan(a))
    b_missing = b is None or (isinstance(b, float) and math.isnan(b))
    return a_missing and b_missing if (a_missing or b_missing) else a == b


def check_row_equals_single(sweep, config: Mapping, single) -> None:
    config_id = config["config_id"]
    kept = sweep.results[config_id]
    for name in ("trades", "windows", "symbol_metrics", "cost_sensitivity", "equity"):
        pd.testing.assert_frame_equal(getattr(kept, name), getattr(single, name), check_exact=True, obj=name)
    assert kept.metrics.keys() == single.metrics.keys()
    assert all(same_value(kept.metrics[k], v) for k, v in single.metrics.items()), config_id
    row = sweep.table.loc[sweep.table["config_id"] == config_id].iloc[0]
    differing = [k for k, v in single.metrics.items() if not same_value(row[k], v)]
    assert not differing, f"config {config_id}: table differs from the single run in {differing}"
    for key, value in {**single.params, **{k: getattr(single.config, k) for k in RUN_LEVEL}}.items():
        assert row[key] == value, (config_id, key)
    returns = sweep.returns[config_id].to_numpy()
    assert np.array_equal(returns, single.windows["window_return"].to_numpy())
    bench = sweep.benchmarks[single.config.cost_per_side].to_numpy()
    assert np.array_equal(bench, single.windows["benchmark_return"].fillna(0.0).to_numpy())


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_every_row_equals_run_walk_forward(candles, name) -> None:
    sweep = run_sweep(candles, name, GRIDS[name], CFG, sample=6, seed=3, keep_results=True)
    assert len(sweep.table) == 6 and list(sweep.table["config_id"]) == sorted(sweep.table["config_id"])
    traded = 0
    for config in sweep.configs:
        single = single_run(candles, name, config, CFG)
        check_row_equals_single(sweep, config, single)
        traded += single.metrics["trade_count"] > 0
    assert traded >= 4  # the comparison covers real trades, not empty runs
    assert sweep.table["mean_window_return"].nunique() > 1  # and configurations that differ


def test_rows_equal_single_runs_in_portfolio_mode(candles) -> None:
    cfg = dataclasses.replace(CFG, sizing="inverse_volatility", max_weight=0.6, compounding=True,
                              bootstrap_samples=200, seed=7)
    grid = {"rsi_low": [35, 45], "max_positions": [2, 3]}
    sweep = run_sweep(prepare_histories(candles, "1h"), "macd_rsi_confluence", grid, cfg, keep_results=True)
    assert len(sweep.configs) == 4
    for config in sweep.configs:
        check_row_equals_single(sweep, config, single_run(candles, "macd_rsi_confluence", config, cfg))
    assert sweep.table["mean_window_return_ci_low"].notna().all()  # the rows carry their intervals


def test_chunked_sweep_equals_one_shot(candles) -> None:
    name, grid = "macd_rsi_confluence", GRIDS["macd_rsi_confluence"]
    one = run_sweep(candles, name, grid, CFG, sample=10, seed=1)
    plan = plan_sweep(name, grid, sample=10, seed=1)
    assert [c["config_id"] for c in plan] == list(one.table["config_id"])
    parts = [plan[:3], plan[3:4], plan[4:]]
    # each chunk on its own "worker": fresh features, then pickled as a step output would be
    chunks = [pickle.loads(pickle.dumps(run_sweep_chunk(prepare_histories(candles, "1h"), name, p, CFG)))
              for p in parts]
    merged = merge_chunks([chunks[2], chunks[0], chunks[1]])
    pd.testing.assert_frame_equal(merged.table, one.table, check_exact=True)
    pd.testing.assert_frame_equal(merged.returns, one.returns, check_exact=True)
    assert merged.benchmarks.keys() == one.benchmarks.keys()
    for cost in one.benchmarks:
        pd.testing.assert_series_equal(merged.benchmarks[cost], one.benchmarks[cost], check_exact=True)
    assert merged.configs == one.configs and merged.n_trials == one.n_trials == 10
    assert merged.pbo == one.pbo and np.array_equal(merged.pbo_logits, one.pbo_logits)
    assert merged.spa == one.spa
    assert merged.deflated_sharpe == one.deflated_sharpe
    assert merged.best()["config_id"] == one.best()["config_id"]
    summary = merged.summary()
    assert summary == one.summary() and json.loads(json.dumps(summary)) == summary  # plain values only
    assert summary["best_config_id"] == int(one.best()["config_id"]) and summary["configurations"] == 10
    assert summary["pbo"] == one.pbo and summary["spa_p_value"] == one.spa_p_value


def test_merge_refuses_mixed_chunks(candles) -> None:
    name = "momentum_rank"
    plan = plan_sweep(name, GRIDS[name])
    histories = prepare_histories(candles, "1h")
    a = run_sweep_chunk(histories, name, plan[:2], CFG)
    with pytest.raises(ValueError, match="several chunks"):
        merge_chunks([a, a])
    other = run_sweep_chunk(histories, name, plan[2:3], dataclasses.replace(CFG, seed=1))
    with pytest.raises(ValueError, match="different configs"):
        merge_chunks([a, other])
    with pytest.raises(ValueError, match="below the 2 configurations"):
        merge_chunks([a], n_trials=1)
    assert merge_chunks([a], n_trials=40).n_trials == 40


class Untouchable(Mapping):
    """Candles that fail the test if anything reads them: validation must come before any work."""

    def __getitem__(self, key):
        raise AssertionError("the data was read before the grid was validated")

    def __iter__(self) -> Iterator:
        raise AssertionError("the data was read before the grid was validated")

    def __len__(self) -> int:
        raise AssertionError("the data was read before the grid was validated")


@pytest.mark.parametrize(
    "grid, message",
    [
        ({"rsi_lo": [30]}, r"unknown sweep parameters \['rsi_lo'\].*rsi_low: float in \[0, 100\], default 40.0"
                           r".*max_positions: int >= 1, default 3"),
        ({"rsi_low": [30, 150]}, r"rsi_low.*must be <= 100.*valid: rsi_low: float in \[0, 100\]"),
        ({"max_positions": [1.5]}, r"max_positions.*must be an integer.*valid: max_positions: int >= 1"),
        ({"fee_bps": [-1]}, r"fee_bps.*must be >= 0"),
        ({"max_atr_pct": 0.05}, r"grid\['max_atr_pct'\] must be a list of values"),
        ({"rsi_high": []}, r"grid\['rsi_high'\] is empty"),
        ({"rsi_high": [60, 60.0]}, r"repeats a value"),
        ({}, r"valid names for 'macd_rsi_confluence'.*rsi_high: float in \[0, 100\]"),
    ],
)
def test_bad_grids_fail_before_any_work(grid, message) -> None:
    with pytest.raises(ValueError, match=message):
        run_sweep(Untouchable(), "macd_rsi_confluence", grid, CFG)


def test_unknown_strategy_lists_the_registered_ones() -> None:
    with pytest.raises(ValueError, match=r"valid strategies: \['macd_rsi_confluence', 'momentum_rank'\]"):
        plan_sweep("macd", {"max_positions": [1]})


def test_bad_chunk_configurations_fail_before_any_work() -> None:
    with pytest.raises(ValueError, match=r"configuration 4: .*max_positions.*must be >= 1"):
        run_sweep_chunk(Untouchable(), "momentum_rank", [{"config_id": 4, "max_positions": 0}], CFG)
    with pytest.raises(ValueError, match=r"configuration 2: unknown parameters \['rsi_low'\]"):
        run_sweep_chunk(Untouchable(), "momentum_rank", [{"config_id": 2, "rsi_low": 30}], CFG)
    with pytest.raises(ValueError, match="appears twice"):
        run_sweep_chunk(Untouchable(), "momentum_rank", [{"config_id": 1}, {"config_id": 1}], CFG)
    fixed = dataclasses.replace(CFG, sizing="fixed_fraction", position_fraction=0.4, max_positions=2)
    with pytest.raises(ValueError, match=r"configuration 1: .*position_fraction \* max_positions"):
        run_sweep_chunk(Untouchable(), "momentum_rank", [{"config_id": 0, "max_positions": 2},
                                                          {"config_id": 1, "max_positions": 3}], fixed)


def test_plan_ids_are_grid_positions() -> None:
    grid = {"rsi_low": [30, 40], "max_positions": [1, 2, 3]}
    plan = plan_sweep("macd_rsi_confluence", grid)
    # names sorted (max_positions, rsi_low), the last fastest: id = position of max_positions * 2 + of rsi_low
    assert plan[3] == {"config_id": 3, "max_positions": 2, "rsi_low": 40.0}
    assert [c["config_id"] for c in plan] == list(range(6))
    assert plan_sweep("macd_rsi_confluence", dict(reversed(list(grid.items())))) == plan
    assert validate_grid("macd_rsi_confluence", {"max_positions": np.array([2, 3])}) == {"max_positions": [2, 3]}


def test_samples_keep_grid_ids_and_are_reproducible() -> None:
    grid = {"rsi_low": [20, 30, 40, 50], "rsi_high": [60, 70, 80], "max_positions": [1, 2, 3, 4, 5]}
    full = {c["config_id"]: c for c in plan_sweep("macd_rsi_confluence", grid)}
    a = plan_sweep("macd_rsi_confluence", grid, sample=7, seed=11)
    assert len(a) == 7 and all(full[c["config_id"]] == c for c in a)
    assert plan_sweep("macd_rsi_confluence", grid, sample=7, seed=11) == a
    assert plan_sweep("macd_rsi_confluence", grid, sample=7, seed=12) != a
    assert plan_sweep("macd_rsi_confluence", grid, sample=500, seed=1) == list(full.values())
    with pytest.raises(ValueError, match="sample must be a positive integer"):
        plan_sweep("macd_rsi_confluence", grid, sample=0)


def test_combinations_that_cannot_run_are_left_out_and_logged(caplog) -> None:
    grid = {"rsi_low": [40, 70], "rsi_high": [50, 80]}
    with caplog.at_level(logging.WARNING, logger="engine.sweep.grid"):
        plan = plan_sweep("macd_rsi_confluence", grid)
    assert [(c["rsi_low"], c["rsi_high"]) for c in plan] == [(40.0, 50.0), (40.0, 80.0), (70.0, 80.0)]
    # names sorted (rsi_high, rsi_low): id 1 is (rsi_high 50, rsi_low 70); the gap keeps the other ids stable
    assert [c["config_id"] for c in plan] == [0, 2, 3]
    assert "1 grid combinations cannot run" in caplog.text and "rsi_low (70.0) must be <= rsi_high" in caplog.text
    with pytest.raises(ValueError, match="no combination of this grid can run"):
        plan_sweep("macd_rsi_confluence", {"rsi_low": [70], "rsi_high": [50]})


def test_best_and_reproducing_a_row(candles) -> None:
    sweep = run_sweep(candles, "momentum_rank", GRIDS["momentum_rank"], CFG)
    best = sweep.best()
    assert best["mean_window_return"] == sweep.table["mean_window_return"].max()
    assert sweep.best("max_drawdown_aggregated", minimize=True)["max_drawdown_aggregated"] == \
        sweep.table["max_drawdown_aggregated"].min()
    with pytest.raises(ValueError, match="unknown objective 'nope'; valid: config_id"):
        sweep.best("nope")
    strategy, cfg = sweep.walk_forward_config(int(best["config_id"]))
    again = run_walk_forward(candles, strategy, cfg)
    assert again.metrics["mean_window_return"] == best["mean_window_return"]
    assert sweep.varied == ["fee_bps", "max_positions", "require_positive_trend"]
