"""Coverage: what a provider can say about the 5m slots of a request that it did NOT return.

A fetch that returns fewer candles than the range holds is only honest if it says why. Every slot of
the requested `[start, end)` that has closed at `now` is either
- present (a candle was returned),
- confirmed empty: the source demonstrably has no candle there (e.g. asked explicitly with
  `since=a`, the exchange answered with a first candle at `b > a`, so `[a, b)` is a real hole), or
- missing: nothing was returned and nothing proves the source has none (an empty page, an ignored
  `since`, a truncated archive). These are what a pipeline must refuse or flag.

Providers attach a `Coverage` to the frames they return (`df.attrs["coverage"]`);
`MarketDataProvider.fetch_with_coverage` returns it next to the frame and re-derives the missing slots
from the frame itself, so a frame edited after the provider returned it can never pass for complete.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from engine.schemas import timestamps_ms
from engine.timeframes import BASE_MS, to_utc

UNEXPLAINED = "no candle returned and nothing shows the source has none"


def _ts(ms: int) -> pd.Timestamp:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC")


def _ms(value: Any) -> int:
    return int(to_utc(value, "time bound").as_unit("ms").asm8.view("i8"))


def _ceil(ms: int) -> int:
    return -(-ms // BASE_MS) * BASE_MS


def closed_limit_ms(end_ms: int, now_ms: int) -> int:
    """Exclusive bound of the open times that can be expected: `min(end, last slot closed at now)`."""
    closed = (now_ms - BASE_MS) // BASE_MS * BASE_MS + BASE_MS  # open + 5m <= now
    return min(end_ms, closed)


@dataclass(frozen=True)
class TimeRange:
    """A half-open range `[start, end)` of 5m open times with the reason it has no candles."""

    start: pd.Timestamp
    end: pd.Timestamp
    reason: str = ""

    @property
    def slots(self) -> int:
        """Number of 5m slots in the range."""
        return int((self.end - self.start) // pd.Timedelta(milliseconds=BASE_MS))

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "slots": self.slots,
                "reason": self.reason}  # fmt: skip

    def __str__(self) -> str:
        fmt = "%Y-%m-%d %H:%M"
        return f"[{self.start.strftime(fmt)}, {self.end.strftime(fmt)}) ({self.slots} slots)"


@dataclass(frozen=True)
class Coverage:
    """The coverage report of one fetch; see the module docstring for the three kinds of slot."""

    symbol: str
    source: str
    start: pd.Timestamp
    end: pd.Timestamp
    #: exclusive bound of the slots that were expected: min(end, last slot closed at `as_of`)
    checked_until: pd.Timestamp
    #: the `now` of the fetch: which candles had closed
    as_of: pd.Timestamp
    expected_slots: int
    present_slots: int
    confirmed_empty: tuple[TimeRange, ...] = ()
    missing: tuple[TimeRange, ...] = ()
    notes: tuple[str, ...] = ()
    #: provider facts worth recording with the data (e.g. the Nobitex price unit and how it was checked)
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True when every expected slot is present or confirmed empty."""
        return not self.missing

    @property
    def missing_slots(self) -> int:
        return sum(r.slots for r in self.missing)

    @property
    def confirmed_slots(self) -> int:
        return sum(r.slots for r in self.confirmed_empty)

    def summary(self) -> str:
        """One line for logs: counts, then the first missing ranges."""
        head = (f"{self.symbol} [{self.start.isoformat()}, {self.end.isoformat()}) from {self.source}: "
                f"{self.present_slots}/{self.expected_slots} slots present, "
                f"{self.confirmed_slots} confirmed empty, {self.missing_slots} missing")  # fmt: skip
        if not self.missing:
            return head + " (complete)"
        shown = ", ".join(str(r) for r in self.missing[:3])
        more = f" and {len(self.missing) - 3} more" if len(self.missing) > 3 else ""
        return f"{head}: {shown}{more}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (ISO timestamps) for asset metadata and logs."""
        return {
            "symbol": self.symbol,
            "source": self.source,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "checked_until": self.checked_until.isoformat(),
            "as_of": self.as_of.isoformat(),
            "expected_slots": self.expected_slots,
            "present_slots": self.present_slots,
            "complete": self.complete,
            "confirmed_empty": [r.to_dict() for r in self.confirmed_empty],
            "missing": [r.to_dict() for r in self.missing],
            "notes": list(self.notes),
            "details": {
                k: v if isinstance(v, str | int | float | bool) or v is None else str(v)
                for k, v in self.details.items()
            },  # fmt: skip
        }

    def recheck(self, df: pd.DataFrame) -> Coverage:
        """The report re-derived for another frame of the same range, keeping this report's evidence:
        e.g. the stored candles merged with the fetched ones, where earlier runs may fill holes."""
        return reconcile(df, self, symbol=self.symbol, source=self.source, start=self.start, end=self.end,
                         now=self.as_of)  # fmt: skip

    def missing_older_than(self, grace: pd.Timedelta) -> tuple[TimeRange, ...]:
        """Missing ranges clipped to slots that closed at least `grace` before `as_of`: the newest
        candles of a live exchange may simply not be published yet."""
        bound = closed_limit_ms(_ms(self.checked_until), _ms(self.as_of - grace))
        return _clip_all(self.missing, _ms(self.start), bound)

    def clip(self, start: Any, end: Any) -> Coverage:
        """The report restricted to `[start, end)` (e.g. one daily partition of a multi-day fetch)."""
        lo, hi = max(_ms(start), _ms(self.start)), min(_ms(end), _ms(self.end))
        until = max(lo, min(hi, _ms(self.checked_until)))
        confirmed = _clip_all(self.confirmed_empty, lo, until)
        missing = _clip_all(self.missing, lo, until)
        expected = max(0, (until - _ceil(lo)) // BASE_MS)
        gone = sum(r.slots for r in confirmed) + sum(r.slots for r in missing)
        return replace(self, start=_ts(lo), end=_ts(max(lo, hi)), checked_until=_ts(until),
                       expected_slots=int(expected), present_slots=int(expected - gone),
                       confirmed_empty=confirmed, missing=missing)  # fmt: skip


def _clip_all(ranges: Iterable[TimeRange], lo: int, hi: int) -> tuple[TimeRange, ...]:
    out = []
    for r in ranges:
        a, b = max(_ms(r.start), lo), min(_ms(r.end), hi)
        if a < b:
            out.append(TimeRange(_ts(a), _ts(b), r.reason))
    return tuple(out)


def _sorted_unique(ms: np.ndarray) -> np.ndarray:
    """Sorted distinct values; provider frames are already sorted and unique, so that is checked first
    (numpy's `unique` hashes and is far slower on a year of candles)."""
    if len(ms) < 2 or bool((np.diff(ms) > 0).all()):
        return ms
    ms = np.sort(ms, kind="stable")
    return ms[np.concatenate(([True], np.diff(ms) != 0))]


def _holes_ms(ms: np.ndarray, lo: int, hi: int) -> list[tuple[int, int]]:
    """Half-open ranges of 5m slots in `[lo, hi)` (lo on the grid) holding no open time of `ms`."""
    if hi <= lo:
        return []
    inside = _sorted_unique(ms[(ms >= lo) & (ms < hi)])
    edges = np.concatenate(([lo - BASE_MS], inside, [hi]))
    gaps = np.flatnonzero(np.diff(edges) > BASE_MS)
    return [(int(edges[i] + BASE_MS), int(edges[i + 1])) for i in gaps]


def frame_ms(df: pd.DataFrame | Sequence[int] | np.ndarray) -> np.ndarray:
    """Open times of a candle frame (or of a sequence of epoch ms) as int64 epoch ms."""
    if isinstance(df, pd.DataFrame):
        return timestamps_ms(df) if len(df) else np.empty(0, dtype=np.int64)
    return np.asarray(df, dtype=np.int64)


def missing_ranges(
    df: pd.DataFrame | Sequence[int] | np.ndarray, start: Any, end: Any, now: Any = None
) -> list[TimeRange]:
    """The 5m slots of `[start, min(end, last slot closed at now))` that `df` has no candle for.

    `now` defaults to the wall clock (UTC). The first slot is `start` rounded up to the 5m grid.
    """
    now_ms = _ms(now if now is not None else pd.Timestamp.now(tz="UTC"))
    lo, hi = _ceil(_ms(start)), closed_limit_ms(_ms(end), now_ms)
    return [TimeRange(_ts(a), _ts(b), UNEXPLAINED) for a, b in _holes_ms(frame_ms(df), lo, hi)]


def build_coverage(
    df: pd.DataFrame | Sequence[int] | np.ndarray,
    *,
    symbol: str,
    source: str,
    start_ms: int,
    end_ms: int,
    now_ms: int,
    confirmed: Iterable[tuple[int, int, str]] = (),
    suspects: Iterable[tuple[int, int, str]] = (),
    notes: Iterable[str] = (),
    details: Mapping[str, Any] | None = None,
) -> Coverage:
    """Classify every hole of `df` over the expected slots.

    `confirmed` are `(start_ms, end_ms, reason)` ranges the source demonstrably has no candle in; a hole
    inside one is confirmed empty. Every other hole is missing; `suspects` only label missing parts
    with a more precise reason (e.g. "the exchange ignored since") than the default.
    """
    lo, hi = _ceil(start_ms), closed_limit_ms(end_ms, now_ms)
    ms = frame_ms(df)
    holes = _holes_ms(ms, lo, hi)
    conf = _normalise(confirmed)
    sus = _normalise(suspects)
    confirmed_out: list[TimeRange] = []
    missing_out: list[TimeRange] = []
    for a, b in holes:
        for x, y, reason, is_confirmed in _split(a, b, conf):
            if is_confirmed:
                confirmed_out.append(TimeRange(_ts(x), _ts(y), reason))
            else:
                for p, q, why, known in _split(x, y, sus):
                    missing_out.append(TimeRange(_ts(p), _ts(q), why if known else UNEXPLAINED))
    expected = max(0, (hi - lo) // BASE_MS)
    present = int(_sorted_unique(ms[(ms >= lo) & (ms < hi)]).size) if len(ms) else 0
    return Coverage(
        symbol=symbol,
        source=source,
        start=_ts(start_ms),
        end=_ts(end_ms),
        checked_until=_ts(max(lo, hi)),
        as_of=_ts(now_ms),
        expected_slots=int(expected),
        present_slots=present,
        confirmed_empty=tuple(_merge(confirmed_out)),
        missing=tuple(_merge(missing_out)),
        notes=tuple(dict.fromkeys(notes)),
        details=dict(details or {}),
    )


def reconcile(df: pd.DataFrame, coverage: Coverage | None, *, symbol: str, source: str, start: Any,
              end: Any, now: Any) -> Coverage:  # fmt: skip
    """A report that agrees with `df`: holes are re-derived from the frame; `coverage` only contributes
    its evidence (confirmed ranges, reasons, notes, details). Without one, every hole is missing."""
    if coverage is None:
        return build_coverage(df, symbol=symbol, source=source, start_ms=_ms(start), end_ms=_ms(end),
                              now_ms=_ms(now))  # fmt: skip
    conf = [(_ms(r.start), _ms(r.end), r.reason) for r in coverage.confirmed_empty]
    sus = [(_ms(r.start), _ms(r.end), r.reason) for r in coverage.missing]
    return build_coverage(
        df, symbol=coverage.symbol, source=coverage.source, start_ms=_ms(coverage.start),
        end_ms=_ms(coverage.end), now_ms=_ms(coverage.as_of), confirmed=conf, suspects=sus,
        notes=coverage.notes, details=coverage.details,
    )  # fmt: skip


def _normalise(ranges: Iterable[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    return sorted((int(a), int(b), r) for a, b, r in ranges if b > a)


def _split(a: int, b: int, ranges: list[tuple[int, int, str]]) -> list[tuple[int, int, str, bool]]:
    """Cut `[a, b)` into pieces inside (True, with that range's reason) or outside (False) `ranges`."""
    out: list[tuple[int, int, str, bool]] = []
    cursor = a
    for x, y, reason in ranges:
        if y <= cursor or x >= b:
            continue
        if x > cursor:
            out.append((cursor, x, "", False))
        lo, hi = max(x, cursor), min(y, b)
        out.append((lo, hi, reason, True))
        cursor = hi
        if cursor >= b:
            break
    if cursor < b:
        out.append((cursor, b, "", False))
    return out


def _merge(ranges: list[TimeRange]) -> list[TimeRange]:
    """Join adjacent ranges with the same reason."""
    out: list[TimeRange] = []
    for r in sorted(ranges, key=lambda r: r.start):
        if out and out[-1].end == r.start and out[-1].reason == r.reason:
            out[-1] = TimeRange(out[-1].start, r.end, r.reason)
        else:
            out.append(r)
    return out
