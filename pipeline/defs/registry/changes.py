"""Validated changes to the strategy registry, shared by the `configure_strategy` job and the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.results import strategy_rows


def configure_strategy(
    db: Any, name: str, *, active: bool | None = None, params: Mapping[str, Any] | None = None,
    reset_params: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Apply an operator's change after the engine validated it; ValueError lists the valid choices."""
    from engine.strategies import get_strategy, list_strategies

    infos = {i.name: i for i in list_strategies()}
    if name not in infos:
        raise ValueError(f"unknown strategy {name!r}; valid strategies: {sorted(infos)}")
    db.sync_strategies(strategy_rows())
    stored = next(r for r in db.all_strategies() if r["name"] == name)
    base = dict(infos[name].parameters) if reset_params else {**infos[name].parameters, **stored["parameters"]}
    merged = {**base, **dict(params or {})}
    strategy = get_strategy(name, merged)  # raises ValueError naming the parameter, its type and range
    return db.set_strategy(name, active=active, parameters=dict(strategy.params))
