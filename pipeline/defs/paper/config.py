"""Typed config of a paper tick: the clock, the walk-forward settings (the scheduled backtests' defaults),
and how long a tick waits for late candles.

The strategy parameters are not here: they come from the store's strategy registry
(`pipeline.results.active_strategies`), exactly as for the scheduled backtests. Every decision records
the settings it used, so settlement and the parity replay read them from the decision, not from here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from engine.timeframes import to_utc


class PaperConfig(dg.Config):
    """Settings of one paper tick (record the due decisions, settle the closed windows)."""

    as_of: str = Field(
        default="",
        description="The tick's clock, ISO UTC (e.g. 2026-10-02T10:15:00Z); empty = the wall clock when the run "
        "executes. Set it to replay or simulate ticks: nothing after it is treated as known.",
    )
    start: str = Field(
        default="",
        description="First decision time of a strategy's paper book when it has none yet; empty = the decision "
        "time of the tick itself. Earlier missed times are never invented.",
    )
    history_days: int = Field(default=30, ge=1, description="Feature history of a decision: it starts on a fixed "
                              "UTC grid of this many days, at least this long before t (docs/paper.md).")
    feature_timeframe: str = Field(default="1h", description="Bar size the features are computed on.")
    window_hours: float = Field(default=4, gt=0, description="Holding window per decision, hours.")
    shift_hours: float = Field(default=2, gt=0, description="Hours between decision times (the UTC grid).")
    fee_bps: float = Field(default=10, ge=0, description="Fee per side, basis points.")
    slippage_bps: float = Field(default=0, ge=0, description="Slippage per side, basis points.")
    max_positions: int = Field(default=3, ge=1, description="Symbols held per window.")
    warmup_bars: int = Field(default=0, ge=0, description="Closed feature bars needed; 0 = engine default.")
    late_after_minutes: int = Field(default=30, ge=0, description="A decision recorded by its own tick more than "
                                    "this long after t is marked late.")
    max_wait_minutes: int = Field(default=60, ge=0, description="How long after t (or t + window) a tick waits "
                                  "for a lagging symbol's candles before deciding (settling) without them.")
    max_decisions_per_run: int = Field(default=48, ge=1, description="Decision times one run records at most "
                                       "(catching up a long outage continues on the next ticks).")
    resettle: bool = Field(default=False, description="Re-settle trades whose window candles were revised since "
                           "they were settled (the earlier settlement is kept in `previous`).")


def engine_config(config: PaperConfig) -> Any:
    """The `WalkForwardConfig` the decisions of this tick use (the scheduled backtests' builder, same fields)."""
    from pipeline.defs.research.config import refresh_engine_config

    # a decision has no metrics; the replay computes none either
    return dataclasses.replace(refresh_engine_config(config), bootstrap_samples=0)


def clock(config: PaperConfig) -> tuple[pd.Timestamp, bool]:
    """(the tick's clock as a UTC timestamp, whether it was simulated through `as_of`)."""
    if config.as_of:
        return to_utc(config.as_of, "PaperConfig.as_of"), True
    return pd.Timestamp.now(tz="UTC"), False


def run_config(**fields: Any) -> dict[str, Any]:
    """The run config of the `paper_trading` job with these `PaperConfig` fields (tests, live launches)."""
    return {"ops": {"paper_trades": {"config": dict(fields)}}}
