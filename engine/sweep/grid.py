"""Sweep grids: check parameter names and values against the strategy's typed `Param` specs before any
work, and plan the configurations with stable ids.

A configuration's id is its position in the full grid (parameter names sorted, values in the order given,
the last name varying fastest), so the same grid always gives the same ids, a random sample keeps the ids
its configurations have in the full grid, and chunks of one plan can be merged in any order.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine.strategies import get_strategy
from engine.strategies.base import Param, TradingStrategy

log = logging.getLogger(__name__)

#: run-level settings a grid may vary besides the strategy's own parameters (WalkForwardConfig fields)
RUN_PARAMS: dict[str, Param] = {
    "max_positions": Param("max_positions", int, 3, "symbols held per window", 1),
    "fee_bps": Param("fee_bps", float, 10.0, "fee per side, basis points", 0.0, 10_000.0),
    "slippage_bps": Param("slippage_bps", float, 0.0, "slippage per side, basis points", 0.0, 10_000.0),
}
#: a full grid larger than this must be sampled (`sample=`): a plan is a list in memory
MAX_GRID = 100_000


def sweep_parameters(strategy_name: str) -> dict[str, Param]:
    """Every name a grid for `strategy_name` may use: the strategy's parameters, then the run-level ones."""
    cls = type(get_strategy(strategy_name))
    specs = {p.name: p for p in cls.param_specs}
    clash = sorted(set(specs) & set(RUN_PARAMS))
    if clash:
        raise ValueError(f"strategy {strategy_name!r} has parameters named like run settings: {clash}")
    return {**specs, **RUN_PARAMS}


def _valid_list(specs: Mapping[str, Param]) -> str:
    return "; ".join(p.describe() for p in specs.values())


def validate_grid(strategy_name: str, grid: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The grid with every value coerced to its parameter's type, names sorted; raises ValueError naming
    the offending name or value and listing the valid choices (names with their types and ranges)."""
    specs = sweep_parameters(strategy_name)
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError(f"grid must map parameter names to lists of values; valid names for "
                         f"{strategy_name!r}: {_valid_list(specs)}")
    unknown = sorted(str(k) for k in grid if k not in specs)
    if unknown:
        raise ValueError(f"unknown sweep parameters {unknown} for strategy {strategy_name!r}; valid: "
                         f"{_valid_list(specs)}")
    out: dict[str, list[Any]] = {}
    for name in sorted(grid):
        values = grid[name]
        spec = specs[name]
        if isinstance(values, str | bytes | Mapping) or not isinstance(values, Sequence | np.ndarray | range):
            raise ValueError(f"grid[{name!r}] must be a list of values (got {values!r}); {spec.describe()}")
        if len(values) == 0:
            raise ValueError(f"grid[{name!r}] is empty; give at least one value ({spec.describe()})")
        coerced = []
        for value in values:
            value = value.item() if isinstance(value, np.generic) else value
            try:
                coerced.append(spec.coerce(value, strategy_name))
            except ValueError as exc:
                raise ValueError(f"grid[{name!r}]: {exc}; valid: {spec.describe()}") from None
        if len(set(coerced)) != len(coerced):
            raise ValueError(f"grid[{name!r}] repeats a value ({coerced}): every configuration would run twice")
        out[name] = coerced
    return out


def _combination(grid: dict[str, list[Any]], index: int) -> dict[str, Any]:
    """The configuration at position `index` of the full grid (mixed radix, last name fastest)."""
    params: dict[str, Any] = {}
    for name in reversed(grid):
        index, digit = divmod(index, len(grid[name]))
        params[name] = grid[name][digit]
    return {name: params[name] for name in grid}


def invalid_reason(strategy_name: str, params: Mapping[str, Any]) -> str | None:
    """Why a combination cannot run (a cross-parameter rule such as rsi_low <= rsi_high), or None."""
    strategy_params = {k: v for k, v in params.items() if k not in RUN_PARAMS}
    try:
        get_strategy(strategy_name, strategy_params)
    except ValueError as exc:
        return str(exc)
    if params.get("fee_bps", 0.0) + params.get("slippage_bps", 0.0) >= 10_000:
        return "fee_bps + slippage_bps must be below 10,000 (100%)"
    return None


def plan_sweep(
    strategy_name: str, grid: Mapping[str, Any], sample: int | None = None, seed: int = 0
) -> list[dict[str, Any]]:
    """The configurations of a sweep, ordered by id: `[{"config_id": 7, "rsi_low": 30.0, ...}, ...]`.

    Each dict holds the id and the grid's values for that configuration (the other parameters keep the
    strategy's defaults and the run's config). `sample=N` draws N distinct configurations at random
    (`seed`); a sample as large as the grid is the grid. Combinations that break a cross-parameter rule
    (e.g. `rsi_low > rsi_high`) are left out and logged; bad names or values raise before anything runs.
    """
    checked = validate_grid(strategy_name, grid)
    total = math.prod(len(v) for v in checked.values())
    if sample is not None and (isinstance(sample, bool) or int(sample) != sample or sample < 1):
        raise ValueError(f"sample must be a positive integer or None (got {sample!r})")
    if sample is None and total > MAX_GRID:
        raise ValueError(f"the grid has {total:,} configurations (more than {MAX_GRID:,}); pass sample=N to draw N")
    skipped: list[str] = []

    def valid(index: int) -> dict[str, Any] | None:
        params = _combination(checked, index)
        reason = invalid_reason(strategy_name, params)
        if reason is not None:
            skipped.append(reason)
            return None
        return {"config_id": index, **params}

    if sample is None or sample >= total:
        plan = [c for c in map(valid, range(total)) if c is not None]
    else:
        plan = _draw(valid, total, int(sample), np.random.default_rng(seed))
    if skipped:
        log.warning("sweep %s: %d grid combinations cannot run and are left out (first: %s)",
                    strategy_name, len(skipped), skipped[0])
    if not plan:
        raise ValueError(f"no combination of this grid can run for {strategy_name!r}: {skipped[0]}")
    return plan


def _draw(valid, total: int, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """`n` distinct valid configurations in random grid order, returned sorted by id."""
    chosen: list[dict[str, Any]] = []
    if total <= 4 * MAX_GRID:
        candidates = (int(i) for i in rng.permutation(total))
    else:  # a huge grid: draw positions with rejection instead of permuting all of them
        seen: set[int] = set()

        def fresh():
            while len(seen) < total:
                i = int(rng.integers(total))
                if i not in seen:
                    seen.add(i)
                    yield i
        candidates = fresh()
    for index in candidates:
        config = valid(index)
        if config is not None:
            chosen.append(config)
            if len(chosen) == n:
                break
    return sorted(chosen, key=lambda c: c["config_id"])


def resolve(strategy_name: str, config: Mapping[str, Any]) -> tuple[TradingStrategy, dict[str, Any]]:
    """The strategy of one planned configuration and its run-level overrides (for WalkForwardConfig)."""
    specs = sweep_parameters(strategy_name)
    values = {k: v for k, v in config.items() if k != "config_id"}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ValueError(f"configuration {config.get('config_id')!r}: unknown parameters {unknown}; valid: "
                         f"{_valid_list(specs)}")
    strategy = get_strategy(strategy_name, {k: v for k, v in values.items() if k not in RUN_PARAMS})
    run = {k: specs[k].coerce(v, strategy_name) for k, v in values.items() if k in RUN_PARAMS}
    return strategy, run
