"""Candle partitions: UTC day x symbol, and the helpers that turn keys into (date, symbol) and back.

The symbol dimension is static, taken from the universe file: dynamic dimensions have a long bug
history in Dagster. Keys look like `2024-03-01|ETH-BTC` (`/` is not allowed in keys).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta

import dagster as dg

from pipeline.universe import Universe, key_to_symbol, symbol_to_key

DATE_DIM = "date"
SYMBOL_DIM = "symbol"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"


def build_partitions_def(universe: Universe) -> dg.MultiPartitionsDefinition:
    """Daily (UTC, today included for live universes) x static symbols.

    A historical universe (with `end`) stops at its last day, so the UI does not offer years of
    empty partitions for a frozen sample.
    """
    start = universe.start.isoformat()
    if universe.last_date is not None:
        daily = dg.DailyPartitionsDefinition(
            start_date=start,
            end_date=(universe.last_date + timedelta(days=1)).isoformat(),
            timezone="UTC",
        )
    else:
        daily = dg.DailyPartitionsDefinition(start_date=start, end_offset=1, timezone="UTC")
    return dg.MultiPartitionsDefinition(
        {DATE_DIM: daily, SYMBOL_DIM: dg.StaticPartitionsDefinition(universe.symbol_keys)}
    )


def partition_key(day: date, symbol: str) -> dg.MultiPartitionKey:
    """The multi-partition key of one symbol-day."""
    return dg.MultiPartitionKey({DATE_DIM: day.isoformat(), SYMBOL_DIM: symbol_to_key(symbol)})


def parse_partition_key(key: str | dg.MultiPartitionKey) -> tuple[date, str]:
    """`2024-03-01|ETH-BTC` -> (date(2024, 3, 1), "ETH/BTC")."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return date.fromisoformat(dims[DATE_DIM]), key_to_symbol(dims[SYMBOL_DIM])
    day, sym = str(key).split("|")  # dimension names sort: date before symbol
    return date.fromisoformat(day), key_to_symbol(sym)


def group_by_symbol(keys: Iterable[str | dg.MultiPartitionKey]) -> dict[str, list[date]]:
    """Partition keys -> {symbol: sorted dates}, the unit a provider fetches efficiently."""
    out: dict[str, set[date]] = {}
    for key in keys:
        day, symbol = parse_partition_key(key)
        out.setdefault(symbol, set()).add(day)
    return {s: sorted(days) for s, days in out.items()}


def contiguous_runs(days: Sequence[date]) -> list[tuple[date, date]]:
    """Sorted dates -> inclusive (first, last) runs of consecutive days, so each run is one fetch."""
    runs: list[tuple[date, date]] = []
    for day in sorted(days):
        if runs and day == runs[-1][1] + timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def range_tags(
    universe: Universe, first_day: date, last_day: date, symbols: Sequence[str] | None = None
) -> dict[str, str]:
    """Run tags for one run covering `[first_day, last_day]` x every symbol of the universe (or of
    `symbols`, which must be adjacent in the universe order: see `symbol_blocks`).

    A range over a multi-partitions definition is the rectangle spanned by its two corner keys, and
    static keys keep the universe order, so first symbol .. last symbol means all symbols.
    """
    symbols = list(symbols or universe.symbols)
    return {
        RANGE_START_TAG: str(partition_key(first_day, symbols[0])),
        RANGE_END_TAG: str(partition_key(last_day, symbols[-1])),
    }


def symbol_blocks(universe: Universe, symbols: Iterable[str]) -> list[list[str]]:
    """`symbols` split into runs of symbols adjacent in the universe order: each block is one range run.

    Raises ValueError for a symbol outside the universe.
    """
    wanted = set(symbols)
    unknown = sorted(wanted - set(universe.symbols))
    if unknown:
        raise ValueError(f"symbols {unknown} are not in universe {universe.name!r}; known: {list(universe.symbols)}")
    blocks: list[list[str]] = []
    previous_selected = False
    for symbol in universe.symbols:
        if symbol in wanted:
            if previous_selected:
                blocks[-1].append(symbol)
            else:
                blocks.append([symbol])
        previous_selected = symbol in wanted
    return blocks


def keys_from_tags(
    partitions_def: dg.MultiPartitionsDefinition, tags: Mapping[str, str]
) -> list[dg.MultiPartitionKey]:
    """The partition keys a run targets, from its tags (single key or range); [] when unpartitioned."""
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        rng = dg.PartitionKeyRange(tags[RANGE_START_TAG], tags[RANGE_END_TAG])
        return list(partitions_def.get_partition_keys_in_range(rng))
    if PARTITION_TAG in tags:
        return [partitions_def.get_partition_key_from_str(tags[PARTITION_TAG])]
    return []
