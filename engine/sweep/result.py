"""`SweepResult`: every configuration's row and per-window returns, the best one, and how likely the
choice is overfit (PBO, deflated Sharpe, SPA). `merge_chunks` builds it from chunks run anywhere."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.backtest.config import WalkForwardConfig
from engine.backtest.walk_forward import WalkForwardResult
from engine.stats.bootstrap import BLOCK_FLOOR_OVERLAPS
from engine.strategies import get_strategy
from engine.strategies.base import TradingStrategy
from engine.sweep.grid import RUN_PARAMS, sweep_parameters
from engine.sweep.overfit import (
    PBO_BLOCKS,
    DeflatedSharpeResult,
    PBOResult,
    SPAResult,
    daily_pnl,
    deflated_sharpe_of,
    pbo_cscv,
    spa_test,
)
from engine.sweep.run import ID_COLUMN, SweepChunk
from engine.timeframes import ms_index

#: objectives PBO can rank by from per-window returns alone; any other table column ranks by the mean
_PBO_METRIC = {"sharpe": "sharpe", "mean_window_return": "mean", "total_return": "mean"}


@dataclass
class SweepResult:
    """All configurations of one strategy's sweep on one universe and period.

    - `table`: one row per configuration, ordered by `config_id`: the id, every strategy parameter,
      `max_positions`, `fee_bps`, `slippage_bps`, then every metric of `run_walk_forward` for it
      (intervals included: `*_ci_low` / `*_ci_high`).
    - `returns`: per-window portfolio returns, decision time (UTC) x config id.
    - `benchmark`: the equal-weight universe benchmark's per-window returns at the run's costs.
    - `n_trials`: configurations tried for this strategy and universe (the deflated Sharpe's count).
    - `objective`: the table column `best()`, the report and the overfitting statistics rank by.
    """

    strategy: str
    config: WalkForwardConfig
    configs: list[dict[str, Any]]
    table: pd.DataFrame
    returns: pd.DataFrame
    benchmarks: dict[float, pd.Series]
    n_trials: int
    objective: str = "mean_window_return"
    #: the universe (every symbol with data)
    symbols: list[str] = field(default_factory=list)
    results: dict[int, WalkForwardResult] | None = field(default=None, repr=False)

    @property
    def benchmark(self) -> pd.Series:
        return self.benchmarks[self.config.cost_per_side]

    @property
    def varied(self) -> list[str]:
        """The grid parameters that take more than one value (heat-map axes)."""
        names = [c for c in self.configs[0] if c != ID_COLUMN] if self.configs else []
        return [n for n in names if self.table[n].nunique(dropna=False) > 1]

    def best(self, objective: str | None = None, *, minimize: bool = False) -> pd.Series:
        """The row of the configuration with the highest `objective` (lowest with `minimize`); ties go to
        the lowest id, and configurations without a value for it never win."""
        key = objective or self.objective
        if key not in self.table.columns:
            numeric = [c for c in self.table.columns if pd.api.types.is_numeric_dtype(self.table[c])]
            raise ValueError(f"unknown objective {key!r}; valid: {', '.join(numeric)}")
        values = pd.to_numeric(self.table[key], errors="coerce")
        if values.isna().all():
            raise ValueError(f"no configuration has a value for {key!r}")
        pos = int(np.nanargmin(values.to_numpy()) if minimize else np.nanargmax(values.to_numpy()))
        return self.table.iloc[pos]

    def walk_forward_config(self, config_id: int) -> tuple[TradingStrategy, WalkForwardConfig]:
        """The strategy and config that reproduce one row with `run_walk_forward`."""
        row = self.table.loc[self.table[ID_COLUMN] == config_id]
        if row.empty:
            raise KeyError(f"no configuration {config_id} in this sweep")
        rec = row.iloc[0]
        specs = sweep_parameters(self.strategy)
        params = {k: _plain(rec[k]) for k in specs if k not in RUN_PARAMS}
        run = {k: _plain(rec[k]) for k in RUN_PARAMS}
        return get_strategy(self.strategy, params), dataclasses.replace(self.config, **run)

    # ---- overfitting ---------------------------------------------------------------------------------

    def overfitting(self, blocks: int = PBO_BLOCKS, metric: str | None = None) -> PBOResult:
        """PBO by CSCV on `returns` (`blocks` contiguous blocks; metric from the objective by default)."""
        return pbo_cscv(self.returns, blocks, metric or _PBO_METRIC.get(self.objective, "mean"))

    @cached_property
    def _pbo(self) -> PBOResult:
        return self.overfitting()

    @property
    def pbo(self) -> float | None:
        """Probability of backtest overfitting (CSCV, 16 blocks): the share of in/out-of-sample splits in
        which the in-sample winner lands at or below the out-of-sample median."""
        return self._pbo.pbo

    @property
    def pbo_logits(self) -> np.ndarray:
        """The rank logits of the in-sample winner, one per split (their distribution is PBO's evidence)."""
        return self._pbo.logits

    @cached_property
    def daily(self) -> pd.DataFrame:
        """Each configuration's daily P&L (non-compounded sleeve curve), what the deflated Sharpe reads."""
        return daily_pnl(self.returns, self.config.window_hours, self.config.sleeve_factor)

    @cached_property
    def deflated_sharpe(self) -> DeflatedSharpeResult:
        """Deflated Sharpe ratio of the best configuration by the objective, given `n_trials` tried, on its
        daily P&L (`probability` is None when that P&L has no variance)."""
        return deflated_sharpe_of(self.daily, int(self.best()[ID_COLUMN]), self.n_trials)

    @cached_property
    def spa(self) -> SPAResult:
        """Hansen's SPA test of every configuration against the equal-weight benchmark (mean block at least
        the run bootstrap's floor, 6 x window/shift windows)."""
        overlap = math.ceil(self.config.window_ms / self.config.shift_ms)
        return spa_test(self.returns, self.benchmark.to_numpy(), min_block=BLOCK_FLOOR_OVERLAPS * overlap,
                        reps=int(self.config.bootstrap_samples), seed=int(self.config.seed))

    @property
    def spa_p_value(self) -> float | None:
        return self.spa.p_value

    def summary(self) -> dict[str, Any]:
        """The headline figures as plain JSON-friendly values (for run metadata and stores)."""
        best = self.best()
        pbo, dsr, spa = self._pbo, self.deflated_sharpe, self.spa
        return {
            "strategy": self.strategy,
            "configurations": len(self.table),
            "n_trials": self.n_trials,
            "decision_times": len(self.returns),
            "objective": self.objective,
            "best_config_id": int(best[ID_COLUMN]),
            "best_params": {k: _plain(best[k]) for k in self.varied},
            "best_objective": _plain(best[self.objective]),
            "pbo": pbo.pbo,
            "pbo_blocks": pbo.blocks,
            "deflated_sharpe": dsr.probability,
            "deflated_sharpe_threshold": dsr.threshold,
            "best_sharpe_daily": dsr.sharpe,
            "spa_p_value": spa.p_value,
            "spa_block": spa.block,
        }

    def report(self, path: str | Path) -> Path:
        """Write the sweep as one self-contained HTML file (engine.report.write_sweep_report)."""
        from engine.report import write_sweep_report  # lazy: matplotlib loads only for reports

        return write_sweep_report(self, path)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def merge_chunks(
    chunks: Sequence[SweepChunk], n_trials: int | None = None, objective: str = "mean_window_return"
) -> SweepResult:
    """One `SweepResult` from chunks of one plan, in any order (rows are sorted by config id).

    `n_trials` is the number of configurations tried for this strategy and universe (the store's count);
    by default the number merged, and never fewer.
    """
    if not chunks:
        raise ValueError("merge_chunks needs at least one chunk")
    first = chunks[0]
    for c in chunks[1:]:
        if c.strategy != first.strategy:
            raise ValueError(f"chunks of different strategies: {first.strategy!r} and {c.strategy!r}")
        if c.config != first.config:
            raise ValueError("chunks were run with different configs; merge only chunks of one sweep")
        if c.symbols != first.symbols or not np.array_equal(c.decision_ms, first.decision_ms):
            raise ValueError("chunks have different universes or decision times (different data?); merge only one sweep")
    entries = [(row, c.returns[:, j], cfg) for c in chunks
               for j, (row, cfg) in enumerate(zip(c.rows, c.configs, strict=True))]
    entries.sort(key=lambda e: e[0][ID_COLUMN])
    ids = [e[0][ID_COLUMN] for e in entries]
    if len(set(ids)) != len(ids):
        raise ValueError(f"configuration ids appear in several chunks: {sorted({i for i in ids if ids.count(i) > 1})}")
    n = len(ids) if n_trials is None else int(n_trials)
    if n < len(ids):
        raise ValueError(f"n_trials ({n_trials}) is below the {len(ids)} configurations merged")
    index = ms_index(first.decision_ms)
    index.name = "decision_time"
    returns = pd.DataFrame(np.column_stack([e[1] for e in entries]) if entries else None, index=index,
                           columns=pd.Index(ids, name=ID_COLUMN))
    benchmarks: dict[float, pd.Series] = {}
    for c in chunks:
        for cost, values in c.benchmarks.items():
            benchmarks.setdefault(cost, pd.Series(values, index=index, name="benchmark_return"))
    results = None
    if all(c.results is not None for c in chunks):
        results = {k: v for c in chunks for k, v in (c.results or {}).items()}
    table = pd.DataFrame.from_records([e[0] for e in entries])
    if objective not in table.columns:
        raise ValueError(f"unknown objective {objective!r}; valid: {', '.join(map(str, table.columns))}")
    return SweepResult(
        strategy=first.strategy,
        config=first.config,
        configs=[e[2] for e in entries],
        table=table,
        returns=returns,
        benchmarks=benchmarks,
        n_trials=n,
        objective=objective,
        symbols=list(first.symbols),
        results=results,
    )
