"""Data-quality measures on stored 5m candles, shared by the candle asset's metadata and the checks.

These are facts about the data (holes, duplicates, broken bars, age), not trading logic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

BAR = pd.Timedelta(minutes=5)
BAR_MS = 5 * 60 * 1000


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
    steps = np.diff(ms) // BAR_MS
    holes = steps[steps > 1] - 1
    span = int((ms[-1] - ms[0]) // BAR_MS) + 1
    largest = float(holes.max() * 5) if len(holes) else 0.0
    return GapStats(int(holes.sum()), int(len(holes)), largest, span)


def ohlc_problems(df: pd.DataFrame, max_jump: float) -> dict[str, int]:
    """Counts of bars breaking OHLC invariants, and of close-to-close jumps above `max_jump`."""
    if df.empty:
        return {"non_finite": 0, "non_positive": 0, "high_low": 0, "open_close_outside": 0, "jumps": 0}
    px = df[["open", "high", "low", "close"]].to_numpy(dtype=float)
    vol = df["volume"].to_numpy(dtype=float)
    finite = np.isfinite(px).all(axis=1) & np.isfinite(vol)
    o, h, lo, c = px.T
    close = pd.Series(c)
    jumps = (close / close.shift(1) - 1).abs() > max_jump
    return {
        "non_finite": int((~finite).sum()),
        "non_positive": int(((px <= 0).any(axis=1) | (vol < 0)).sum()),
        "high_low": int((h < lo).sum()),
        "open_close_outside": int(((h < np.maximum(o, c)) | (lo > np.minimum(o, c))).sum()),
        "jumps": int(jumps.sum()),
    }


def fmt_ts(ts: pd.Timestamp | None) -> str:
    """Compact UTC text for metadata."""
    return "-" if ts is None or pd.isna(ts) else pd.Timestamp(ts).strftime("%Y-%m-%d %H:%M UTC")
