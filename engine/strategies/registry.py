"""Strategy registry: names -> classes, so configs and the UI can refer to strategies by name."""

from __future__ import annotations

from typing import Any

from engine.strategies.base import StrategyInfo, TradingStrategy
from engine.strategies.macd_rsi import MacdRsiConfluence
from engine.strategies.momentum import MomentumRank

_REGISTRY: dict[str, type[TradingStrategy]] = {}


def register_strategy(cls: type[TradingStrategy]) -> type[TradingStrategy]:
    if not (isinstance(cls, type) and issubclass(cls, TradingStrategy)):
        raise TypeError(f"{cls!r} is not a TradingStrategy subclass")
    _REGISTRY[cls.name] = cls
    return cls


def get_strategy(name: str | TradingStrategy, params: dict[str, Any] | None = None, **kwargs: Any) -> TradingStrategy:
    """A configured strategy by name; unknown names and bad parameters raise ValueError listing valid ones."""
    if isinstance(name, TradingStrategy):
        return name
    if name not in _REGISTRY:
        raise ValueError(f"unknown strategy {name!r}; valid strategies: {sorted(_REGISTRY)}")
    return _REGISTRY[name](**{**(params or {}), **kwargs})


def list_strategies() -> list[StrategyInfo]:
    return [cls.info() for _, cls in sorted(_REGISTRY.items())]


for _cls in (MacdRsiConfluence, MomentumRank):
    register_strategy(_cls)
