"""Backtest metrics (SPEC section 3): per trade, per window curve, per symbol.

Undefined values are None (e.g. profit factor with no losing trade, win rate with no trade), never a
silent 0 or inf.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def _f(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def trade_metrics(returns: np.ndarray, drawdowns: np.ndarray) -> dict[str, float | int | None]:
    """Metrics over completed (non-void) trades."""
    r = np.asarray(returns, dtype=np.float64)
    n = len(r)
    gains = r[r > 0].sum()
    losses = r[r < 0].sum()
    return {
        "trade_count": int(n),
        "win_rate": _f(float((r > 0).mean())) if n else None,
        "avg_return": _f(float(r.mean())) if n else None,
        "median_return": _f(float(np.median(r))) if n else None,
        "profit_factor": _f(float(gains / -losses)) if losses < 0 else None,
        "max_drawdown_trade": _f(float(np.min(drawdowns))) if n else None,
    }


def equity_curve(window_returns: np.ndarray, sleeve_factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-compounded sleeve curve: contribution, cumulative equity (from 0) and drawdown from peak."""
    contribution = np.asarray(window_returns, dtype=np.float64) * sleeve_factor
    equity = np.cumsum(contribution)
    peak = np.maximum.accumulate(np.maximum(equity, 0.0)) if len(equity) else equity
    return contribution, equity, equity - peak


def curve_metrics(
    windows: pd.DataFrame, shift_hours: float, sleeve_factor: float, time_in_market: float = 1.0
) -> dict[str, float | int | None]:
    """Metrics over the per-decision-time portfolio (coverage, exposure, turnover, aggregated drawdown)."""
    n = len(windows)
    if n == 0:
        return {
            "window_count": 0, "coverage": None, "mean_window_return": None, "total_return": None,
            "max_drawdown_aggregated": None, "exposure": None, "turnover": None,
        }
    invested = windows["invested_weight"].to_numpy(np.float64)
    windows_per_day = 24.0 / float(shift_hours)
    return {
        "window_count": int(n),
        "coverage": float((windows["n_trades"].to_numpy() > 0).mean()),
        "mean_window_return": float(windows["window_return"].mean()),
        "total_return": float(windows["equity"].iloc[-1]),
        "max_drawdown_aggregated": float(min(0.0, windows["drawdown"].min())),
        # share of capital in the market, averaged over time (each sleeve holds `invested` of its capital;
        # when shift > window the capital also sits idle between windows)
        "exposure": float(invested.mean() * time_in_market),
        # capital bought + sold per day, as a multiple of total capital
        "turnover": float((2.0 * invested * sleeve_factor).mean() * windows_per_day),
    }


def symbol_metrics(trades: pd.DataFrame) -> pd.DataFrame:
    """The trade metrics per symbol (completed trades only), symbols in name order."""
    cols = ["symbol", "trade_count", "win_rate", "avg_return", "median_return", "profit_factor", "max_drawdown_trade"]
    done = trades.loc[~trades["void"].to_numpy(dtype=bool)] if len(trades) else trades
    if len(done) == 0:
        return pd.DataFrame([], columns=cols)
    symbols = done["symbol"].astype(str).to_numpy()
    order = np.argsort(symbols, kind="stable")  # each symbol's trades keep their order
    names = symbols[order]
    returns = done["return_pct"].to_numpy()[order]
    drawdowns = done["max_drawdown"].to_numpy()[order]
    cuts = np.flatnonzero(np.r_[True, names[1:] != names[:-1]])
    rows = [{"symbol": str(names[a]), **trade_metrics(returns[a:b], drawdowns[a:b])}
            for a, b in zip(cuts, np.r_[cuts[1:], len(names)], strict=True)]
    return pd.DataFrame(rows, columns=cols)
