"""Data-quality measures on stored 5m candles, shared by the candle asset's metadata and the checks.

These are facts about the data (holes, jumps, age), not trading logic; the candle contract itself
(finite positive prices, low <= open/close <= high, sorted unique 5m open times) is the engine schema's,
reused here rather than restated. `blocking_problems` is what the candle asset checks before it writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.schemas import (
    CANDLE_COLUMNS,
    CandleValidationError,
    candles_look_valid,
    empty_candles,
    validate_candles,
)
from engine.timeframes import BASE_MS
from pipeline.metadata import fmt_ts, pct

BAR = pd.Timedelta(milliseconds=BASE_MS)


def last_closed_open_time(now: pd.Timestamp) -> pd.Timestamp:
    """Open time of the newest candle that has closed at `now` (open + 5m <= now)."""
    return now.floor("5min") - BAR


def expected_slots(start: pd.Timestamp, end: pd.Timestamp, now: pd.Timestamp) -> int:
    """How many closed 5m candles `[start, end)` can hold at `now`."""
    stop = min(end, last_closed_open_time(now) + BAR)
    return max(0, int((stop - start) // BAR))


@dataclass(frozen=True)
class GapStats:
    """Holes between the first and the last candle of a frame."""

    missing: int  # 5m slots missing strictly inside [first, last]
    holes: int  # number of separate holes
    largest_minutes: float
    span: int  # slots from first to last inclusive

    @property
    def missing_share(self) -> float:
        return self.missing / self.span if self.span else 0.0


def gap_stats(timestamps: pd.Series) -> GapStats:
    """Gaps inside a sorted, de-duplicated series of open times."""
    if len(timestamps) < 2:
        return GapStats(0, 0, 0.0, len(timestamps))
    ms = timestamps.to_numpy("datetime64[ms]").astype(np.int64)
    steps = np.diff(ms) // BASE_MS
    holes = steps[steps > 1] - 1
    span = int((ms[-1] - ms[0]) // BASE_MS) + 1
    largest = float(holes.max() * 5) if len(holes) else 0.0
    return GapStats(int(holes.sum()), int(len(holes)), largest, span)


def jump_times(df: pd.DataFrame, max_jump: float) -> pd.Series:
    """Open times of bars whose close moved more than `max_jump` (a share) from the previous row's close.

    The engine schema already rejects non-finite, non-positive and inconsistent bars; a jump is the one
    OHLC rule it cannot see, because each bar on its own is valid.
    """
    if len(df) < 2:
        return df["timestamp"].iloc[:0]
    close = df["close"].astype(float)
    moved = (close / close.shift(1) - 1).abs() > max_jump
    return df.loc[moved.to_numpy(), "timestamp"]


def schema_problem(df: pd.DataFrame, symbol: str | None = None) -> str | None:
    """The first engine-schema rule a frame breaks (None when it passes or is empty).

    `candles_look_valid` is the engine's fast yes/no; only on "no" the pandera schema runs for the rule.
    """
    if df.empty or candles_look_valid(df):
        return None
    try:
        validate_candles(df, symbol)
    except CandleValidationError as exc:
        return str(exc).splitlines()[0]
    return None


def merge_candles(stored: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """What the store holds after upserting `new` over `stored` (same open time: `new` wins)."""
    frames = [f.loc[:, list(CANDLE_COLUMNS)] for f in (stored, new) if len(f)]
    if not frames:
        return empty_candles()
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    merged = pd.concat(frames, ignore_index=True).drop_duplicates("timestamp", keep="last")
    return merged.sort_values("timestamp", kind="stable").reset_index(drop=True)


def blocking_problems(df: pd.DataFrame, symbol: str, *, max_missing_share: float, max_jump: float) -> list[str]:
    """Why candles would fail a blocking check with ERROR severity (schema, missing share, jumps); [] = ok.

    The same measures as `pipeline.checks`, so the candle asset can refuse data before writing it.
    """
    problems = []
    rule = schema_problem(df, symbol)
    if rule:
        problems.append(f"engine schema: {rule}")
    gaps = gap_stats(df["timestamp"])
    if gaps.missing_share > max_missing_share:
        problems.append(
            f"{gaps.missing} of {gaps.span} 5m slots missing ({gaps.missing_share:.1%} > {pct(max_missing_share)})"
        )
    jumps = jump_times(df, max_jump) if rule is None else df["timestamp"].iloc[:0]
    if len(jumps):
        problems.append(
            f"{len(jumps)} close-to-close jumps above {pct(max_jump)} in 5 minutes (first at {fmt_ts(jumps.iloc[0])})"
        )
    return problems
