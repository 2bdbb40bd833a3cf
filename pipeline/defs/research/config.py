"""Typed config of the research refresh (features, rankings and the scheduled per-strategy backtests)."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field


class RefreshConfig(dg.Config):
    """Settings of the research refresh: the history it reads and the walk-forward of the scheduled
    per-strategy backtests (strategy parameters come from the strategy registry in the store)."""

    lookback_days: int = Field(default=0, ge=0, description="Days of stored history to read; 0 = all of it.")
    feature_timeframe: str = Field(default="1h", description="Bar size the features are computed on.")
    window_hours: float = Field(default=4, gt=0, description="Holding window per decision, hours.")
    shift_hours: float = Field(default=2, gt=0, description="Hours between decision times.")
    fee_bps: float = Field(default=10, ge=0, description="Fee per side, basis points.")
    slippage_bps: float = Field(default=0, ge=0, description="Slippage per side, basis points.")
    max_positions: int = Field(default=3, ge=1, description="Symbols held per window.")
    warmup_bars: int = Field(default=0, ge=0, description="Closed feature bars needed; 0 = engine default.")
    compare_run_ids: list[int] = Field(
        default=[], description="strategy_comparison: store run ids to compare (see backtest_runs); "
        "empty = the latest scheduled run of each active strategy."
    )


def refresh_engine_config(config: Any) -> Any:
    """The `WalkForwardConfig` of the scheduled backtests and rankings, from any config with their window,
    cost, timeframe, positions and warm-up fields (`RefreshConfig`, the paper tick's `PaperConfig`)."""
    from engine.backtest import WalkForwardConfig

    return WalkForwardConfig(
        window_hours=config.window_hours,
        shift_hours=config.shift_hours,
        fee_bps=config.fee_bps,
        slippage_bps=config.slippage_bps,
        feature_timeframe=config.feature_timeframe,
        max_positions=config.max_positions,
        warmup_bars=config.warmup_bars or None,
    )
