"""Walk-forward configuration: validated once, then read everywhere."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from engine.backtest import config_checks as checks
from engine.portfolio import check_capital
from engine.sizing import check_sizing
from engine.timeframes import hours_ms, timeframe_ms


@dataclass(frozen=True)
class WalkForwardConfig:
    """Parameters of a walk-forward run.

    Decision times are `t_k = t_0 + k * shift` on the UTC grid of `shift`, with `start <= t_k` and
    `t_k + window <= end`, so no trade reads data past `end`. `start=None` means the first time any
    symbol has finished its warm-up; `end=None` means the close of the last candle in the data. Naive
    times are read as UTC.
    """

    start: Any = None
    end: Any = None
    window_hours: float = 4
    shift_hours: float = 2
    fee_bps: float = 10
    slippage_bps: float = 0
    feature_timeframe: str = "1h"
    max_positions: int = 3
    warmup_bars: int | None = None
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    cost_levels_bps: tuple[float, ...] = field(default=(0.0, 10.0, 20.0, 30.0))
    # portfolio mode (docs/portfolio.md): sizing rule, per-position cap, compounding sleeves
    sizing: str = "equal"
    max_weight: float | None = None
    position_fraction: float | None = None
    compounding: bool = False
    initial_capital: float = 1.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "start", checks.time_or_none("start", self.start))
        set_(self, "end", checks.time_or_none("end", self.end))
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"WalkForwardConfig: end ({self.end}) must be after start ({self.start})")
        checks.window_and_shift(self.window_hours, self.shift_hours)
        set_(self, "feature_timeframe", checks.timeframe(self.feature_timeframe))
        for name in ("fee_bps", "slippage_bps"):
            set_(self, name, checks.number(name, getattr(self, name), high=10_000))
        if self.cost_per_side >= 1:
            raise ValueError("WalkForwardConfig: fee_bps + slippage_bps must be below 10,000 (100%)")
        set_(self, "max_positions", checks.integer("max_positions", self.max_positions, low=1))
        if self.warmup_bars is not None:
            set_(self, "warmup_bars", checks.integer("warmup_bars", self.warmup_bars, low=1))
        set_(self, "confidence", checks.number("confidence", self.confidence, high=1, low_open=True))
        if self.confidence >= 1:
            raise ValueError(f"WalkForwardConfig.confidence must be in (0, 1) (got {self.confidence!r})")
        set_(self, "bootstrap_samples", checks.integer("bootstrap_samples", self.bootstrap_samples, low=0,
                                                       high=checks.MAX_BOOTSTRAP_SAMPLES))
        set_(self, "seed", checks.integer("seed", self.seed, low=0, high=2**63 - 1))
        set_(self, "cost_levels_bps", checks.cost_levels(self.cost_levels_bps, self.slippage_bps))
        self._check_portfolio_fields()

    def _check_portfolio_fields(self) -> None:
        """Sizing and compounding settings (kept apart: portfolio mode is opt-in)."""
        try:
            sizing = check_sizing(self.sizing, self.max_weight, self.position_fraction, self.max_positions)
            capital = check_capital(self.compounding, self.initial_capital, self.window_ms, self.shift_ms)
        except ValueError as exc:
            raise ValueError(f"WalkForwardConfig: {exc}") from None
        for name, value in zip(("sizing", "max_weight", "position_fraction"), sizing, strict=True):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "initial_capital", capital)
        object.__setattr__(self, "compounding", bool(self.compounding))

    @property
    def window_ms(self) -> int:
        return hours_ms(self.window_hours, "WalkForwardConfig.window_hours")

    @property
    def shift_ms(self) -> int:
        return hours_ms(self.shift_hours, "WalkForwardConfig.shift_hours")

    @property
    def timeframe_ms(self) -> int:
        return timeframe_ms(self.feature_timeframe)

    @property
    def cost_per_side(self) -> float:
        return (self.fee_bps + self.slippage_bps) / 10_000

    @property
    def sleeve_factor(self) -> float:
        """Share of capital per window: capital is split into `window/shift` overlapping sleeves."""
        return min(1.0, self.shift_ms / self.window_ms)

    @property
    def time_in_market(self) -> float:
        """Share of time a sleeve's window is open: 1, since the window is a whole multiple of the shift."""
        return min(1.0, self.window_ms / self.shift_ms)

    def decision_times(self, data_start_ms: int, data_end_ms: int) -> np.ndarray:
        """Decision times (int64 epoch ms) for the given data bounds (used where start/end are None)."""
        start = int(self.start.value // 1_000_000) if self.start is not None else data_start_ms
        end = int(self.end.value // 1_000_000) if self.end is not None else data_end_ms
        first = -(-start // self.shift_ms) * self.shift_ms  # ceil to the shift grid
        last = end - self.window_ms
        if last < first:
            return np.array([], dtype=np.int64)
        return np.arange(first, last + 1, self.shift_ms, dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (ISO times) for stores and run metadata."""
        out = asdict(self)
        for key in ("start", "end"):
            out[key] = None if out[key] is None else out[key].isoformat()
        out["cost_levels_bps"] = list(out["cost_levels_bps"])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WalkForwardConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown WalkForwardConfig fields {unknown}; valid: {sorted(known)}")
        return cls(**data)

