"""Walk-forward optimisation (SPEC section 10): choose parameters on a training period, trade them on the
next test period, roll forward, and judge only the stitched test periods.

Folds are `train_days` then `test_days`, rolling (or anchored at the first decision time). A fold's
choice reads only windows that closed by its test start (`t + window <= test start`: every trade of
such a window has exited), so nothing at or after the test start can change it. Every configuration
is evaluated once over the whole period on one shared panel; a fold's score is its objective on the
purged training windows, and the out-of-sample result is assembled by `run_walk_forward`'s own code
from the chosen configurations' decisions in each test period.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.backtest.config import WalkForwardConfig
from engine.backtest.panel import PreparedHistories, prepare_histories
from engine.backtest.walk_forward import WalkForwardResult, assemble_result, decision_panel
from engine.reuse import reuse_scope
from engine.strategies import get_strategy
from engine.sweep.grid import plan_sweep
from engine.sweep.result import SweepResult, merge_chunks
from engine.sweep.run import ID_COLUMN, chunk_on_panel, resolved_configs, run_config
from engine.timeframes import ms_to_timestamp

DAY_MS = 86_400_000
Objective = Callable[[pd.DataFrame], float]


def _sharpe(windows: pd.DataFrame) -> float:
    r = windows["window_return"].to_numpy(np.float64)
    if len(r) < 2:
        return math.nan
    sd = float(r.std(ddof=1))
    return float(r.mean() / sd) if sd > 0 else (0.0 if r.mean() == 0 else math.copysign(math.inf, r.mean()))


#: objectives computed from a configuration's purged training windows (`result.windows` rows); higher wins
OBJECTIVES: dict[str, Objective] = {
    "mean_window_return": lambda w: float(w["window_return"].mean()) if len(w) else math.nan,
    "total_return": lambda w: float(w["contribution"].sum()) if len(w) else math.nan,
    "sharpe": _sharpe,
}


@dataclass(frozen=True)
class Fold:
    """One fold: the training range the choice was made on, the test range it traded, and the choice."""

    index: int
    train_start: pd.Timestamp
    train_end: pd.Timestamp  # = test_start; only windows closed by then were read
    test_start: pd.Timestamp
    test_end: pd.Timestamp  # exclusive; the last fold may have fewer decision times than test_days
    config_id: int
    params: dict[str, Any]
    train_score: float
    train_windows: int
    test_windows: int


@dataclass
class WalkForwardOptimization:
    """Folds with their choices, the stitched out-of-sample run, and the full-period sweep behind them.

    `scores` holds every configuration's training objective per fold (rows: fold, columns: config id),
    the evidence each choice was made from. `sweep` is every configuration over the whole period: its
    PBO and SPA describe the grid, whereas `out_of_sample` is the honest estimate of the procedure.
    """

    strategy: str
    config: WalkForwardConfig
    objective: str
    train_days: float
    test_days: float
    anchored: bool
    folds: list[Fold]
    scores: pd.DataFrame
    out_of_sample: WalkForwardResult
    sweep: SweepResult

    def fold_table(self) -> pd.DataFrame:
        return pd.DataFrame([{**{k: v for k, v in dataclasses.asdict(f).items() if k != "params"}, **f.params}
                             for f in self.folds])

    def report(self, path: str | Path) -> Path:
        """The out-of-sample run's report (the test periods only)."""
        return self.out_of_sample.report(path)


def fold_ranges(decision_ms: np.ndarray, shift_ms: int, train_ms: int, test_ms: int,
                anchored: bool) -> list[tuple[int, int, int]]:
    """(train_start, test_start, test_end) in epoch ms for every fold with at least one test decision."""
    if len(decision_ms) == 0:
        return []
    t0, t_end = int(decision_ms[0]), int(decision_ms[-1]) + shift_ms
    out = []
    test_start = t0 + train_ms
    while test_start < t_end:
        out.append((t0 if anchored else test_start - train_ms, test_start, test_start + test_ms))
        test_start += test_ms
    return out


def _objective(objective: str | Objective) -> tuple[str, Objective]:
    if callable(objective):
        return getattr(objective, "__name__", "custom"), objective
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; valid: {', '.join(OBJECTIVES)} or a function of "
                         "the training windows (a result.windows slice) returning a float, higher is better")
    return objective, OBJECTIVES[objective]


def _days_ms(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive number of days (got {value!r})")
    return int(round(float(value) * DAY_MS))


def _choose(scores: np.ndarray) -> int | None:
    """Position of the highest score (NaN never wins); ties go to the first, the lowest config id."""
    if np.isnan(scores).all():
        return None
    return int(np.argmax(np.where(np.isnan(scores), -np.inf, scores)))


def run_walk_forward_optimization(
    candles_by_symbol: Mapping[str, pd.DataFrame] | PreparedHistories,
    strategy_name: str,
    grid: Mapping[str, Any],
    cfg: WalkForwardConfig | None = None,
    *,
    train_days: float,
    test_days: float,
    anchored: bool = False,
    objective: str | Objective = "mean_window_return",
    sample: int | None = None,
    seed: int = 0,
) -> WalkForwardOptimization:
    """Choose `grid`'s best configuration on each training period and stitch the test periods.

    `objective` is one of OBJECTIVES or a function of the purged training windows (higher is better;
    ties go to the lowest config id). Costs (`fee_bps`, `slippage_bps`) are not choices and may not be
    in the grid: run a sweep to see their effect.
    """
    cfg = cfg or WalkForwardConfig()
    name, score_of = _objective(objective)
    train_ms, test_ms = _days_ms(train_days, "train_days"), _days_ms(test_days, "test_days")
    costs = sorted({"fee_bps", "slippage_bps"} & set(grid))
    if costs:
        raise ValueError(f"{costs} cannot be optimised (the lowest cost always wins); set them in the config")
    plan = plan_sweep(strategy_name, grid, sample=sample, seed=seed)
    resolved = resolved_configs(strategy_name, plan, cfg)
    shared = decision_panel(prepare_histories(candles_by_symbol, cfg.feature_timeframe), cfg)
    ms = shared.decision_ms
    ranges = fold_ranges(ms, cfg.shift_ms, train_ms, test_ms, bool(anchored))
    if not ranges:
        days = (len(ms) * cfg.shift_ms) / DAY_MS
        raise ValueError(f"the decision times span {days:.1f} days: too short for train_days={train_days} "
                         f"plus a test period")
    windows: dict[int, pd.DataFrame] = {}
    chunk = chunk_on_panel(shared, strategy_name, plan, resolved, cfg,
                           on_result=lambda i, r: windows.__setitem__(i, r.windows))
    sweep = merge_chunks([chunk], objective=name if name in ("mean_window_return", "total_return", "sharpe")
                         else "mean_window_return")
    ids = [c[ID_COLUMN] for c in plan]

    scores = np.full((len(ranges), len(ids)), np.nan)
    folds: list[Fold] = []
    for k, (train_start, test_start, test_end) in enumerate(ranges):
        purged = (ms >= train_start) & (ms + cfg.window_ms <= test_start)  # closed by the test start
        scores[k] = [score_of(windows[i].loc[purged]) for i in ids]
        pos = _choose(scores[k])
        if pos is None:
            raise ValueError(f"fold {k}: no configuration has a {name} on its training windows "
                             f"({int(purged.sum())} windows closed by the test start); increase train_days")
        folds.append(Fold(k, ms_to_timestamp(train_start), ms_to_timestamp(test_start), ms_to_timestamp(test_start),
                          ms_to_timestamp(test_end), ids[pos], {p: v for p, v in plan[pos].items() if p != ID_COLUMN},
                          float(scores[k, pos]), int(purged.sum()), int(((ms >= test_start) & (ms < test_end)).sum())))
    with reuse_scope():
        oos = _stitch(shared, resolved, folds, cfg)
    varied = [p for p in plan[0] if p != ID_COLUMN]
    oos.params.update({p: (folds[0].params[p] if len({f.params[p] for f in folds}) == 1
                           else [f.params[p] for f in folds]) for p in varied})
    table = pd.DataFrame(scores, index=pd.RangeIndex(len(folds), name="fold"), columns=pd.Index(ids, name=ID_COLUMN))
    return WalkForwardOptimization(strategy_name, cfg, name, float(train_days), float(test_days), bool(anchored),
                                   folds, table, oos, sweep)


def _stitch(shared, resolved, folds: list[Fold], cfg: WalkForwardConfig) -> WalkForwardResult:
    """The chosen configurations' evaluated rows in their test periods, assembled like a single run."""
    by_id = {config_id: (strategy, cfg_i) for config_id, strategy, cfg_i in resolved}
    ms = shared.decision_ms
    pieces = []
    for config_id in dict.fromkeys(f.config_id for f in folds):  # each chosen configuration evaluated once
        evaluated = run_config(shared, *by_id[config_id]).panel
        t = evaluated["decision_ms"].to_numpy()
        for f in folds:
            if f.config_id == config_id:
                lo, hi = f.test_start.value // 1_000_000, f.test_end.value // 1_000_000
                pieces.append((f.index, evaluated.loc[(t >= lo) & (t < hi)]))
    pieces.sort(key=lambda p: p[0])
    rows = pd.concat([p[1] for p in pieces], ignore_index=True)
    first = folds[0].test_start.value // 1_000_000
    last = folds[-1].test_end.value // 1_000_000
    decision_ms = ms[(ms >= first) & (ms < last)]
    oos_cfg = dataclasses.replace(cfg, start=folds[0].test_start)
    return assemble_result(rows, decision_ms, oos_cfg, get_strategy(resolved[0][1].name), shared.feature_cols)
