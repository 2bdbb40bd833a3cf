"""The `TradingStrategy` interface: typed parameters, signal gates, a score, and mandatory risk gates."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd

from engine.risk import Allocator, RiskManager


@dataclass(frozen=True)
class Param:
    """A typed, bounded strategy parameter."""

    name: str
    type: type
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None

    def describe(self) -> str:
        """`rsi_low: float in [0, 100], default 40.0` - what a user may set, for error messages and the UI."""
        if self.minimum is not None and self.maximum is not None:
            bounds = f" in [{self.minimum:g}, {self.maximum:g}]"
        elif self.minimum is not None:
            bounds = f" >= {self.minimum:g}"
        elif self.maximum is not None:
            bounds = f" <= {self.maximum:g}"
        else:
            bounds = ""
        return f"{self.name}: {self.type.__name__}{bounds}, default {self.default!r}"

    def coerce(self, value: Any, strategy: str) -> Any:
        where = f"strategy {strategy!r} parameter {self.name!r}"
        if self.type is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            raise ValueError(f"{where} must be a bool (got {value!r})")
        if isinstance(value, bool):
            raise ValueError(f"{where} must be {self.type.__name__} (got bool {value!r})")
        try:
            converted = self.type(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where} must be {self.type.__name__} (got {value!r})") from exc
        if self.type is int and float(value) != converted:
            raise ValueError(f"{where} must be an integer (got {value!r})")
        if isinstance(converted, float) and not math.isfinite(converted):
            raise ValueError(f"{where} must be finite (got {value!r})")
        if self.minimum is not None and converted < self.minimum:
            raise ValueError(f"{where} must be >= {self.minimum} (got {value!r})")
        if self.maximum is not None and converted > self.maximum:
            raise ValueError(f"{where} must be <= {self.maximum} (got {value!r})")
        return converted


RISK_PARAMS = (
    Param("max_atr_pct", float, 0.05, "risk gate: maximum ATR(14)/close on feature bars, a fraction (0.05 = 5%)",
          0.0),
    Param("min_quote_volume_24h", float, 0.0,
          "risk gate: minimum 24h volume in the quote currency (set it per quote asset: BTC vs USDT)", 0.0),
)


@dataclass(frozen=True)
class StrategyInfo:
    name: str
    description: str
    parameters: dict[str, Any]
    param_types: dict[str, str]
    param_descriptions: dict[str, str]
    #: parameter -> "name: type in [min, max], default x" (what a user may set)
    param_specs: dict[str, str] = field(default_factory=dict)


class TradingStrategy(ABC):
    """A rule-based ranking strategy over the panel of (decision_time, symbol) feature snapshots.

    Subclasses declare `name`, `description`, `params` specs, `gate_labels`, and implement
    `signal_gates` and `score`. Risk gates come from `risk_manager` and are applied by the engine for
    every evaluation; allocation comes from `allocator`.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    param_specs: ClassVar[tuple[Param, ...]]
    #: signal gate column -> human explanation (for ranking reasons)
    gate_labels: ClassVar[dict[str, str]] = {}
    #: the feature columns the signal gates read (shown next to the reasons in rankings)
    gate_features: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **params: Any) -> None:
        specs = {p.name: p for p in self.param_specs}
        unknown = sorted(set(params) - set(specs))
        if unknown:
            valid = "; ".join(p.describe() for p in self.param_specs)
            raise ValueError(f"unknown parameters {unknown} for strategy {self.name!r}; valid: {valid}")
        values = {name: spec.default for name, spec in specs.items()}
        values.update({k: specs[k].coerce(v, self.name) for k, v in params.items()})
        self.params: dict[str, Any] = values
        self.validate()

    def validate(self) -> None:
        """Cross-parameter checks; raise ValueError with an actionable message."""
        return None

    @classmethod
    def info(cls) -> StrategyInfo:
        return StrategyInfo(
            name=cls.name,
            description=cls.description,
            parameters={p.name: p.default for p in cls.param_specs},
            param_types={p.name: p.type.__name__ for p in cls.param_specs},
            param_descriptions={p.name: p.description for p in cls.param_specs},
            param_specs={p.name: p.describe() for p in cls.param_specs},
        )

    def risk_manager(self, warmup_bars: int) -> RiskManager:
        return RiskManager(
            max_atr_pct=self.params["max_atr_pct"],
            min_quote_volume_24h=self.params["min_quote_volume_24h"],
            warmup_bars=warmup_bars,
        )

    def allocator(self, max_positions: int) -> Allocator:
        return Allocator(max_positions=max_positions)

    @abstractmethod
    def signal_gates(self, panel: pd.DataFrame) -> pd.DataFrame:
        """Boolean `gate_*` columns for each panel row (all must pass to be a candidate)."""

    @abstractmethod
    def score(self, panel: pd.DataFrame) -> pd.Series:
        """Higher is better; may use the `<feature>_z` / `_pct` cross-sectional columns."""

    def gate_rules(self) -> list[str]:
        """The signal gates in words with this instance's thresholds (shown next to ranking reasons)."""
        return []

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"
