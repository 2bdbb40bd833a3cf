"""`run_sweep`: plan, one chunk, merge (the pipeline runs the same three steps across workers)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from engine.backtest.config import WalkForwardConfig
from engine.backtest.panel import PreparedHistories
from engine.sweep.grid import plan_sweep
from engine.sweep.result import SweepResult, merge_chunks
from engine.sweep.run import run_sweep_chunk


def run_sweep(
    candles_by_symbol: Mapping[str, pd.DataFrame] | PreparedHistories,
    strategy_name: str,
    grid: Mapping[str, Any],
    cfg: WalkForwardConfig | None = None,
    *,
    sample: int | None = None,
    seed: int = 0,
    n_trials: int | None = None,
    objective: str = "mean_window_return",
    keep_results: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SweepResult:
    """Run every configuration of `grid` (or `sample` of them, drawn with `seed`) on one universe.

    `grid` maps strategy parameters and `max_positions`, `fee_bps`, `slippage_bps` to lists of values; bad
    names or values raise before any work, listing the valid ones. Features are computed once and the
    decision panel built once; each row of the result equals `run_walk_forward` for that configuration.
    `n_trials`, `objective`, `keep_results` and `progress` are as in `merge_chunks` / `run_sweep_chunk`.
    """
    plan = plan_sweep(strategy_name, grid, sample=sample, seed=seed)
    chunk = run_sweep_chunk(candles_by_symbol, strategy_name, plan, cfg, keep_results=keep_results,
                            progress=progress)
    return merge_chunks([chunk], n_trials=n_trials, objective=objective)
