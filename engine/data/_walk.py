"""Walk a range page by page and keep the evidence for every hole (the coverage rules in one place).

Rules (see docs/data_sources.md, "Completeness"):
- A page asked with `since=a` whose first candle is `b > a` proves `[a, b)` empty, once the source is
  known to honour `since` (the page starts exactly at `a`, or a probe confirms `b`; a source whose
  answer does not depend on `since`, e.g. "the latest 100 candles", fails that probe).
- Holes between candles of one trusted page are real (the source listed both sides).
- An empty page, or a page that ignores `since`, proves nothing: it is retried (bounded, with
  backoff); then the rest of its window is reported missing, with the reason.
- A short page is not trusted for its tail: the walk asks again from the slot after its last candle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from engine.data._pages import page_ms
from engine.timeframes import BASE_MS


def iso(ms: int) -> str:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")


class Pager(Protocol):
    """One source's paging, as the walk needs it."""

    #: rows before `since` are normal (e.g. UDF `countback`), not a sign of an ignored `since`
    overlap_ok: bool
    #: rows at or after the page's window end mean the source ignored the window
    strict_end: bool

    def window_end(self, cursor: int) -> int:
        """Exclusive end of the open times the page at `cursor` asks for."""

    def page(self, cursor: int) -> pd.DataFrame:
        """The cleaned page at `cursor` (raises ProviderError on failures)."""

    def label(self, cursor: int) -> str:
        """How messages name the page at `cursor` (exchange, symbol, since)."""

    def verify_head(self, cursor: int, first: int) -> bool:
        """True when the source demonstrably has no candle in `[cursor, first)`."""

    def probe(self, cursor: int) -> int | None:
        """The source's first open time at or after `cursor`, or None when it cannot be established."""

    def tail_listed(self, cursor: int, rows: int) -> bool:
        """True when the trusted page at `cursor` (with `rows` rows) lists its whole window, so the slots
        after its last candle are empty (explicit `from`/`to` windows that cannot be truncated)."""


@dataclass
class WalkResult:
    """Pages in arrival order and the evidence gathered while walking."""

    frames: list[pd.DataFrame] = field(default_factory=list)
    confirmed: list[tuple[int, int, str]] = field(default_factory=list)
    suspects: list[tuple[int, int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    retries: int = 0


def _interior_holes(ms: np.ndarray) -> list[tuple[int, int]]:
    steps = np.diff(ms)
    return [(int(ms[i] + BASE_MS), int(ms[i + 1])) for i in np.flatnonzero(steps > BASE_MS)]


def walk(
    pager: Pager,
    lo: int,
    hi: int,
    *,
    retries: int,
    backoff: Callable[[int], float],
    sleep: Callable[[float], None],
) -> WalkResult:
    """Fetch `[lo, hi)` (lo on the 5m grid) and classify what is not there; see the module rules."""
    res = WalkResult()
    cursor, tries = lo, 0
    while cursor < hi:
        end = min(pager.window_end(cursor), hi)
        page = pager.page(cursor)
        ms = page_ms(page) if len(page) else np.empty(0, dtype=np.int64)
        keep = (ms >= lo) & (ms < hi)
        if keep.any():
            res.frames.append(page.loc[keep])
        inside = ms[(ms >= cursor) & (ms < end)]
        ignored = bool((ms < cursor).any() and not pager.overlap_ok) or bool(
            (ms >= pager.window_end(cursor)).any() and pager.strict_end
        )
        label = pager.label(cursor)
        if len(inside):
            first, last = int(inside[0]), int(inside[-1])
            trusted = first == cursor or (not ignored and pager.verify_head(cursor, first))
            if not trusted and tries < retries:
                sleep(backoff(tries))
                tries, res.retries = tries + 1, res.retries + 1
                continue
            if trusted:
                if first > cursor:
                    res.confirmed.append((cursor, first, f"{label}: first candle at {iso(first)}"))
                for a, b in _interior_holes(inside):
                    res.confirmed.append((a, b, f"{label}: the exchange listed candles on both sides"))
                if last + BASE_MS < end and pager.tail_listed(cursor, len(page)):
                    res.confirmed.append((last + BASE_MS, end, f"{label}: the listing of its window ends "
                                                               f"at {iso(last)}"))  # fmt: skip
                    cursor, tries = end, 0
                    continue
            else:
                why = f"{label}: the exchange ignored since ({tries + 1} attempts); holes not verifiable"
                res.suspects.append((cursor, last + BASE_MS, why))
                res.notes.append(why)
            cursor, tries = last + BASE_MS, 0
            continue
        if not ignored:
            after = ms[ms >= end]
            if len(after) and pager.verify_head(cursor, int(after[0])):
                res.confirmed.append((cursor, end, f"{label}: first candle at {iso(int(after[0]))}"))
                cursor, tries = end, 0
                continue
            if not len(ms):
                first = pager.probe(cursor)
                if first is not None and first > cursor:
                    stop = min(first, end)
                    res.confirmed.append((cursor, stop, f"{label}: empty page; a probe from {iso(cursor)} "
                                                        f"found the first candle at {iso(first)}"))  # fmt: skip
                    cursor, tries = stop, 0
                    continue
        if tries < retries:
            sleep(backoff(tries))
            tries, res.retries = tries + 1, res.retries + 1
            continue
        if ignored:
            what = "the exchange ignored since"
        elif len(ms):
            what = "only candles outside the page's range, and a probe did not confirm the hole"
        else:
            what = "an empty page (an empty answer proves nothing)"
        why = f"{label}: {what} after {tries + 1} attempts"
        res.suspects.append((cursor, end, why))
        res.notes.append(why)
        cursor, tries = end, 0
    return res
