"""Typed run config of `adhoc_backtest`: the Launchpad form, also what a request file holds."""

from __future__ import annotations

import enum
import math
from typing import Any

import dagster as dg
from pydantic import Field


def _strategy_enum() -> type[enum.Enum]:
    """The engine's registered strategies as a config enum: the Launchpad offers them as a list and
    `validate_run_config` (the daemon) rejects any other name before a run starts."""
    from engine.strategies import list_strategies

    names = [info.name for info in list_strategies()]
    return enum.Enum("StrategyName", {n: n for n in names}, type=str)


StrategyName = _strategy_enum()
DEFAULT_STRATEGY = "macd_rsi_confluence" if "macd_rsi_confluence" in StrategyName.__members__ else next(
    iter(StrategyName.__members__)
)


def strategy_name(value: Any) -> str:
    """The plain strategy name of a config value (an enum member, or a string)."""
    return str(value.value if isinstance(value, enum.Enum) else value)


class BacktestRequest(dg.Config):
    """A walk-forward backtest request (Launchpad form, or a YAML file in the requests folder)."""

    strategy: StrategyName = Field(  # type: ignore[valid-type]
        default=StrategyName[DEFAULT_STRATEGY], description="Strategy (the engine's registry)."
    )
    params: dict[str, Any] = Field(default={}, description="Strategy parameters; omitted ones keep defaults.")
    universe: list[str] = Field(default=[], description="Symbols like ETH/BTC; empty = the configured universe.")
    start: str = Field(default="", description="First decision time (ISO date/time, UTC); empty = after warm-up.")
    end: str = Field(default="", description="No trade reads data past this time (ISO, UTC); empty = data end.")
    window_hours: float = Field(default=4, description="Holding window per decision, hours.")
    shift_hours: float = Field(default=2, description="Hours between decision times.")
    fee_bps: float = Field(default=10, description="Fee per side, basis points.")
    slippage_bps: float = Field(default=0, description="Slippage per side, basis points.")
    max_positions: int = Field(default=3, description="Symbols held per window (equal weights).")
    feature_timeframe: str = Field(default="1h", description="Bar size of the features.")
    warmup_bars: int = Field(default=0, description="Closed feature bars needed; 0 = engine default.")
    sizing: str = Field(default="equal", description="Position sizing: equal | inverse_volatility | fixed_fraction.")
    max_weight: float | None = Field(default=None, description="Cap per position, share of a sleeve in (0, 1]; "
                                     "the excess stays in cash. Empty = no cap.")
    position_fraction: float | None = Field(default=None, description="fixed_fraction: share of a sleeve per "
                                            "position (times max_positions at most 1).")
    compounding: bool = Field(default=False, description="Portfolio mode: each sleeve reinvests its equity.")
    initial_capital: float = Field(default=1.0, description="Starting capital (portfolio mode curve).")
    request_key: str = Field(default="", description="Set by the requests sensor: recorded once per key.")


FLOAT_FIELDS = ("window_hours", "shift_hours", "fee_bps", "slippage_bps")


def engine_config(req: BacktestRequest) -> Any:
    """The engine's `WalkForwardConfig` of a request (raises ValueError with the engine's message)."""
    from engine.backtest import WalkForwardConfig

    for name in FLOAT_FIELDS:  # YAML's .inf/.nan pass the float type; the engine's messages would not say so
        value = getattr(req, name)
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number (got {value})")
    return WalkForwardConfig(
        start=req.start or None,
        end=req.end or None,
        window_hours=req.window_hours,
        shift_hours=req.shift_hours,
        fee_bps=req.fee_bps,
        slippage_bps=req.slippage_bps,
        feature_timeframe=req.feature_timeframe,
        max_positions=req.max_positions,
        warmup_bars=req.warmup_bars or None,
        sizing=req.sizing,
        max_weight=req.max_weight,
        position_fraction=req.position_fraction,
        compounding=req.compounding,
        initial_capital=req.initial_capital,
    )
