"""Validation of `WalkForwardConfig` fields: every bad value is a ValueError that names the field.

Junk (None where a value is required, bools, strings, inf, NaN, huge numbers) must never surface later as
a TypeError, an OverflowError or a silently wrong backtest, so each field is checked for type and range
before anything converts it.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
from typing import Any

import numpy as np
import pandas as pd

from engine.timeframes import hours_ms, to_utc

#: generous upper bounds that keep every later integer conversion and array size representable
MAX_HOURS = 24 * 366 * 10
MAX_COUNT = 2**31 - 1
MAX_BOOTSTRAP_SAMPLES = 100_000


def _where(name: str) -> str:
    return f"WalkForwardConfig.{name}"


def _as_float(value: Any) -> float:
    """A real number (not a bool) as a float; NaN for anything else, including ints too large for a float."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool | np.bool_):
        return math.nan
    try:
        return float(value)
    except (OverflowError, ValueError):
        return math.nan


def number(name: str, value: Any, *, low: float = 0.0, high: float = math.inf, low_open: bool = False) -> float:
    """A finite real number in [low, high] (or (low, high] with `low_open`)."""
    x = _as_float(value)
    if not math.isfinite(x):
        raise ValueError(f"{_where(name)} must be a finite number (got {value!r})")
    if x < low or (low_open and x == low) or x > high:
        bracket = "(" if low_open else "["
        raise ValueError(f"{_where(name)} must be in {bracket}{low:g}, {high:g}] (got {value!r})")
    return x


def integer(name: str, value: Any, *, low: int, high: int = MAX_COUNT) -> int:
    """An integer (integral floats such as 3.0 from JSON are accepted) in [low, high]."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_):
        as_int = int(value)
    else:
        x = _as_float(value)
        if not math.isfinite(x) or x != int(x):
            raise ValueError(f"{_where(name)} must be an integer (got {value!r})")
        as_int = int(x)
    if not low <= as_int <= high:
        raise ValueError(f"{_where(name)} must be between {low} and {high} (got {value!r})")
    return as_int


def time_or_none(name: str, value: Any) -> pd.Timestamp | None:
    """None, or a time (ISO string, datetime, numpy/pandas timestamp) representable in nanoseconds."""
    if value is None:
        return None
    if not isinstance(value, str | dt.date | np.datetime64):
        raise ValueError(f"{_where(name)} must be a time (ISO string or datetime), not {type(value).__name__} "
                         f"{value!r}")
    ts = to_utc(value, _where(name))
    try:
        return ts.as_unit("ns")
    except (OverflowError, ValueError) as exc:
        raise ValueError(f"{_where(name)}: {value!r} is outside the supported time range ({exc})") from exc


def hours(name: str, value: Any) -> int:
    """Positive hours, a multiple of 5 minutes; returned in milliseconds."""
    number(name, value, high=MAX_HOURS, low_open=True)
    return hours_ms(float(value), _where(name))


def window_and_shift(window_hours: Any, shift_hours: Any) -> tuple[int, int]:
    """Window and shift in ms; the window must hold a whole number of shifts (the sleeve arithmetic)."""
    window_ms, shift_ms = hours("window_hours", window_hours), hours("shift_hours", shift_hours)
    if window_ms % shift_ms:
        raise ValueError(
            f"WalkForwardConfig: window_hours ({window_hours}) must be a whole multiple of shift_hours "
            f"({shift_hours}): capital is split into window/shift overlapping sleeves, which needs a whole "
            "number of them (3h/2h would commit 133% of capital while two windows overlap; a shift longer "
            "than the window leaves capital idle between windows)"
        )
    return window_ms, shift_ms


def cost_levels(value: Any, slippage_bps: float) -> tuple[float, ...]:
    """Fee levels (bps per side) for the cost table; each plus the slippage must stay below 100%."""
    if isinstance(value, str | bytes) or not isinstance(value, tuple | list | np.ndarray):
        raise ValueError(f"WalkForwardConfig.cost_levels_bps must be a list of fees in bps (got {value!r})")
    levels = tuple(number("cost_levels_bps", v) for v in value)
    for level in levels:
        if level + slippage_bps >= 10_000:
            raise ValueError(f"WalkForwardConfig.cost_levels_bps: fee {level:g} + slippage {slippage_bps:g} bps "
                             "must be below 10,000 (100%)")
    return levels


def timeframe(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"WalkForwardConfig.feature_timeframe must be a string such as '1h' (got {value!r})")
    return value
