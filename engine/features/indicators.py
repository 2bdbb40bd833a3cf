"""The v1 feature set (SPEC section 3) on TA-Lib kernels, grouped by what they measure."""

from __future__ import annotations

import numpy as np
import talib

from engine.bars import Bars
from engine.features.base import FeatureComputer
from engine.timeframes import DAY_MS

#: relative size below which a TA-Lib running-sum result is rounding residue
_ROUNDING = 1e-9


class Momentum(FeatureComputer):
    """RSI(14) Wilder-smoothed and the MACD(12, 26, 9) histogram with its first difference."""

    name = "momentum"
    columns = ("rsi", "macd_hist", "macd_hist_slope")
    longest_period = 26

    def compute(self, bars: Bars) -> dict[str, np.ndarray]:
        close = bars.close
        _, _, hist = talib.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9)
        slope = np.full_like(hist, np.nan)
        slope[1:] = hist[1:] - hist[:-1]
        return {"rsi": talib.RSI(close, timeperiod=14), "macd_hist": hist, "macd_hist_slope": slope}


class Trend(FeatureComputer):
    """EMA(12)/EMA(26) - 1 and the least-squares slope of log close over 20 bars (log return per bar)."""

    name = "trend"
    columns = ("ema_dist", "trend_slope")
    longest_period = 26

    def compute(self, bars: Bars) -> dict[str, np.ndarray]:
        close = bars.close
        ema_dist = talib.EMA(close, timeperiod=12) / talib.EMA(close, timeperiod=26) - 1.0
        return {"ema_dist": ema_dist, "trend_slope": talib.LINEARREG_SLOPE(np.log(close), timeperiod=20)}


class Volatility(FeatureComputer):
    """ATR(14) as a fraction of close, and the Bollinger(20, 2) band width relative to the middle band."""

    name = "volatility"
    columns = ("atr_pct", "bb_width")
    longest_period = 20

    def compute(self, bars: Bars) -> dict[str, np.ndarray]:
        atr = talib.ATR(bars.high, bars.low, bars.close, timeperiod=14)
        upper, middle, lower = talib.BBANDS(bars.close, timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0)
        return {"atr_pct": atr / bars.close, "bb_width": (upper - lower) / middle}


class Liquidity(FeatureComputer):
    """Volume z-score and trend on bars, and the quote-currency volume of the trailing 24 hours."""

    name = "liquidity"
    columns = ("volume_z", "volume_trend", "quote_volume_24h")
    longest_period = 20

    def compute(self, bars: Bars) -> dict[str, np.ndarray]:
        volume = bars.volume
        sma5 = talib.SMA(volume, timeperiod=5)
        sma20 = talib.SMA(volume, timeperiod=20)
        std20 = talib.STDDEV(volume, timeperiod=20, nbdev=1.0)  # population std, as TA-Lib defines it
        # TA-Lib's running sums leave ~1e-16 residues after a zero-volume stretch; anything below this
        # causal scale is zero, so flat or empty volume gives z = 0 and an undefined trend, not noise
        tiny = _ROUNDING * np.maximum.accumulate(volume)
        with np.errstate(divide="ignore", invalid="ignore"):
            volume_z = np.where(std20 > tiny, (volume - sma20) / std20, np.where(np.isnan(std20), np.nan, 0.0))
            volume_trend = np.where(sma20 > tiny, np.where(sma5 > tiny, sma5, 0.0) / sma20 - 1.0, np.nan)
        return {
            "volume_z": volume_z,
            "volume_trend": volume_trend,
            "quote_volume_24h": trailing_quote_volume(bars, DAY_MS),
        }


def trailing_quote_volume(bars: Bars, span_ms: int) -> np.ndarray:
    """Sum of quote volume over the bars lying inside the `span` that ends at each bar's close.

    Time-based, so a gap in the data shrinks the sum instead of reaching further back; NaN until the
    history covers a whole span.
    """
    open_ms = bars.open_ms
    if len(open_ms) == 0:
        return np.array([], dtype=np.float64)
    window_start = open_ms + bars.tf_ms - span_ms
    first = np.searchsorted(open_ms, window_start, side="left")
    csum = np.r_[0.0, np.cumsum(bars.quote_volume)]
    out = csum[np.arange(1, len(open_ms) + 1)] - csum[first]
    out[window_start < open_ms[0]] = np.nan
    return out
