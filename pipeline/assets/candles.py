"""`candles`: closed 5m candles per (UTC day, symbol), fetched from the provider and upserted to the store.

One run can cover many partitions (`BackfillPolicy.single_run()`): the hourly tick (today x all
symbols) and CLI/UI backfills become one process instead of hundreds of runs. Within a run every
partition is fetched and validated *before* anything is written, and all symbols are then upserted in
one transaction, so a provider, validation or database failure leaves the store untouched for the
whole partition set. Upserts are idempotent: re-running a partition rewrites the same rows.
"""


import time
from datetime import date

import dagster as dg
import pandas as pd

from pipeline.partitions import contiguous_runs, group_by_symbol, partition_key
from pipeline.quality import expected_slots, fmt_ts, gap_stats
from pipeline.resources import MarketDataResource, StoreResource, UniverseResource
from pipeline.universe import Universe, utc_day_bounds

GROUP = "market_data"


def _fetch_symbol(provider, symbol: str, days: list[date], now: pd.Timestamp) -> pd.DataFrame:
    """All candles of `symbol` for `days`, one provider call per run of consecutive days."""
    from engine.schemas import empty_candles, validate_candles

    frames = []
    for first, last in contiguous_runs(days):
        start, _ = utc_day_bounds(first)
        _, end = utc_day_bounds(last)
        frames.append(provider.fetch_ohlcv(symbol, start, end, now=now))
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_candles()
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    return validate_candles(df, symbol)


def _day_metadata(df: pd.DataFrame, day: date, now: pd.Timestamp, universe: Universe, source: str) -> dict:
    start, end = utc_day_bounds(day)
    ref = universe.reference_time(now)
    sub = df[(df["timestamp"] >= start) & (df["timestamp"] < end)]
    gaps = gap_stats(sub["timestamp"])
    expected = expected_slots(start, end, ref)
    return {
        "rows": dg.MetadataValue.int(len(sub)),
        "expected_rows": dg.MetadataValue.int(expected),
        "first_open_time": fmt_ts(sub["timestamp"].iloc[0]) if len(sub) else "-",
        "last_open_time": fmt_ts(sub["timestamp"].iloc[-1]) if len(sub) else "-",
        "gaps": dg.MetadataValue.int(gaps.missing),
        "largest_gap_minutes": dg.MetadataValue.float(gaps.largest_minutes),
        "source": source,
    }


def build_candles_asset(spec: Universe, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """The `candles` asset for one universe (its symbols are the static partition dimension)."""

    @dg.asset(
        name="candles",
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=GROUP,
        kinds={"sql", "pandas"},
        description=(
            f"Closed 5m OHLCV candles for the {spec.name!r} universe ({len(spec.symbols)} symbols "
            f"on {spec.exchange}), partitioned by UTC day x symbol, upserted to the SQL store. "
            "Open-time convention: a candle stamped T covers [T, T+5m)."
        ),
        metadata={"exchange": spec.exchange, "provider": spec.provider_kind},
    )
    def candles(
        context: dg.AssetExecutionContext,
        store: StoreResource,
        market_data: MarketDataResource,
        universe: UniverseResource,
    ) -> dg.MaterializeResult:
        from engine.data.base import ProviderError
        from engine.schemas import CandleValidationError

        uni = universe.load()
        provider = market_data.provider(uni)
        source = provider.describe()
        now = pd.Timestamp.now(tz="UTC")
        by_symbol = group_by_symbol(context.partition_keys)
        n_parts = sum(len(d) for d in by_symbol.values())
        context.log.info(
            f"ingesting {n_parts} partitions ({len(by_symbol)} symbols) from {source} into exchange "
            f"{uni.exchange!r}"
        )
        if provider.synthetic:
            context.log.warning("provider is SYNTHETIC: generated candles, not market data")
        if provider.exchange != uni.exchange:
            raise dg.Failure(
                description=(
                    f"provider exchange {provider.exchange!r} does not match the universe exchange "
                    f"{uni.exchange!r}; fix 'exchange' in {uni.source_path} so candles are not stored "
                    "under the wrong name"
                )
            )

        # 1) fetch + validate everything; nothing is written if any partition fails
        fetched: dict[str, pd.DataFrame] = {}
        t0 = time.monotonic()
        for i, (symbol, days) in enumerate(sorted(by_symbol.items()), 1):
            try:
                fetched[symbol] = _fetch_symbol(provider, symbol, days, now)
            except (ProviderError, CandleValidationError) as exc:
                raise dg.Failure(
                    description=(
                        f"fetching {symbol} ({days[0]}..{days[-1]}) from {source} failed; nothing was "
                        f"written for this run's {n_parts} partitions: {exc}"
                    ),
                    metadata={"symbol": symbol, "error": str(exc)[:2000]},
                ) from exc
            context.log.info(f"[{i}/{len(by_symbol)}] {symbol}: fetched {len(fetched[symbol])} candles")
        fetch_s = time.monotonic() - t0

        # 2) write: every symbol in ONE transaction, idempotent upserts
        db = store.get()
        rows = db.upsert_candles_many(
            {s: df for s, df in fetched.items() if len(df)},
            exchange=uni.exchange, source=source, synthetic=provider.synthetic,
        )  # fmt: skip
        write_s = time.monotonic() - t0 - fetch_s

        # 3) per-partition metadata (rows, first/last, gaps, source)
        summary = []
        for symbol, days in sorted(by_symbol.items()):
            df = fetched[symbol]
            for day in days:
                meta = _day_metadata(df, day, now, uni, source)
                context.add_asset_metadata(meta, partition_key=partition_key(day, symbol))
            g = gap_stats(df["timestamp"])
            summary.append(
                f"| {symbol} | {days[0]} .. {days[-1]} | {len(df)} | "
                f"{fmt_ts(df['timestamp'].iloc[0]) if len(df) else '-'} | "
                f"{fmt_ts(df['timestamp'].iloc[-1]) if len(df) else '-'} | {g.missing} |"
            )
        table = "| symbol | days | rows | first | last | gaps (5m slots) |\n|---|---|---|---|---|---|\n"
        label = "SYNTHETIC (generated, not market data)" if provider.synthetic else "real market data"
        return dg.MaterializeResult(
            metadata={
                "run_rows": dg.MetadataValue.int(rows),
                "run_partitions": dg.MetadataValue.int(n_parts),
                "run_symbols": dg.MetadataValue.int(len(by_symbol)),
                "synthetic": dg.MetadataValue.bool(bool(provider.synthetic)),
                "data_label": label,
                "fetch_seconds": dg.MetadataValue.float(round(fetch_s, 3)),
                "write_seconds": dg.MetadataValue.float(round(write_s, 3)),
                "run_summary": dg.MetadataValue.md(table + "\n".join(summary)),
            }
        )

    return candles
