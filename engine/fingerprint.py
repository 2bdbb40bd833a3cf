"""Content fingerprint of a candle universe, so a backtest can be tied to the exact data it saw."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import pandas as pd

from engine.schemas import OHLCV_COLUMNS, timestamps_ms


def data_fingerprint(candles_by_symbol: Mapping[str, pd.DataFrame]) -> str:
    """sha256 over symbols (sorted), open times and OHLCV values; independent of extra columns."""
    digest = hashlib.sha256()
    for symbol in sorted(candles_by_symbol):
        frame = candles_by_symbol[symbol]
        digest.update(symbol.encode())
        digest.update(np.ascontiguousarray(timestamps_ms(frame)).tobytes())
        for col in OHLCV_COLUMNS:
            digest.update(np.ascontiguousarray(frame[col].to_numpy(np.float64)).tobytes())
    return digest.hexdigest()
