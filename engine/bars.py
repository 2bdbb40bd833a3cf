"""Aggregation of 5m candles into higher-timeframe bars, in memory only.

A bar stamped `H` aggregates the 5m candles with open time in `[H, H + tf)` (first open, max high, min
low, last close, summed volume) and is usable at time `t` only when `H + tf <= t`. Missing hours stay
missing: no bar is invented for an interval without candles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.schemas import timestamps_ms
from engine.timeframes import ms_index, timeframe_ms


@dataclass(frozen=True)
class Bars:
    """Bars as plain arrays (the hot path); `frame()` gives the pandas view."""

    open_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    quote_volume: np.ndarray  # sum of close * volume over the 5m candles (quote-currency volume)
    n_candles: np.ndarray
    tf_ms: int

    def __len__(self) -> int:
        return len(self.open_ms)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "open": self.open,
                "high": self.high,
                "low": self.low,
                "close": self.close,
                "volume": self.volume,
                "quote_volume": self.quote_volume,
                "n_candles": self.n_candles,
            },
            index=ms_index(self.open_ms).rename("timestamp"),
        )


def aggregate_arrays(
    ts_ms: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    tf_ms: int,
) -> Bars:
    """Aggregate sorted 5m arrays; one bar per occupied `tf` bucket on the UTC epoch grid."""
    if len(ts_ms) == 0:
        empty = np.array([], dtype=np.float64)
        return Bars(np.array([], dtype=np.int64), empty, empty, empty, empty, empty, empty,
                    np.array([], dtype=np.int64), tf_ms)
    bucket = ts_ms - np.mod(ts_ms, tf_ms)
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(ts_ms)] - 1
    return Bars(
        open_ms=bucket[starts],
        open=open_[starts],
        high=np.maximum.reduceat(high, starts),
        low=np.minimum.reduceat(low, starts),
        close=close[ends],
        volume=np.add.reduceat(volume, starts),
        quote_volume=np.add.reduceat(close * volume, starts),
        n_candles=ends - starts + 1,
        tf_ms=tf_ms,
    )


def aggregate(candles: pd.DataFrame, timeframe: str = "1h") -> pd.DataFrame:
    """5m candle frame (validated, sorted) -> bar frame indexed by bar open time."""
    return aggregate_candles(candles, timeframe).frame()


def aggregate_candles(candles: pd.DataFrame, timeframe: str = "1h") -> Bars:
    return aggregate_arrays(
        timestamps_ms(candles),
        *(candles[c].to_numpy(np.float64) for c in ("open", "high", "low", "close", "volume")),
        tf_ms=timeframe_ms(timeframe),
    )


def closed_bar_count(bar_open_ms: np.ndarray, tf_ms: int, t_ms: np.ndarray) -> np.ndarray:
    """Number of bars closed at each time `t` (bars with `H + tf <= t`); the last usable bar is count-1."""
    return np.searchsorted(bar_open_ms, np.asarray(t_ms) - tf_ms, side="right")
