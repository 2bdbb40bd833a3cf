"""Synthetic markets for the sweep simulations: driftless martingales, and a planted edge that only some
configurations can use. Plain numpy, seeded, fast (a few symbols x a few weeks of 5m candles)."""

from __future__ import annotations

import numpy as np
import pandas as pd

START = pd.Timestamp("2024-01-01", tz="UTC")
PER_DAY = 288


def _frame(rng: np.random.Generator, log_returns: np.ndarray, sigma: np.ndarray) -> pd.DataFrame:
    """Candles whose closes follow `exp(cumsum(log_returns))`; highs and lows straddle open and close."""
    n = len(log_returns)
    close = 100.0 * np.exp(np.cumsum(log_returns))
    open_ = np.r_[100.0, close[:-1]]
    wick = np.abs(rng.normal(0.0, 1.0, (2, n))) * sigma * 0.5
    return pd.DataFrame({
        "timestamp": pd.date_range(START, periods=n, freq="5min"),
        "open": open_,
        "high": np.maximum(open_, close) * np.exp(wick[0]),
        "low": np.minimum(open_, close) * np.exp(-wick[1]),
        "close": close,
        "volume": rng.gamma(2.0, 50.0, n),
    })


def martingale_market(seed: int, symbols: int = 8, days: int = 36, sigma: float = 0.002) -> dict[str, pd.DataFrame]:
    """Prices that are martingales in levels: 5m log returns N(-sigma^2/2, sigma^2), so E[exit/entry] = 1
    given anything known at entry. With zero costs no selection rule has an edge."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(symbols):
        sig = sigma * np.exp(np.repeat(rng.normal(0.0, 0.3, days), PER_DAY))  # volatility regimes, still no drift
        out[f"M{i:02d}/USDT"] = _frame(rng, rng.normal(-sig**2 / 2, sig), sig)
    return out


def calm_drift_market(seed: int, symbols: int = 8, days: int = 36, calm: float = 0.001, wild: float = 0.003,
                      window_drift: float = 0.003, regime_days: int = 3) -> dict[str, pd.DataFrame]:
    """A planted edge: each symbol alternates (at random, in blocks of `regime_days`) between a calm regime
    (5m volatility `calm`) whose price drifts up by `window_drift` per 4 hours and a wild one (volatility
    `wild`) that drifts down as much. The regime shows in the ATR (about 0.6% vs 1.7% of the price on 1h
    bars), so only an ATR cap (`max_atr_pct`) between the two trades the calm drift alone."""
    rng = np.random.default_rng(seed)
    n = days * PER_DAY
    blocks = -(-days // regime_days)
    out = {}
    for i in range(symbols):
        calm_day = np.repeat(rng.random(blocks) < 0.5, regime_days * PER_DAY)[:n]
        sig = np.where(calm_day, calm, wild)
        mu = np.where(calm_day, np.log1p(window_drift), np.log1p(-window_drift)) / 48 - sig**2 / 2
        out[f"C{i:02d}/USDT"] = _frame(rng, rng.normal(mu, sig), sig)
    return out
