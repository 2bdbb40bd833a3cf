"""When things are due: the decision grid, which decision times a tick owes, whether the store holds the
candles they need, and how a recorded decision is labelled (live, late, caught up).

Pure functions over epoch milliseconds (UTC) and what the store reported, so each rule is tested alone.
Data readiness is judged on what the store holds, never on the clock alone: a symbol is ready at `t`
when its newest stored candle closed by the tick's clock has `open_time >= t - 5m` (the candle closed by
`t`, or a later one when that slot is a genuine gap).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pipeline.metadata import fmt_ts

BASE_MS = 300_000
MINUTE_MS = 60_000
DAY_MS = 86_400_000
#: a symbol without any candle in the day before `t` is inactive (delisted, not yet listed): not waited for
ACTIVE_WITHIN_MS = DAY_MS


def floor_grid(ms: int, step_ms: int) -> int:
    return ms // step_ms * step_ms


def ceil_grid(ms: int, step_ms: int) -> int:
    return -(-ms // step_ms) * step_ms


def due_times(recorded: Sequence[int], book_start: int, now_ms: int, shift_ms: int) -> list[int]:
    """Grid times in `[book_start, now]` not recorded yet (missed ones included: they are caught up)."""
    first = ceil_grid(book_start, shift_ms)
    last = floor_grid(now_ms, shift_ms)
    done = set(recorded)
    return [t for t in range(first, last + 1, shift_ms) if t not in done]


def book_start(recorded: Sequence[int], configured: int | None, now_ms: int, shift_ms: int) -> int:
    """A strategy's first decision time: its earliest recorded one, else the configured start, else the
    decision time of this tick (a new book starts now, it does not invent a past)."""
    if recorded:
        return min(recorded)
    return configured if configured is not None else floor_grid(now_ms, shift_ms)


def mode(t: int, now_ms: int, shift_ms: int, late_after_ms: int) -> tuple[str, str]:
    """(`live` | `late` | `caught_up`, why) for a decision at `t` recorded by a tick at `now`.

    The tick of `t` is any tick in `[t, t + shift)`: within `late_after` of `t` it records live, after that
    late; a tick of a later decision time that records `t` catches it up from the stored candles.
    """
    lateness = now_ms - t
    if floor_grid(now_ms, shift_ms) > t:
        return "caught_up", (f"caught up at {fmt_ts(_ts(now_ms))} ({_minutes(lateness)} after t) from the stored "
                             "candles: no earlier tick recorded it (missed tick or candles not yet stored)")  # fmt: skip
    if lateness > late_after_ms:
        return "late", (f"recorded {_minutes(lateness)} after t (late: more than {_minutes(late_after_ms)}; the "
                        "tick ran late or the candles landed late)")  # fmt: skip
    return "live", f"recorded {_minutes(lateness)} after t"


@dataclass(frozen=True)
class Readiness:
    """Whether the store holds what a decision (or settlement) at `at` needs, and why not."""

    ready: bool
    why: str
    lagging: tuple[str, ...] = ()


def readiness(latest: Mapping[str, int | None], at: int, now_ms: int, max_wait_ms: int, what: str) -> Readiness:
    """Are the candles closed by `at` stored for every active symbol? After `max_wait`, go on without the
    lagging ones (and say so): a symbol that stops trading must not stall the book forever."""
    active = {s: v for s, v in latest.items() if v is not None and v >= at - ACTIVE_WITHIN_MS}
    if not active:
        return Readiness(False, f"{what}: no candle stored for any symbol in the day before {fmt_ts(_ts(at))} "
                                "(has the ingestion run?)")  # fmt: skip
    lagging = tuple(sorted(s for s, v in active.items() if v < at - BASE_MS))
    if not lagging:
        return Readiness(True, "")
    shown = ", ".join(f"{s} (newest stored candle closed {fmt_ts(_ts(active[s] + BASE_MS))})" for s in lagging[:5])
    more = f" and {len(lagging) - 5} more" if len(lagging) > 5 else ""
    if now_ms < at + max_wait_ms:
        return Readiness(False, f"{what}: the candles closed by {fmt_ts(_ts(at))} are not stored yet for {shown}{more}; "
                                f"waiting up to {_minutes(max_wait_ms)} after it", lagging)  # fmt: skip
    return Readiness(True, f"{what} without the candles closed by {fmt_ts(_ts(at))} of {shown}{more}: still not "
                           f"stored {_minutes(max_wait_ms)} after it", lagging)  # fmt: skip


def _minutes(ms: int) -> str:
    minutes = ms / MINUTE_MS
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _ts(ms: int):  # noqa: ANN202 - a pandas Timestamp, imported lazily
    import pandas as pd

    return pd.Timestamp(int(ms), unit="ms", tz="UTC")
