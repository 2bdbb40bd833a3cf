"""Running a sweep: one decision panel for every configuration, evaluated by `run_walk_forward`'s own code.

Features are computed once per symbol (`prepare_histories`) and the panel once per (decision times,
window, warm-up) (`decision_panel`); each configuration then goes through `run_on_panel`, the very
function `run_walk_forward` calls after building its panel, so a sweep row equals a single run by
construction. A chunk keeps only what the merge needs: one row of parameters and metrics per
configuration and its per-window returns.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from engine.backtest.config import WalkForwardConfig
from engine.backtest.evaluate import require_risk_objects
from engine.backtest.panel import PreparedHistories, prepare_histories
from engine.backtest.walk_forward import DecisionPanel, WalkForwardResult, decision_panel, run_on_panel
from engine.features import default_warmup_bars
from engine.reuse import reuse_scope
from engine.stats import net_return
from engine.strategies.base import TradingStrategy
from engine.sweep.grid import RUN_PARAMS, resolve

log = logging.getLogger(__name__)

#: columns of a sweep row before the metrics: the id, then every strategy parameter and run setting
ID_COLUMN = "config_id"


@dataclass
class SweepChunk:
    """The results of some configurations of one sweep (merge chunks with `merge_chunks`).

    `rows[i]` is configuration `configs[i]`: its id, every strategy parameter, `max_positions`, `fee_bps`,
    `slippage_bps`, then `run_walk_forward`'s metrics for it (the same dict, same values). `returns[:, i]`
    is its per-window portfolio return at each of `decision_ms`; `benchmarks` maps a cost per side to the
    equal-weight universe benchmark's per-window returns at that cost (0 where nothing was eligible).
    Plain data: it pickles, so chunks can run on different workers.
    """

    strategy: str
    config: WalkForwardConfig
    configs: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    returns: np.ndarray
    decision_ms: np.ndarray
    benchmarks: dict[float, np.ndarray]
    symbols: list[str] = field(default_factory=list)
    #: every configuration's full `WalkForwardResult`, only with `keep_results=True` (small sweeps, tests)
    results: dict[int, WalkForwardResult] | None = field(default=None, repr=False)


def run_config(
    shared: DecisionPanel, strategy: TradingStrategy, cfg: WalkForwardConfig, *, per_symbol: bool = True
) -> WalkForwardResult:
    """One configuration on a shared panel: what `run_walk_forward(histories, strategy, cfg)` returns
    (without the per-symbol table when `per_symbol` is False)."""
    warmup = cfg.warmup_bars or default_warmup_bars()
    risk, allocator = require_risk_objects(strategy, warmup, cfg.max_positions, cfg=cfg)
    return run_on_panel(shared, strategy, cfg, risk, allocator, per_symbol=per_symbol)


def config_row(config_id: int, strategy: TradingStrategy, cfg: WalkForwardConfig,
               metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The table row of one configuration: id, parameters, run settings, then its metrics unchanged."""
    row: dict[str, Any] = {ID_COLUMN: int(config_id), **strategy.params}
    row.update({name: getattr(cfg, name) for name in RUN_PARAMS})
    clash = sorted(set(row) & set(metrics))
    if clash:
        raise ValueError(f"strategy {strategy.name!r} parameters {clash} are named like metrics")
    row.update(metrics)
    return row


def resolved_configs(
    strategy_name: str, configs: Sequence[Mapping[str, Any]], cfg: WalkForwardConfig
) -> list[tuple[int, TradingStrategy, WalkForwardConfig]]:
    """Every configuration's strategy and run config, checked before any work (errors name the id)."""
    seen: set[int] = set()
    out = []
    for config in configs:
        if ID_COLUMN not in config:
            raise ValueError(f"configuration {dict(config)!r} has no {ID_COLUMN!r} (use plan_sweep)")
        config_id = int(config[ID_COLUMN])
        if config_id in seen:
            raise ValueError(f"configuration id {config_id} appears twice")
        seen.add(config_id)
        try:
            strategy, run = resolve(strategy_name, config)
            cfg_i = dataclasses.replace(cfg, **run)
        except ValueError as exc:
            raise ValueError(f"configuration {config_id}: {exc}") from None
        out.append((config_id, strategy, cfg_i))
    return out


def benchmark_returns(shared: DecisionPanel, cost_per_side: float) -> np.ndarray:
    """Equal-weight benchmark per window at one cost: `windows["benchmark_return"]` of a run, 0 when idle."""
    n = len(shared.decision_ms)
    t_idx = np.searchsorted(shared.decision_ms, shared.panel["decision_ms"].to_numpy())
    outcome = np.where(shared.outcomes["void"], 0.0, net_return(shared.outcomes["gross_ratio"], cost_per_side))
    n_eligible = np.bincount(t_idx, weights=np.ones(len(t_idx)), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        bench = np.where(n_eligible > 0, np.bincount(t_idx, weights=outcome, minlength=n) / n_eligible, np.nan)
    return np.nan_to_num(bench, nan=0.0)


def run_sweep_chunk(
    histories: Mapping[str, pd.DataFrame] | PreparedHistories,
    strategy_name: str,
    configs: Sequence[Mapping[str, Any]],
    cfg: WalkForwardConfig | None = None,
    *,
    keep_results: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SweepChunk:
    """Run some planned configurations (`plan_sweep`) on one universe; `merge_chunks` combines chunks.

    `histories` is `prepare_histories(candles, cfg.feature_timeframe)` (or the candles themselves: features
    are then computed here). Every configuration is checked before the first one runs. `progress(done,
    total)` is called after each configuration (for pipeline logs).
    """
    cfg = cfg or WalkForwardConfig()
    resolved = resolved_configs(strategy_name, configs, cfg)
    prepared = prepare_histories(histories, cfg.feature_timeframe)
    shared = decision_panel(prepared, cfg)
    log.info("sweep %s: %d configurations, %d symbols, %d decision times", strategy_name, len(resolved),
             len(prepared), len(shared.decision_ms))
    return chunk_on_panel(shared, strategy_name, configs, resolved, cfg, keep_results=keep_results,
                          progress=progress)


def chunk_on_panel(
    shared: DecisionPanel,
    strategy_name: str,
    configs: Sequence[Mapping[str, Any]],
    resolved: list[tuple[int, TradingStrategy, WalkForwardConfig]],
    cfg: WalkForwardConfig,
    *,
    keep_results: bool = False,
    progress: Callable[[int, int], None] | None = None,
    on_result: Callable[[int, WalkForwardResult], None] | None = None,
) -> SweepChunk:
    """The loop of `run_sweep_chunk` on a built panel; `on_result(config_id, result)` sees each full run
    before it is dropped (walk-forward optimisation keeps the windows)."""
    n = len(shared.decision_ms)
    returns = np.empty((n, len(resolved)), dtype=np.float64)
    rows: list[dict[str, Any]] = []
    results: dict[int, WalkForwardResult] | None = {} if keep_results else None
    keep = results is not None or on_result is not None  # else only metrics and window returns are read
    with reuse_scope():  # configuration-independent statistics (e.g. bootstrap indices) are computed once
        for j, (config_id, strategy, cfg_i) in enumerate(resolved):
            result = run_config(shared, strategy, cfg_i, per_symbol=keep)
            rows.append(config_row(config_id, strategy, cfg_i, result.metrics))
            returns[:, j] = result.windows["window_return"].to_numpy(np.float64)
            if results is not None:
                results[config_id] = result
            if on_result is not None:
                on_result(config_id, result)
            del result
            if progress is not None:
                progress(j + 1, len(resolved))
    costs = {cfg.cost_per_side, *(c.cost_per_side for _, _, c in resolved)}
    return SweepChunk(
        strategy=strategy_name,
        config=cfg,
        configs=[dict(c) for c in configs],
        rows=rows,
        returns=returns,
        decision_ms=shared.decision_ms.copy(),
        benchmarks={c: benchmark_returns(shared, c) for c in sorted(costs)},
        symbols=[str(s) for s in shared.panel["symbol"].cat.categories],
        results=results,
    )
