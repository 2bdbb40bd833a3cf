"""Features: causal per-symbol indicators on feature-timeframe bars, and cross-sectional ranks.

`compute_features(candles_5m, timeframe="1h")` is the public entry point: one row per bar, indexed by
bar open time (known only at open time + timeframe).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.bars import Bars, aggregate_candles
from engine.features.base import FeatureComputer
from engine.features.cross_section import cross_sectional_arrays, group_zscore
from engine.features.registry import (
    default_warmup_bars,
    feature_names,
    get_feature_computers,
    register_feature_computer,
)
from engine.schemas import validate_candles
from engine.timeframes import ms_index

__all__ = [
    "FeatureComputer",
    "compute_feature_arrays",
    "cross_sectional_arrays",
    "compute_features",
    "default_warmup_bars",
    "feature_names",
    "get_feature_computers",
    "group_zscore",
    "register_feature_computer",
]


def compute_feature_arrays(bars: Bars, computers: list[FeatureComputer] | None = None) -> dict[str, np.ndarray]:
    """All features of all computers over the whole bar history, computed once (the hot path)."""
    out: dict[str, np.ndarray] = {}
    for computer in computers or get_feature_computers():
        if len(bars) == 0:
            out.update({c: np.array([], dtype=np.float64) for c in computer.columns})
        else:
            out.update(computer.compute(bars))
    return out


def compute_features(
    candles: pd.DataFrame,
    timeframe: str = "1h",
    computers: list[FeatureComputer] | None = None,
    *,
    symbol: str | None = None,
) -> pd.DataFrame:
    """Features for one symbol's 5m candles on `timeframe` bars, indexed by bar open time (UTC).

    Row `H` is known only at `H + timeframe`: the last row may describe a bar that is still forming at the
    end of the data. The backtest and rankings apply that closed-bar rule; apply it too when using this
    frame directly (`features.loc[features.index <= t - timeframe]`).
    """
    candles = validate_candles(candles, symbol)
    bars = aggregate_candles(candles, timeframe)
    arrays = compute_feature_arrays(bars, computers)
    return pd.DataFrame(arrays, index=ms_index(bars.open_ms).rename("timestamp"))
