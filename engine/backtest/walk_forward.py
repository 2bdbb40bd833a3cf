"""Leak-free walk-forward backtest (SPEC section 3), vectorised over all decision times at once.

At each decision time `t` a strategy sees only candles closed at `t`: feature bars with `H + tf <= t` and
the entry candle stamped `t - 5m`. Each window `[t, t + window)` is an independent long-only trade set
weighted by the allocator (equal by default); portfolio statistics use the non-compounded sleeve curve, and
`result.equity` the capital curve of portfolio mode (compounding optional, see engine.portfolio).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.backtest.config import WalkForwardConfig
from engine.backtest.evaluate import evaluate, require_risk_objects
from engine.backtest.panel import PreparedHistories, build_panel, prepare_histories
from engine.features import default_warmup_bars
from engine.metrics import curve_metrics, equity_curve, symbol_metrics, trade_metrics
from engine.portfolio import portfolio_curve
from engine.reuse import reusable
from engine.risk import Allocator, RiskManager
from engine.stats import RunStatistics, net_return, run_statistics
from engine.strategies.base import TradingStrategy
from engine.timeframes import BASE_MS, ms_index

log = logging.getLogger(__name__)

TRADE_COLUMNS = [
    "decision_time", "symbol", "entry_time", "exit_time", "direction", "entry_price", "exit_price",
    "return_pct", "gross_return_pct", "max_drawdown", "weight", "rank", "score", "void", "n_candles",
]
WINDOW_COLUMNS = [
    "decision_time", "n_eligible", "n_candidates", "n_selected", "n_trades", "n_void", "selected",
    "invested_weight", "window_return", "benchmark_return", "contribution", "equity", "drawdown",
]


@dataclass
class WalkForwardResult:
    """Trades, per-window portfolio rows, metrics; plus per-symbol metrics and the cost table."""

    strategy: str
    params: dict[str, Any]
    config: WalkForwardConfig
    trades: pd.DataFrame
    windows: pd.DataFrame
    metrics: dict[str, Any]
    symbol_metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    cost_sensitivity: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: every eligible (decision time, symbol) row with its score and outcome, for diagnostics
    panel: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    #: capital curve by decision time: total_equity, sleeve_<j>, drawdown, cash_share, marked_at
    equity: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: one row per UTC month (engine.stats.summary.MONTHLY_COLUMNS) and the rank IC per decision time
    monthly: pd.DataFrame = field(default_factory=pd.DataFrame)
    rank_ic: pd.DataFrame = field(default_factory=pd.DataFrame)

    def summary(self) -> str:
        keys = ("trade_count", "coverage", "win_rate", "avg_return", "profit_factor",
                "max_drawdown_aggregated", "total_return", "break_even_fee_bps")
        parts = [f"{k}={self.metrics.get(k)!r}" for k in keys]
        return f"{self.strategy}: " + ", ".join(parts)

    def report(self, path: str | Path) -> Path:
        """Write a self-contained HTML report of this run (engine.report.write_report); return its path."""
        from engine.report import write_report  # lazy: matplotlib loads only when a report is written

        return write_report(self, path)


def run_walk_forward(
    candles_by_symbol: Mapping[str, pd.DataFrame] | PreparedHistories,
    strategy: TradingStrategy,
    cfg: WalkForwardConfig | None = None,
    *,
    allocator: Allocator | None = None,
) -> WalkForwardResult:
    """Run `strategy` over `candles_by_symbol` (symbol -> 5m candle frame) with the walk-forward rules.

    `candles_by_symbol` may also be `prepare_histories(candles, cfg.feature_timeframe)`: the features are
    then not computed again (several strategies or configurations over the same data). `allocator`
    replaces the sizing rule (default: the strategy's `allocator()` or `cfg.sizing`).
    """
    cfg = cfg or WalkForwardConfig()
    warmup = cfg.warmup_bars or default_warmup_bars()
    risk, allocator = require_risk_objects(strategy, warmup, cfg.max_positions, cfg=cfg, allocator=allocator)
    histories = prepare_histories(candles_by_symbol, cfg.feature_timeframe)
    shared = decision_panel(histories, cfg)
    log.info("walk-forward %s: %d symbols, %d decision times", strategy.name, len(histories),
             len(shared.decision_ms))
    return run_on_panel(shared, strategy, cfg, risk, allocator)


@dataclass(frozen=True)
class DecisionPanel:
    """The information panel and the outcomes of one universe at one set of decision times.

    It depends only on the data, the decision times, the window and the warm-up (`panel_key`), never on
    the strategy, its parameters, the positions or the costs: a sweep builds it once and evaluates every
    configuration on it with `run_on_panel`, which is exactly what `run_walk_forward` does for one.
    """

    panel: pd.DataFrame
    outcomes: dict[str, np.ndarray]
    decision_ms: np.ndarray
    feature_cols: list[str]
    key: tuple


def panel_key(cfg: WalkForwardConfig) -> tuple:
    """The config fields a decision panel depends on (two configs with equal keys share one panel)."""
    return (cfg.start, cfg.end, cfg.window_ms, cfg.shift_ms, cfg.timeframe_ms,
            cfg.warmup_bars or default_warmup_bars())


def decision_panel(histories: PreparedHistories, cfg: WalkForwardConfig) -> DecisionPanel:
    """Build the shared panel of `run_walk_forward` for `cfg` (features must already be prepared)."""
    warmup = cfg.warmup_bars or default_warmup_bars()
    decision_ms = _decision_times(histories, cfg, warmup)
    panel, outcomes = build_panel(histories, decision_ms, cfg.window_ms, feature_cols=histories.feature_cols,
                                  warmup_bars=warmup, eligible_only=True)
    return DecisionPanel(panel, outcomes, decision_ms, list(histories.feature_cols), panel_key(cfg))


def run_on_panel(
    shared: DecisionPanel, strategy: TradingStrategy, cfg: WalkForwardConfig, risk: RiskManager,
    allocator: Allocator, *, per_symbol: bool = True,
) -> WalkForwardResult:
    """Everything `run_walk_forward` does after the panel: decisions, then outcomes, trades, statistics.

    `per_symbol=False` leaves `symbol_metrics` empty (a sweep that keeps only each run's metrics and window
    returns skips that table; every metric is unchanged)."""
    if shared.key != panel_key(cfg):
        raise ValueError("this decision panel was built for other dates, window, shift, timeframe or warm-up")
    evaluated = evaluate(shared.panel, strategy, risk, allocator)
    # outcomes join only after every decision is made: strategies never receive them
    outcomes = dict(shared.outcomes)  # the shared arrays stay untouched
    outcomes["return_pct"] = net_return(outcomes["gross_ratio"], cfg.cost_per_side)
    for col, values in outcomes.items():
        evaluated[col] = values
    return assemble_result(evaluated, shared.decision_ms, cfg, strategy, shared.feature_cols, per_symbol=per_symbol)


def assemble_result(
    evaluated: pd.DataFrame, decision_ms: np.ndarray, cfg: WalkForwardConfig, strategy: TradingStrategy,
    feature_cols: list[str], *, per_symbol: bool = True,
) -> WalkForwardResult:
    """Trades, windows, metrics and the capital curve of evaluated panel rows joined with their outcomes.

    `decision_ms` lists every decision time of the result (those without rows count as idle windows).
    """
    trades = _trades(evaluated, feature_cols)
    windows = _windows(evaluated, decision_ms, cfg)
    metrics, stats = _metrics(trades, windows, evaluated, decision_ms, cfg, strategy)
    windows["null_mean_return"], windows["null_std_return"] = stats.null_mean_return, stats.null_std_return
    equity, equity_metrics = portfolio_curve(windows, decision_ms, cfg)
    metrics.update(equity_metrics)
    return WalkForwardResult(
        strategy=strategy.name,
        params=dict(strategy.params),
        config=cfg,
        trades=trades,
        windows=windows,
        metrics=metrics,
        symbol_metrics=symbol_metrics(trades if per_symbol else trades.iloc[:0]),
        cost_sensitivity=stats.cost_sensitivity,
        panel=evaluated,
        equity=equity,
        monthly=stats.monthly,
        rank_ic=stats.rank_ic,
    )


def _decision_times(histories, cfg: WalkForwardConfig, warmup: int) -> np.ndarray:
    nonempty = [h for h in histories.values() if len(h.ts)]
    if not nonempty:
        return np.array([], dtype=np.int64)
    warm = [w for w in (h.warm_time_ms(warmup) for h in nonempty) if w is not None]
    data_start = min(warm) if warm else max(int(h.ts[-1]) for h in nonempty)
    data_end = max(int(h.ts[-1]) for h in nonempty) + BASE_MS  # close of the last candle
    return cfg.decision_times(data_start, data_end)


def _trades(ev: pd.DataFrame, feature_cols: list[str]) -> pd.DataFrame:
    idx = np.flatnonzero(ev["selected"].to_numpy(dtype=bool))
    times = ev["decision_ms"].to_numpy()
    order = idx[np.lexsort((ev["rank"].to_numpy()[idx], times[idx]))]  # by time, then rank (unique per time)

    def col(name: str) -> np.ndarray:  # only the selected rows of the columns a trade reports
        return ev[name].to_numpy()[order]

    void = col("void").astype(bool)
    decision = times[order]
    trades = pd.DataFrame(
        {
            "decision_time": ms_index(decision),
            "symbol": pd.Series(col("symbol"), dtype=object).astype(str).to_numpy(),
            "entry_time": ms_index(decision),
            "exit_time": ms_index(np.where(void, np.iinfo(np.int64).min, col("exit_ms")).astype(np.int64))
            .where(~void),
            "direction": "long",
            "entry_price": col("entry_price"),
            "exit_price": col("exit_price"),
            "return_pct": col("return_pct"),
            "gross_return_pct": col("gross_ratio") - 1.0,
            "max_drawdown": col("max_drawdown"),
            "weight": col("weight"),
            "rank": col("rank").astype(np.int64),
            "score": col("score"),
            "void": void,
            "n_candles": col("n_window_candles").astype(np.int64),
            "gross_ratio": col("gross_ratio"),
            **{f: col(f) for f in ["close", "bars_seen", *feature_cols]},
        }
    )
    return trades.rename(columns={"close": "bar_close"})


@reusable
def time_index(decision_ms: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Position of each row's decision time among `decision_ms` (the same for every run on one panel)."""
    return np.searchsorted(decision_ms, times)


def _windows(ev: pd.DataFrame, decision_ms: np.ndarray, cfg: WalkForwardConfig) -> pd.DataFrame:
    n = len(decision_ms)
    t_idx = time_index(decision_ms, ev["decision_ms"].to_numpy())

    def count(rows: np.ndarray) -> np.ndarray:
        return np.bincount(t_idx[rows], minlength=n).astype(np.int64)

    void = ev["void"].to_numpy(dtype=bool)
    sel = ev["selected"].to_numpy(dtype=bool)
    weight = ev["weight"].to_numpy()
    outcome = np.where(void, 0.0, ev["return_pct"].to_numpy())  # a void trade returns its capital untouched
    n_eligible = np.bincount(t_idx, minlength=n).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        benchmark = np.where(n_eligible > 0, np.bincount(t_idx, weights=outcome, minlength=n) / n_eligible, np.nan)
    names = _selected_names(ev, sel, decision_ms)
    # only selected rows carry weight: summing over them alone gives the same sums (the others add zeros)
    s_idx = t_idx[sel]
    window_return = np.bincount(s_idx, weights=(weight * outcome)[sel], minlength=n)
    contribution, equity, drawdown = equity_curve(window_return, cfg.sleeve_factor)
    out = pd.DataFrame(
        {
            "decision_time": ms_index(decision_ms),
            "n_eligible": n_eligible,
            "n_candidates": count(ev["candidate"].to_numpy(dtype=bool)),
            "n_selected": count(sel),
            "n_trades": count(sel & ~void),
            "n_void": count(sel & void),
            "selected": names,
            "invested_weight": np.bincount(s_idx, weights=(weight * ~void)[sel], minlength=n),
            "window_return": window_return,
            "benchmark_return": benchmark,
            "contribution": contribution,
            "equity": equity,
            "drawdown": drawdown,
        }
    )
    return out[WINDOW_COLUMNS]


def _selected_names(ev: pd.DataFrame, sel: np.ndarray, decision_ms: np.ndarray) -> np.ndarray:
    """Comma-joined selected symbols per decision time, in rank order."""
    times = ev["decision_ms"].to_numpy()[sel]
    ranks = ev["rank"].to_numpy()[sel]
    symbols = pd.Series(ev["symbol"].to_numpy()[sel]).astype(str).to_numpy(dtype=object)
    order = np.lexsort((ranks, times))
    times, symbols = times[order], symbols[order]
    names = np.full(len(decision_ms), "", dtype=object)
    if len(times) == 0:
        return names
    cuts = np.flatnonzero(np.r_[True, times[1:] != times[:-1]])
    joined = np.add.reduceat(symbols + ",", cuts)  # one pass over Python strings, no per-time loop
    names[np.searchsorted(decision_ms, times[cuts])] = [s[:-1] for s in joined]
    return names


def _metrics(
    trades, windows, ev, decision_ms: np.ndarray, cfg: WalkForwardConfig, strategy: TradingStrategy
) -> tuple[dict[str, Any], RunStatistics]:
    done = trades.loc[~trades["void"]]
    m: dict[str, Any] = {"strategy": strategy.name, "decision_times": len(windows)}
    m.update(trade_metrics(done["return_pct"].to_numpy(), done["max_drawdown"].to_numpy()))
    m["void_trades"] = int(trades["void"].sum())
    m.update(curve_metrics(windows, cfg.shift_hours, cfg.sleeve_factor, cfg.time_in_market))
    stats = run_statistics(trades, windows, ev, decision_ms, cfg)
    m.update(stats.metrics)
    return m, stats
