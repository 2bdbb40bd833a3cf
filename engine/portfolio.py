"""Portfolio mode (SPEC section 10): sleeves, compounding, the capital curve and its metrics.

Capital is split into `m = window / shift` sleeves of `initial_capital / m`. Sleeve `j` trades at the
decision times `t_k` with `k mod m == j`: it stakes its current equity (compounding) or its initial share
(v1, non-compounded) with the allocator's weights, and when the window closes its equity grows by
`stake * window_return`. Conventions, marking and the metric definitions: docs/portfolio.md.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from engine.timeframes import ms_index

if TYPE_CHECKING:
    from engine.backtest.config import WalkForwardConfig

YEAR_MS = 365.25 * 24 * 3_600_000  # crypto trades every day: calendar years
EQUITY_METRICS = ("cagr", "volatility_annual", "sharpe_compounded", "sortino", "calmar",
                  "max_drawdown_compounded", "final_equity", "avg_invested_share")


def check_capital(compounding: Any, initial_capital: Any, window_ms: int, shift_ms: int) -> float:
    """Validate the compounding settings; the window must hold a whole number of shifts (or be shorter)."""
    if not isinstance(compounding, bool | np.bool_):
        raise ValueError(f"compounding must be True or False (got {compounding!r})")
    if isinstance(initial_capital, bool) or not isinstance(initial_capital, int | float | np.number) \
            or not (math.isfinite(float(initial_capital)) and float(initial_capital) > 0):
        raise ValueError(f"initial_capital must be a finite number > 0 (got {initial_capital!r})")
    if window_ms > shift_ms and window_ms % shift_ms:
        raise ValueError(f"window ({window_ms / 3_600_000:g}h) must be a whole multiple of shift "
                         f"({shift_ms / 3_600_000:g}h): capital is split into window/shift sleeves")
    return float(initial_capital)


def sleeve_count(window_ms: int, shift_ms: int) -> int:
    """`window / shift` sleeves; 1 when the windows do not overlap (shift >= window)."""
    return max(1, window_ms // shift_ms)


def simulate_sleeves(
    window_returns: np.ndarray, invested_weights: np.ndarray, sleeves: int, initial_capital: float, compounding: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Sleeve equity once each window has closed (rows = windows in time order, one column per sleeve),
    and the share of capital left in cash during each decision interval `[t_k, t_k + shift)`.

    Window `k` belongs to sleeve `k mod sleeves`. Row `k` holds every sleeve's equity after the windows
    `0..k` have closed (a sleeve with no closed window yet holds its initial share). The cash share is
    measured against the sleeves' stakes: their equity when compounding, the fixed `initial_capital / m`
    otherwise (v1 books gains and losses outside the stake, so it never invests more than the stake).
    """
    r = np.asarray(window_returns, dtype=np.float64)
    w = np.asarray(invested_weights, dtype=np.float64)
    n, m = len(r), int(sleeves)
    base = float(initial_capital) / m
    rows = np.arange(n)
    values, capital, invested = np.full((n, m), base), np.full((n, m), base), np.zeros((n, m))
    for j in range(min(m, n)):
        own = np.arange(j, n, m)  # this sleeve's windows
        after = base * (np.cumprod(1.0 + r[own]) if compounding else 1.0 + np.cumsum(r[own]))
        before = np.r_[base, after[:-1]]  # the sleeve's equity when each of its windows opens
        stake = before if compounding else np.full(len(own), base)
        latest = np.searchsorted(own, rows, side="right") - 1  # its last window opened at or before row k
        opened = latest >= 0
        at = np.maximum(latest, 0)
        values[:, j] = np.where(opened, after[at], base)
        capital[:, j] = np.where(opened, stake[at], base)
        invested[:, j] = np.where(opened, stake[at] * w[own][at], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cash_share = 1.0 - invested.sum(axis=1) / capital.sum(axis=1)
    return values, cash_share


def equity_frame(
    decision_ms: np.ndarray, window_ms: int, values: np.ndarray, cash_share: np.ndarray, initial_capital: float
) -> pd.DataFrame:
    """`result.equity`: indexed by decision time, marked when that window closes (`marked_at`)."""
    total = values.sum(axis=1) if values.size else np.zeros(len(decision_ms))
    peak = np.maximum.accumulate(np.r_[float(initial_capital), total])[1:]  # the start counts as a peak
    with np.errstate(invalid="ignore", divide="ignore"):
        drawdown = total / peak - 1.0
    frame = pd.DataFrame(
        {
            "total_equity": total,
            **{f"sleeve_{j}": values[:, j] for j in range(values.shape[1])},
            "drawdown": drawdown,
            "cash_share": cash_share,
            "marked_at": ms_index(np.asarray(decision_ms, dtype=np.int64) + int(window_ms)),
        },
        index=ms_index(np.asarray(decision_ms, dtype=np.int64)),
    )
    frame.index.name = "decision_time"
    return frame


def equity_metrics(equity: pd.DataFrame, initial_capital: float, span_ms: float) -> dict[str, float | None]:
    """CAGR, annualised volatility, Sharpe, Sortino, Calmar, max drawdown, final equity, invested share.

    Period returns are the row-to-row changes of `total_equity` (the first against `initial_capital`);
    they are annualised with `periods_per_year = n_returns / years`, `years = span / 365.25 days`, where
    the span runs from the first decision time to the close of the last window.
    """
    out: dict[str, float | None] = dict.fromkeys(EQUITY_METRICS)
    out["final_equity"] = float(initial_capital)
    total = equity["total_equity"].to_numpy(np.float64)
    if len(total) == 0 or span_ms <= 0:
        return out
    years = span_ms / YEAR_MS
    final = float(total[-1])
    growth = final / initial_capital
    with np.errstate(invalid="ignore", divide="ignore"):
        ret = total / np.r_[initial_capital, total[:-1]] - 1.0
    ret = ret[np.isfinite(ret)]
    per_year = len(ret) / years
    mdd = float(min(0.0, np.nanmin(equity["drawdown"].to_numpy(np.float64))))
    cagr = growth ** (1.0 / years) - 1.0 if growth > 0 else -1.0
    std = float(np.std(ret, ddof=1)) if len(ret) >= 2 else math.nan
    downside = float(np.sqrt(np.mean(np.minimum(ret, 0.0) ** 2))) if len(ret) else math.nan
    mean = float(np.mean(ret)) if len(ret) else math.nan
    out.update({
        "cagr": _f(cagr),
        "volatility_annual": _f(std * math.sqrt(per_year)),
        "sharpe_compounded": _f(mean / std * math.sqrt(per_year)) if std > 0 else None,
        "sortino": _f(mean / downside * math.sqrt(per_year)) if downside > 0 else None,
        "calmar": _f(cagr / -mdd) if mdd < 0 else None,
        "max_drawdown_compounded": mdd,
        "final_equity": final,
        "avg_invested_share": _f(float(np.mean(1.0 - equity["cash_share"].to_numpy(np.float64)))),
    })
    return out


def _f(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def portfolio_curve(windows: pd.DataFrame, decision_ms: np.ndarray, cfg: WalkForwardConfig
                    ) -> tuple[pd.DataFrame, dict[str, float | None]]:
    """`result.equity` and its metrics from the per-window returns and invested weights of a run."""
    m = sleeve_count(cfg.window_ms, cfg.shift_ms)
    values, cash = simulate_sleeves(windows["window_return"].to_numpy(np.float64),
                                    windows["invested_weight"].to_numpy(np.float64), m,
                                    cfg.initial_capital, cfg.compounding)
    equity = equity_frame(decision_ms, cfg.window_ms, values, cash, cfg.initial_capital)
    span = float(decision_ms[-1] + cfg.window_ms - decision_ms[0]) if len(decision_ms) else 0.0
    return equity, equity_metrics(equity, cfg.initial_capital, span)
