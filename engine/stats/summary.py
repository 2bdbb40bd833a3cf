"""Every statistic of one walk-forward run, from its panel and per-window rows (called by the backtest).

Per-window aggregates (completed trades, wins, gains, losses) are computed once; each bootstrap statistic
is then one gather over the shared (samples x windows) index matrix, never a pass over trades per resample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from engine.metrics import equity_curve
from engine.reuse import reusable
from engine.stats.bootstrap import BlockResamples, block_length, mean_test, percentile_interval
from engine.stats.costs import cost_sensitivity
from engine.stats.null import excess_over_null, window_null
from engine.stats.ranking import newey_west_tstat, quantile_spread, rank_ic_series
from engine.stats.sharpe import probabilistic_sharpe, sharpe_ratio
from engine.timeframes import ms_index

if TYPE_CHECKING:
    from engine.backtest.config import WalkForwardConfig

MONTHLY_COLUMNS = ["month", "windows", "trades", "win_rate", "mean_window_return", "total_return",
                   "benchmark_total_return", "max_drawdown"]
RANK_IC_COLUMNS = ["decision_time", "rank_ic", "n_scored"]
#: the bootstrap interval keys, `<name>_ci_low` / `<name>_ci_high`
INTERVAL_NAMES = ("mean_window_return", "median_window_return", "win_rate", "profit_factor", "sharpe")


@dataclass
class RunStatistics:
    """Metrics plus the tables a report draws: cost levels, months, rank IC over time, null band."""

    metrics: dict[str, Any]
    cost_sensitivity: pd.DataFrame
    monthly: pd.DataFrame
    rank_ic: pd.DataFrame
    null_mean_return: np.ndarray = field(repr=False)
    null_std_return: np.ndarray = field(repr=False)


def _f(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def periods_per_year(shift_hours: float) -> float:
    """Decision times per year: the Sharpe annualisation is sqrt(365 * 24 / shift_hours)."""
    return 365.0 * 24.0 / float(shift_hours)


def _symbol_codes(symbol: pd.Series) -> np.ndarray:
    """Integer codes that sort like the symbol names (the panel's categories are sorted names)."""
    if isinstance(symbol.dtype, pd.CategoricalDtype) and symbol.cat.categories.is_monotonic_increasing:
        return symbol.cat.codes.to_numpy(np.int64)
    return pd.factorize(symbol.astype(str), sort=True)[0]


def _per_window(ev: pd.DataFrame, decision_ms: np.ndarray) -> dict[str, np.ndarray]:
    """Per decision time: completed trades, wins, summed gains and |losses|; picks' weights and squares."""
    n = len(decision_ms)
    selected = ev["selected"].to_numpy(dtype=bool)
    done = selected & ~ev["void"].to_numpy(dtype=bool)
    t_all = np.searchsorted(decision_ms, ev["decision_ms"].to_numpy())
    r = ev["return_pct"].to_numpy(np.float64)[done]
    weight = ev["weight"].to_numpy(np.float64)[selected]

    def per_time(t_idx: np.ndarray, w: np.ndarray) -> np.ndarray:
        return np.bincount(t_idx, weights=np.asarray(w, dtype=np.float64), minlength=n)

    t_done, t_sel = t_all[done], t_all[selected]
    return {"trades": per_time(t_done, np.ones(len(r))), "wins": per_time(t_done, r > 0),
            "gains": per_time(t_done, np.where(r > 0, r, 0.0)), "losses": per_time(t_done, np.where(r < 0, -r, 0.0)),
            "weight": per_time(t_sel, weight), "weight_sq": per_time(t_sel, weight**2)}


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den  # 0/0 -> NaN (undefined, dropped), x/0 -> inf (profit factor without losses)


def _resampled_sharpe(x: np.ndarray, rs: BlockResamples, ppy: float) -> np.ndarray:
    """Annualised Sharpe (ddof=1) of every resample, from resampled sums of x and x^2."""
    n = rs.n
    mean = rs.totals(x) / n
    var = np.maximum(rs.totals(x * x) - n * mean**2, 0.0) / (n - 1)
    sd = np.sqrt(var)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sd > 1e-15 * max(1.0, float(np.abs(x).max())), mean / sd * math.sqrt(ppy), np.nan)


def tail_metrics(window_return: np.ndarray) -> dict[str, float | int | None]:
    """5% quantile and expected shortfall of window returns; longest run of losing windows."""
    wr = np.asarray(window_return, dtype=np.float64)
    if len(wr) == 0:
        return {"return_q05": None, "cvar_05": None, "longest_losing_streak": None}
    q05 = float(np.quantile(wr, 0.05))
    losing = np.r_[False, wr < 0, False].astype(np.int8)
    edges = np.flatnonzero(np.diff(losing))
    runs = edges[1::2] - edges[::2]
    return {"return_q05": q05, "cvar_05": float(wr[wr <= q05].mean()),
            "longest_losing_streak": int(runs.max()) if len(runs) else 0}


def _drawdown_from_zero(contribution: np.ndarray) -> float:
    _, _, drawdown = equity_curve(contribution, 1.0)
    return float(min(0.0, drawdown.min())) if len(drawdown) else 0.0


@reusable
def month_labels(decision_ns: np.ndarray) -> np.ndarray:
    """'2024-03' for each decision time (epoch ns, UTC calendar month); the same for every run of a sweep."""
    return pd.DatetimeIndex(np.asarray(decision_ns, dtype="datetime64[ns]")).strftime("%Y-%m").to_numpy()


def monthly_table(windows: pd.DataFrame, per_window: dict[str, np.ndarray], sleeve_factor: float) -> pd.DataFrame:
    """One row per UTC calendar month of decision times (a window belongs to the month it starts in)."""
    if len(windows) == 0:
        return pd.DataFrame(columns=MONTHLY_COLUMNS)
    month = month_labels(pd.DatetimeIndex(windows["decision_time"]).asi8)
    bench = windows["benchmark_return"].fillna(0.0).to_numpy(np.float64) * sleeve_factor
    rows = []
    for m in pd.unique(month):
        sel = month == m
        trades, wins = per_window["trades"][sel].sum(), per_window["wins"][sel].sum()
        contribution = windows["contribution"].to_numpy(np.float64)[sel]
        rows.append({
            "month": str(m),
            "windows": int(sel.sum()),
            "trades": int(trades),
            "win_rate": float(wins / trades) if trades else np.nan,
            "mean_window_return": float(windows["window_return"].to_numpy()[sel].mean()),
            "total_return": float(contribution.sum()),
            "benchmark_total_return": float(bench[sel].sum()),
            "max_drawdown": _drawdown_from_zero(contribution),
        })
    return pd.DataFrame(rows, columns=MONTHLY_COLUMNS)


def _bootstrap_metrics(
    wr: np.ndarray, excess: np.ndarray, per_window: dict[str, np.ndarray], cfg: WalkForwardConfig, block: int
) -> dict[str, Any]:
    """Intervals of the interval statistics and the null test, all on one set of resamples."""
    out: dict[str, Any] = {f"{name}_ci_{end}": None for name in INTERVAL_NAMES for end in ("low", "high")}
    out.update({"null_std": None, "null_p_value": None})
    samples = int(cfg.bootstrap_samples)
    if len(wr) < 2 or samples <= 0:
        return out
    rs = BlockResamples(len(wr), block=block, samples=samples, seed=int(cfg.seed))
    conf = cfg.confidence
    mean = mean_test(wr, rs, conf)
    out["mean_window_return_ci_low"], out["mean_window_return_ci_high"] = mean.ci_low, mean.ci_high
    out["median_window_return_ci_low"], out["median_window_return_ci_high"] = percentile_interval(
        rs.medians(wr), conf)
    out["sharpe_ci_low"], out["sharpe_ci_high"] = percentile_interval(
        _resampled_sharpe(wr, rs, periods_per_year(cfg.shift_hours)), conf)
    trades = rs.totals(per_window["trades"])
    if per_window["trades"].sum() > 0:
        out["win_rate_ci_low"], out["win_rate_ci_high"] = percentile_interval(
            _ratio(rs.totals(per_window["wins"]), trades), conf)
    if per_window["losses"].sum() > 0:
        out["profit_factor_ci_low"], out["profit_factor_ci_high"] = percentile_interval(
            _ratio(rs.totals(per_window["gains"]), rs.totals(per_window["losses"])), conf)
    null = mean_test(excess, rs, conf)
    out["null_std"] = _f(null.std_error)
    out["null_p_value"] = null.p_greater
    return out


def run_statistics(
    trades: pd.DataFrame, windows: pd.DataFrame, ev: pd.DataFrame, decision_ms: np.ndarray, cfg: WalkForwardConfig
) -> RunStatistics:
    """Intervals, null test, Sharpe/PSR, tails, benchmark, rank IC, quintile spread, cost and month tables."""
    m: dict[str, Any] = {}
    wr = windows["window_return"].to_numpy(np.float64)
    n = len(wr)
    overlap = max(1, round(cfg.window_ms / cfg.shift_ms))
    per_window = _per_window(ev, decision_ms)

    times = ev["decision_ms"].to_numpy()
    void = ev["void"].to_numpy(dtype=bool)
    outcome = np.where(void, 0.0, ev["return_pct"].to_numpy(np.float64))
    null_mean, null_std = window_null(times, outcome, decision_ms, windows["n_selected"].to_numpy(),
                                      per_window["weight"], per_window["weight_sq"])
    excess = excess_over_null(wr, null_mean)

    block = block_length(np.column_stack([wr, excess]), overlap) if n else 1
    m["bootstrap_block"] = block
    m["median_window_return"] = float(np.median(wr)) if n else None
    m.update(_bootstrap_metrics(wr, excess, per_window, cfg, block))
    m["null_mean_window_return"] = float(null_mean.mean()) if n else None

    ppy = periods_per_year(cfg.shift_hours)
    contribution = windows["contribution"].to_numpy(np.float64)
    m["sharpe"] = sharpe_ratio(contribution, ppy)
    m["probabilistic_sharpe"] = probabilistic_sharpe(contribution)
    m.update(tail_metrics(wr))
    done = ev["selected"].to_numpy(dtype=bool) & ~void
    m["worst_trade"] = float(ev["return_pct"].to_numpy()[done].min()) if done.any() else None

    bench = windows["benchmark_return"].fillna(0.0).to_numpy(np.float64)
    _, bench_equity, bench_dd = equity_curve(bench, cfg.sleeve_factor)
    any_eligible = bool((windows["n_eligible"] > 0).any())
    m["benchmark_mean_window_return"] = float(bench.mean()) if any_eligible else None
    m["benchmark_total_return"] = float(bench_equity[-1]) if any_eligible else None
    m["benchmark_max_drawdown_aggregated"] = float(min(0.0, bench_dd.min())) if any_eligible else None

    forward = np.where(void, np.nan, ev["return_pct"].to_numpy(np.float64))
    score = ev["score"].to_numpy(np.float64)
    symbols = _symbol_codes(ev["symbol"])
    ic_times, ic, n_scored = rank_ic_series(times, score, forward, symbols)
    m["rank_ic_mean"] = float(ic.mean()) if len(ic) else None
    m["rank_ic_count"] = int(len(ic))
    m["rank_ic_positive_share"] = float((ic > 0).mean()) if len(ic) else None
    m["rank_ic_tstat"] = newey_west_tstat(ic, min_bandwidth=2 * overlap)
    m["quantile_spread_mean"] = quantile_spread(times, symbols, score, forward)
    rank_ic = pd.DataFrame({"decision_time": ms_index(ic_times), "rank_ic": ic, "n_scored": n_scored},
                           columns=RANK_IC_COLUMNS)

    costs, break_even = cost_sensitivity(trades, n, cfg.cost_levels_bps, cfg.slippage_bps, cfg.sleeve_factor)
    m["break_even_fee_bps"] = break_even
    for row in costs.itertuples(index=False):
        m[f"mean_window_return_at_{row.fee_bps:g}bps"] = row.mean_window_return
    return RunStatistics(m, costs, monthly_table(windows, per_window, cfg.sleeve_factor), rank_ic, null_mean, null_std)
