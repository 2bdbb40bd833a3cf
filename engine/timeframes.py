"""Timeframe strings ("5m", "1h", "4h", "1d") as integer milliseconds, the engine's unit of time."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
BASE_MS = 5 * MINUTE_MS

_UNITS = {"m": MINUTE_MS, "min": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS}
_PATTERN = re.compile(r"^\s*(\d+)\s*(m|min|h|d)\s*$", re.IGNORECASE)


def timeframe_ms(timeframe: str) -> int:
    """Parse a timeframe; it must be a positive multiple of the 5m base candle."""
    match = _PATTERN.match(str(timeframe))
    if not match:
        raise ValueError(f"invalid timeframe {timeframe!r}: use forms like '5m', '15m', '1h', '4h', '1d'")
    ms = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if ms <= 0 or ms % BASE_MS:
        raise ValueError(f"invalid timeframe {timeframe!r}: must be a positive multiple of 5m")
    return ms


def hours_ms(hours: float, what: str) -> int:
    """Hours (possibly fractional) as ms, required to be a positive multiple of 5 minutes."""
    ms = round(float(hours) * HOUR_MS)
    if ms <= 0 or ms % BASE_MS or abs(ms - float(hours) * HOUR_MS) > 1e-6:
        raise ValueError(f"{what} must be a positive multiple of 5 minutes (got {hours!r} hours)")
    return ms


def to_utc(value: object, what: str) -> pd.Timestamp:
    """A user time as a UTC Timestamp; naive values are read as UTC (documented convention)."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: cannot parse {value!r} as a time ({exc})") from exc
    if ts is pd.NaT:
        raise ValueError(f"{what}: missing time")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def ms_to_timestamp(ms: int) -> pd.Timestamp:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC")


def ms_index(values) -> pd.DatetimeIndex:
    """Int64 epoch ms -> tz-aware UTC nanosecond DatetimeIndex (the candle schema's dtype).

    A plain numpy cast: several times faster than `pd.to_datetime(unit="ms")`, and the int64 minimum stays
    NaT.
    """
    ms = np.asarray(values, dtype=np.int64).astype("datetime64[ms]")
    return pd.DatetimeIndex(ms.astype("datetime64[ns]")).tz_localize("UTC")
