"""Synthetic 5m markets for the calibration tests, generated directly with numpy (fast, deterministic).

`martingale_market`: prices are martingales in levels. Each 5m log return is `beta * m_t + s_t * e_t -
sigma_t^2 / 2` with Gaussian `m_t`, `e_t` and a per-day volatility regime `s_t`, so `E[close_{t+1} /
close_t] = 1` exactly and every causal selection has a true mean window return of exactly 0 at zero cost.
A common market factor makes symbols co-move like crypto does; daily volatility regimes give the fat tails
and volatility clustering that make naive standard errors wrong.

`trending_market` plants an edge: the same market plus a drift that persists for `regime_hours` (an
independent Gaussian level per symbol and regime), so recent trend (ema_dist, trend_slope, the MACD
histogram slope) predicts the next window's return and both registered strategies' scores pick it up.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

START = pd.Timestamp("2024-01-01", tz="UTC")
BARS_PER_DAY = 288
MARKET_VOL = 0.0012  # 5m std of the common factor
BETA = 0.5
IDIO_VOL = 0.0025  # typical 5m idiosyncratic std (about 0.9% per hour): passes the 5% ATR gate


def _market(seed: int, n_symbols: int, days: int, drift_scale: float, regime_hours: int) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n = days * BARS_PER_DAY
    ts = pd.date_range(START, periods=n, freq="5min")
    common = rng.normal(0.0, MARKET_VOL, n)
    regime_steps = regime_hours * 12
    out = {}
    for i in range(n_symbols):
        vol = IDIO_VOL * np.exp(np.repeat(rng.normal(0.0, 0.3, days), BARS_PER_DAY))
        variance = (BETA * MARKET_VOL) ** 2 + vol**2
        log_r = BETA * common + rng.normal(0.0, 1.0, n) * vol - variance / 2
        if drift_scale:
            level = np.repeat(rng.normal(0.0, 1.0, n // regime_steps + 1), regime_steps)[:n]
            log_r += drift_scale * level * vol
        close = 100.0 * np.exp(np.cumsum(log_r))
        open_ = np.r_[100.0, close[:-1]]
        wick = np.abs(rng.normal(0.0, 1.0, n)) * vol
        out[f"S{i:02d}/USDT"] = pd.DataFrame({
            "timestamp": ts,
            "open": open_,
            "high": np.maximum(open_, close) * (1 + wick),
            "low": np.minimum(open_, close) * (1 - wick),
            "close": close,
            "volume": rng.gamma(2.0, 50.0, n),
        })
    return out


def martingale_market(seed: int, n_symbols: int = 10, days: int = 51) -> dict[str, pd.DataFrame]:
    """Driftless martingale prices (true mean window return 0 for any causal strategy at zero cost)."""
    return _market(seed, n_symbols, days, 0.0, 1)


def trending_market(
    seed: int, n_symbols: int = 10, days: int = 51, drift_scale: float = 0.12, regime_hours: int = 12
) -> dict[str, pd.DataFrame]:
    """Martingale noise plus persistent drift regimes (a real, learnable edge)."""
    return _market(seed, n_symbols, days, drift_scale, regime_hours)
