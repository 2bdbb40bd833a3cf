"""Turn one raw exchange answer (a page) into a validated candle frame, or a clear error naming it.

Exchanges and their libraries send surprising things: a dict where a list was expected, a timestamp
as a string, rows of the wrong length, `None` prices, high below low. Each page is checked on its own
so the error names the exchange, the symbol and the page (its `since`), and nothing malformed reaches
the concatenated result. Raw values are never echoed beyond their type and position.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd

from engine.data.base import MalformedDataError
from engine.schemas import OHLCV_COLUMNS, CandleValidationError, candles_look_valid, validate_candles
from engine.timeframes import ms_index

MIN_MS = 10**11  # 1973 in ms: smaller values are seconds or garbage
MAX_MS = 10**14  # 5138 in ms: larger values are microseconds or garbage


def page_label(exchange: str, symbol: str, since_ms: int) -> str:
    """`binance 'ETH/BTC' page since=2024-01-01T00:00:00+00:00 (1704067200000)` for messages."""
    since = pd.Timestamp(since_ms, unit="ms", tz="UTC").isoformat()
    return f"{exchange} {symbol!r} page since={since} ({since_ms})"


def _kind(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _timestamp(value: Any, where: str, row: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise MalformedDataError(f"{where}: row {row}: timestamp is a {_kind(value)}, not epoch milliseconds")
    if isinstance(value, Integral):
        ms = int(value)
    else:
        f = float(value)
        if not math.isfinite(f) or f != math.floor(f):
            raise MalformedDataError(f"{where}: row {row}: timestamp is not a whole number of milliseconds")
        ms = int(f)
    if not MIN_MS <= ms < MAX_MS:
        raise MalformedDataError(f"{where}: row {row}: timestamp {ms} is not plausible epoch milliseconds")
    return ms


def _number(value: Any, where: str, row: int, name: str) -> float:
    if value is None:
        raise MalformedDataError(f"{where}: row {row}: {name} is missing (None)")
    if isinstance(value, bool) or not isinstance(value, Real):
        raise MalformedDataError(f"{where}: row {row}: {name} is a {_kind(value)}, not a number")
    return float(value)


def rows_to_frame(raw: Any, where: str) -> pd.DataFrame:
    """ccxt-style `[[ms, open, high, low, close, volume, ...], ...]` as a frame, in arrival order."""
    if not isinstance(raw, list | tuple):
        raise MalformedDataError(
            f"{where}: expected a list of [time, open, high, low, close, volume] rows, got a {_kind(raw)}"
        )
    ms = np.empty(len(raw), dtype=np.int64)
    values = np.empty((len(raw), 5), dtype=np.float64)
    for i, row in enumerate(raw):
        if not isinstance(row, list | tuple) or len(row) < 6:
            size = f"{len(row)} fields" if isinstance(row, list | tuple) else f"a {_kind(row)}"
            raise MalformedDataError(
                f"{where}: row {i}: expected [time, open, high, low, close, volume], got {size}"
            )
        ms[i] = _timestamp(row[0], where, i)
        for j, name in enumerate(OHLCV_COLUMNS):
            values[i, j] = _number(row[j + 1], where, i, name)
    return _frame(ms, values)


def columns_to_frame(
    seconds: Any, columns: dict[str, Any], where: str, keys: dict[str, str] | None = None
) -> pd.DataFrame:
    """UDF-style parallel arrays (`t` in epoch seconds, one array per OHLCV field) as a frame; `keys`
    maps a field name to its key in the answer, for messages."""
    arrays = {"t": seconds, **columns}
    for name, arr in arrays.items():
        if not isinstance(arr, list | tuple):
            key = (keys or {}).get(name, name)
            raise MalformedDataError(f"{where}: field {key!r} is a {_kind(arr)}, not a list")
    n = len(seconds)
    if any(len(arr) != n for arr in columns.values()):
        raise MalformedDataError(f"{where}: arrays t/o/h/l/c/v have different lengths")
    ms = np.empty(n, dtype=np.int64)
    values = np.empty((n, 5), dtype=np.float64)
    for i in range(n):
        s = seconds[i]
        if isinstance(s, bool) or not isinstance(s, Real) or float(s) != math.floor(float(s)):
            raise MalformedDataError(f"{where}: row {i}: time is a {_kind(s)}, not whole epoch seconds")
        ms[i] = _timestamp(int(s) * 1000, where, i)
        for j, name in enumerate(OHLCV_COLUMNS):
            values[i, j] = _number(_udf_number(columns[name][i]), where, i, name)
    return _frame(ms, values)


def _udf_number(value: Any) -> Any:
    """UDF bodies may quote numbers ("26000000000"); anything else passes through to the type check."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _frame(ms: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    out = pd.DataFrame({"timestamp": ms_index(ms)})
    for j, name in enumerate(OHLCV_COLUMNS):
        out[name] = values[:, j]
    return out


def clean_page(frame: pd.DataFrame, symbol: str, where: str) -> tuple[pd.DataFrame, list[str]]:
    """Sort, resolve duplicates (the later row wins; conflicting values are noted) and validate.

    Returns the page and notes for the coverage report; raises MalformedDataError naming the page.
    """
    notes: list[str] = []
    if frame.empty:
        return frame, notes
    dup = frame["timestamp"].duplicated(keep=False)
    if dup.any():
        groups = frame.loc[dup].groupby("timestamp", sort=True)
        conflicting = [ts for ts, g in groups if len(g.drop_duplicates(subset=list(OHLCV_COLUMNS))) > 1]
        if conflicting:
            shown = ", ".join(t.isoformat() for t in conflicting[:3])
            notes.append(f"{where}: {len(conflicting)} candle(s) sent twice with different values "
                         f"(kept the later copy): {shown}")  # fmt: skip
        frame = frame[~frame["timestamp"].duplicated(keep="last")]
    frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
    if not candles_look_valid(frame):
        try:
            validate_candles(frame, symbol, coerce=False)
        except CandleValidationError as exc:
            raise MalformedDataError(f"{where}: {exc}") from None
    return frame, notes


def page_ms(frame: pd.DataFrame) -> np.ndarray:
    """Open times of a (cleaned) page as int64 epoch ms."""
    return frame["timestamp"].to_numpy("datetime64[ms]").astype(np.int64)


def concat_pages(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Pages in arrival order as one frame (finalize_candles de-duplicates, keeping the last copy)."""
    frames = [f for f in frames if len(f)]
    if not frames:
        from engine.schemas import empty_candles

        return empty_candles()
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
