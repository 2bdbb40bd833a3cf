"""Strategies: the `TradingStrategy` interface, the v1 baselines and their registry."""

from engine.strategies.base import Param, StrategyInfo, TradingStrategy
from engine.strategies.macd_rsi import MacdRsiConfluence
from engine.strategies.momentum import MomentumRank
from engine.strategies.registry import get_strategy, list_strategies, register_strategy

__all__ = [
    "MacdRsiConfluence",
    "MomentumRank",
    "Param",
    "StrategyInfo",
    "TradingStrategy",
    "get_strategy",
    "list_strategies",
    "register_strategy",
]
