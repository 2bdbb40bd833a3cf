"""Registry of feature computers: the default v1 set, extensible by users."""

from __future__ import annotations

from engine.features.base import FeatureComputer
from engine.features.indicators import Liquidity, Momentum, Trend, Volatility

_REGISTRY: dict[str, FeatureComputer] = {}


def register_feature_computer(computer: FeatureComputer) -> FeatureComputer:
    """Add a computer; its columns must not collide with registered ones."""
    taken = {c for comp in _REGISTRY.values() for c in comp.columns if comp.name != computer.name}
    clash = taken.intersection(computer.columns)
    if clash:
        raise ValueError(f"feature columns {sorted(clash)} are already produced by another computer")
    _REGISTRY[computer.name] = computer
    return computer


def get_feature_computers(names: list[str] | None = None) -> list[FeatureComputer]:
    if names is None:
        return list(_REGISTRY.values())
    unknown = [n for n in names if n not in _REGISTRY]
    if unknown:
        raise ValueError(f"unknown feature computers {unknown}; valid: {sorted(_REGISTRY)}")
    return [_REGISTRY[n] for n in names]


def feature_names(computers: list[FeatureComputer] | None = None) -> list[str]:
    return [c for comp in (computers or get_feature_computers()) for c in comp.columns]


def default_warmup_bars(computers: list[FeatureComputer] | None = None) -> int:
    """10x the longest indicator period: the seeds of Wilder/EMA smoothing have then decayed below 1e-7."""
    return 10 * max(comp.longest_period for comp in (computers or get_feature_computers()))


for _computer in (Momentum(), Trend(), Volatility(), Liquidity()):
    register_feature_computer(_computer)
