"""Typed config of `parameter_sweep`: what a sweep request holds (Launchpad form or a YAML file with
`kind: sweep`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pipeline.defs.backtests.config import BacktestRequest


class SweepRequest(BacktestRequest):
    """A sweep: the walk-forward settings of `BacktestRequest` plus the grid. Fixed strategy parameters go in
    the grid as one-value lists (`params` must stay empty)."""

    grid: dict[str, Any] = Field(
        default={}, description="Parameter -> list of values, e.g. {rsi_low: [30, 35, 40], max_positions: [1, 2, 3]} "
        "(strategy parameters, max_positions, fee_bps, slippage_bps)."
    )
    sample: int = Field(default=0, description="Draw this many random configurations instead of the full grid; 0 = all.")
    seed: int = Field(default=0, description="Seed of the random sample.")
    objective: str = Field(default="mean_window_return", description="The metric that names the best configuration.")


def validate_request(config: SweepRequest, uni: Any) -> tuple[str, dict[str, list[Any]], Any, list[str]]:
    """(strategy, validated grid, WalkForwardConfig, symbols) or ValueError listing the valid choices."""
    from engine.sweep import validate_grid
    from pipeline.defs.backtests.config import strategy_name
    from pipeline.defs.backtests.requests import build_engine_objects

    if config.params:
        raise ValueError("a sweep takes no 'params': put fixed parameters in the grid as one-value lists")
    _, cfg, symbols = build_engine_objects(config, uni)
    name = strategy_name(config.strategy)
    grid = validate_grid(name, config.grid)
    if config.sample < 0:
        raise ValueError(f"sample must be >= 0 (0 = the whole grid), got {config.sample}")
    return name, grid, cfg, symbols
