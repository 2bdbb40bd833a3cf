"""Helpers every provider shares: time bounds and the final clean-up before a frame leaves a provider.

Keeping the "drop the open candle, de-duplicate, sort, restrict, validate" step in one place means every
source obeys exactly the same contract, and a fix here fixes all of them.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from engine.schemas import CANDLE_COLUMNS, empty_candles, timestamps_ms, validate_candles
from engine.timeframes import BASE_MS, to_utc

Clock = Callable[[], pd.Timestamp]


def utc_now() -> pd.Timestamp:
    """Wall clock in UTC (the default `now` of every provider)."""
    return pd.Timestamp.now(tz="UTC")


def to_ms(value: pd.Timestamp | str | object) -> int:
    """A time bound as integer epoch milliseconds (UTC); naive values are read as UTC."""
    return int(to_utc(value, "time bound").as_unit("ms").asm8.view("i8"))


def ceil_grid(ms: int) -> int:
    """First 5m grid point at or after `ms`."""
    return -(-ms // BASE_MS) * BASE_MS


def closed_bound_ms(now_ms: int) -> int:
    """Exclusive upper bound on open times of candles closed at `now` (open + 5m <= now)."""
    return (now_ms - BASE_MS) // BASE_MS * BASE_MS + BASE_MS


def resolve_now(now: pd.Timestamp | None, clock: Clock | None) -> int:
    """`now` (explicit) > injected clock > wall clock, as epoch ms."""
    if now is not None:
        return to_ms(now)
    return to_ms((clock or utc_now)())


def finalize_candles(
    df: pd.DataFrame,
    symbol: str,
    start_ms: int,
    end_ms: int,
    now_ms: int,
    *,
    coerce: bool = True,
) -> pd.DataFrame:
    """Drop still-open candles, restrict to `[start, end)`, de-duplicate (keep last), sort, validate.

    `df["timestamp"]` must already be UTC datetimes. Row order on input is "arrival order", so keeping the
    last duplicate keeps the freshest copy (a later page corrects an earlier one).
    """
    if df.empty:
        out = empty_candles()
        for col in df.columns:
            if col not in out.columns:
                out[col] = pd.Series([], dtype=df[col].dtype)
        return out
    ts_ms = timestamps_ms(df)
    keep = (ts_ms >= start_ms) & (ts_ms < end_ms) & (ts_ms + BASE_MS <= now_ms)
    out = df.loc[keep]
    out = out[~out["timestamp"].duplicated(keep="last")]
    out = out.sort_values("timestamp", kind="stable").reset_index(drop=True)
    cols = list(CANDLE_COLUMNS) + [c for c in out.columns if c not in CANDLE_COLUMNS]
    return validate_candles(out[cols], symbol, coerce=coerce)
