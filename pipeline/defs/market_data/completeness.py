"""Is a candle partition complete? Every 5m slot up to its closed end holds a candle, or the source
demonstrably has none there.

The provider's coverage report (`engine.data.Coverage`) is the evidence: a hole is *confirmed empty*
when the source proved it (asked with `since=a`, the exchange answered with a first candle at `b > a`;
a dated archive's own range), and *missing* when nothing explains it (an empty page, an ignored
`since`, a truncated file). Ingestion records each partition's verdict in its materialisation metadata
(`complete`, `missing_ranges`, `confirmed_empty`); the blocking `gaps` check reads what the store holds
over the whole partition (head and tail included, not only between the first and last candle) and fails
with ERROR naming every missing range that no recorded evidence explains.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from pipeline.universe import Universe

#: a live exchange publishes a closed candle within seconds; slots younger than this are not yet judged
LIVE_GRACE = pd.Timedelta(minutes=10)
COVERAGE_KEY = "coverage"


@dataclass
class Segment:
    """One provider call: a run of consecutive days of one symbol, with the provider's coverage report."""

    first: date
    last: date
    start: pd.Timestamp
    end: pd.Timestamp
    candles: pd.DataFrame
    coverage: Any  # engine.data.Coverage

    def holds(self, day: date) -> bool:
        return self.first <= day <= self.last


def grace(uni: Universe) -> pd.Timedelta:
    """Historical universes are judged to the last slot; live ones leave the newest minutes alone."""
    return pd.Timedelta(0) if uni.is_historical else LIVE_GRACE


def fetch_segments(provider: Any, uni: Universe, symbol: str, runs: list[tuple[date, date]],
                   now: pd.Timestamp) -> list[Segment]:  # fmt: skip
    """One validated provider call per run of consecutive days, over the universe's data range."""
    from engine.schemas import validate_candles

    segments = []
    for first, last in runs:
        start, end = uni.partition_bounds(first)[0], uni.partition_bounds(last)[1]
        df, coverage = provider.fetch_with_coverage(symbol, start, end, now=now)
        candles = validate_candles(df.reset_index(drop=True), symbol)
        segments.append(Segment(first, last, start, end, candles, coverage))
    return segments


def day_coverage(segment: Segment, stored_after: pd.DataFrame, day: date, uni: Universe) -> Any:
    """The day's coverage, judged on what the store will hold (stored rows merged with the fetched ones),
    with the evidence of this fetch."""
    lo, hi = uni.partition_bounds(day)
    return segment.coverage.clip(lo, hi).recheck(stored_after)


def blocking_missing(coverage: Any, uni: Universe) -> list[Any]:
    """Missing ranges old enough to count (see `grace`)."""
    return list(coverage.missing_older_than(grace(uni)))


def coverage_metadata(coverage: Any, uni: Universe) -> dict[str, Any]:
    """What a partition's materialisation records about its completeness (read back by the gaps check)."""
    import dagster as dg

    missing = blocking_missing(coverage, uni)
    return {
        "complete": dg.MetadataValue.bool(not missing),
        "missing_ranges": ", ".join(str(r) for r in missing) or "-",
        "confirmed_empty": ", ".join(str(r) for r in coverage.confirmed_empty) or "-",
        COVERAGE_KEY: dg.MetadataValue.json(coverage.to_dict()),
    }


def confirmed_ranges(entry: Any) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The confirmed-empty ranges recorded in a materialisation's coverage metadata."""
    value = getattr(entry, "value", entry) or {}
    out = []
    for r in value.get("confirmed_empty", []) if isinstance(value, dict) else []:
        out.append((pd.Timestamp(r["start"]), pd.Timestamp(r["end"])))
    return out


def unexplained(holes: list[Any], confirmed: list[tuple[pd.Timestamp, pd.Timestamp]]) -> list[Any]:
    """The parts of `holes` (TimeRanges) that no confirmed-empty range covers."""
    from engine.data.coverage import TimeRange

    out = []
    for hole in holes:
        pieces = [(hole.start, hole.end)]
        for a, b in confirmed:
            pieces = [p for s, e in pieces for p in ((s, min(e, a)), (max(s, b), e)) if p[0] < p[1]]
        out += [TimeRange(s, e, hole.reason) for s, e in pieces]
    return out


@dataclass
class PartitionGaps:
    """What the gaps check found in one symbol's ingested partitions of its scope."""

    symbol: str
    holes: list[Any]  # every missing 5m range over the partitions (TimeRange)
    unexplained: list[Any]  # holes no recorded evidence explains, old enough to count
    not_ingested: list[date]  # partitions in scope never materialised

    @property
    def missing(self) -> int:
        return sum(h.slots for h in self.holes)

    @property
    def unexplained_slots(self) -> int:
        return sum(h.slots for h in self.unexplained)


#: Dagster returns at most 10,000 event records per call: keys are asked in batches, pages followed
KEY_BATCH = 1000
PAGE = 5000


def latest_coverage(instance: Any, keys: list[str]) -> dict[str, Any]:
    """partition key -> the coverage metadata of its latest materialisation (None when recorded without
    one); partitions never materialised are absent."""
    import dagster as dg

    out: dict[str, Any] = {}
    for i in range(0, len(keys), KEY_BATCH):
        batch = keys[i : i + KEY_BATCH]
        wanted, cursor = set(batch), None
        while wanted:
            page = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("candles"), asset_partitions=batch),
                limit=PAGE, cursor=cursor,
            )  # newest first
            for rec in page.records:
                if rec.partition_key in wanted and rec.asset_materialization is not None:
                    out[rec.partition_key] = rec.asset_materialization.metadata.get(COVERAGE_KEY)
                    wanted.discard(rec.partition_key)
            if not page.has_more:
                break
            cursor = page.cursor
    return out


def partition_gaps(instance: Any, uni: Universe, frames: dict[str, pd.DataFrame], days: dict[str, list[date]],
                   ref: pd.Timestamp) -> list[PartitionGaps]:  # fmt: skip
    """Holes over every ingested partition in scope (head and tail included), split into explained
    (recorded confirmed-empty evidence) and unexplained."""
    from engine.data.coverage import missing_ranges
    from pipeline.defs.market_data.partitions import partition_key

    keys = {(s, d): str(partition_key(d, s)) for s, ds in days.items() for d in ds}
    evidence = latest_coverage(instance, list(keys.values()))
    limit = ref - grace(uni)
    out = []
    for symbol, ds in sorted(days.items()):
        holes, bad, absent = [], [], []
        for day in ds:
            key = keys[(symbol, day)]
            if key not in evidence:
                absent.append(day)
                continue
            lo, hi = uni.partition_bounds(day)
            day_holes = missing_ranges(frames.get(symbol, pd.DataFrame()), lo, hi, ref)
            holes += day_holes
            bad += [h for h in unexplained(day_holes, confirmed_ranges(evidence[key])) if h.start < limit]
        out.append(PartitionGaps(symbol, holes, bad, absent))
    return out
