"""Small shared utilities for the engine proof tests: the real sample, truncation, a reference
aggregation written independently of `engine.bars`, and frame comparisons.

Nothing here imports the engine's own loaders or aggregation, so the tests check the engine against
code that shares none of its implementation.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "engine" / "sample_data"
SAMPLE_BASES = ("ADA", "DASH", "ETH", "LTC", "NXT", "XLM")
SAMPLE_SYMBOLS = tuple(f"{b}/BTC" for b in SAMPLE_BASES)
FIVE_MIN = pd.Timedelta(minutes=5)

#: explicit bounds spanning the whole sample (first candle 2018-01-10 04:55, last close 2018-01-30 04:55)
SAMPLE_START = pd.Timestamp("2018-01-10 00:00", tz="UTC")
SAMPLE_END = pd.Timestamp("2018-01-30 05:00", tz="UTC")

#: panel / trade columns that describe the future (the trade outcome), never a decision input
OUTCOME_COLUMNS = frozenset(
    {"exit_price", "exit_ms", "exit_time", "max_drawdown", "n_window_candles", "n_candles", "void",
     "gross_ratio", "return_pct", "gross_return_pct"}
)


@cache
def _read_sample(base: str) -> pd.DataFrame:
    df = pd.read_csv(SAMPLE_DIR / f"{base}_BTC-5m.csv.gz")
    df["timestamp"] = pd.to_datetime(df["timestamp"], unit="ms", utc=True)
    for col in ("open", "high", "low", "close", "volume"):
        df[col] = df[col].astype("float64")
    return df.sort_values("timestamp").reset_index(drop=True)


def load_candles(symbol: str) -> pd.DataFrame:
    """One symbol's real 5m candles ("ADA/BTC" or "ADA"); a fresh copy the caller may modify."""
    return _read_sample(symbol.split("/")[0].upper()).copy()


def load_universe(symbols: tuple[str, ...] = SAMPLE_SYMBOLS) -> dict[str, pd.DataFrame]:
    return {s: load_candles(s) for s in symbols}


def truncate_at(candles_by_symbol: dict[str, pd.DataFrame], cut: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The information set at `cut`: only candles with open_time + 5m <= cut."""
    return {
        s: df.loc[df["timestamp"] + FIVE_MIN <= cut].reset_index(drop=True) for s, df in candles_by_symbol.items()
    }


def reference_bars(candles: pd.DataFrame, timeframe: str = "1h") -> pd.DataFrame:
    """Aggregation straight from the SPEC with a pandas groupby on the floored open time."""
    key = candles["timestamp"].dt.floor(timeframe)
    g = candles.assign(quote_volume=candles["close"] * candles["volume"]).groupby(key, sort=True)
    bars = pd.DataFrame(
        {
            "open": g["open"].first(),
            "high": g["high"].max(),
            "low": g["low"].min(),
            "close": g["close"].last(),
            "volume": g["volume"].sum(),
            "quote_volume": g["quote_volume"].sum(),
            "n_candles": g.size(),
        }
    )
    bars.index.name = "timestamp"
    return bars


def warm_time(candles: pd.DataFrame, warmup_bars: int, timeframe: str = "1h") -> pd.Timestamp:
    """The first time at which `warmup_bars` feature bars have closed (bar open + tf)."""
    bars = reference_bars(candles, timeframe)
    return bars.index[warmup_bars - 1] + pd.Timedelta(timeframe)


def ceil_to_grid(ts: pd.Timestamp, step: str = "2h") -> pd.Timestamp:
    return ts.ceil(step)


def decision_columns(frame: pd.DataFrame) -> list[str]:
    """Columns that are inputs or results of a decision (everything except the outcome)."""
    return [c for c in frame.columns if c not in OUTCOME_COLUMNS]


def canonical(frame: pd.DataFrame, keys: tuple[str, ...] = ("decision_time", "symbol")) -> pd.DataFrame:
    """Rows sorted by keys, symbol as plain str, fresh index: comparable across runs."""
    out = frame.copy()
    if "symbol" in out.columns:
        out["symbol"] = out["symbol"].astype(str)
    return out.sort_values(list(keys)).reset_index(drop=True)


def assert_same_rows(left: pd.DataFrame, right: pd.DataFrame, columns: list[str], what: str) -> None:
    """Exact equality (NaN == NaN) of the given columns, with a message naming the first difference."""
    a, b = canonical(left)[columns], canonical(right)[columns]
    assert len(a) == len(b), f"{what}: {len(a)} rows vs {len(b)} rows"
    for col in columns:
        x, y = a[col], b[col]
        if pd.api.types.is_float_dtype(x) or pd.api.types.is_float_dtype(y):
            xv, yv = x.to_numpy(np.float64), y.to_numpy(np.float64)
            same = (xv == yv) | (np.isnan(xv) & np.isnan(yv))
        else:
            same = (x.astype(object).to_numpy() == y.astype(object).to_numpy()) | (x.isna() & y.isna()).to_numpy()
        if not same.all():
            i = int(np.flatnonzero(~same)[0])
            raise AssertionError(
                f"{what}: column {col!r} differs at row {i} "
                f"({canonical(left).loc[i, ['decision_time', 'symbol']].tolist()}): {x.iloc[i]!r} != {y.iloc[i]!r}"
            )
