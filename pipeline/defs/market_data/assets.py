"""`candles`: closed 5m candles per (UTC day, symbol), fetched from the provider and upserted to the store.

One run can cover many partitions (`BackfillPolicy.single_run()`): the hourly tick (today x all
symbols) and CLI/UI backfills become one process instead of hundreds of runs. Within a run every
partition is fetched and validated *before* anything is written: the engine schema, and the blocking
quality limits of the universe file (`checks.max_missing_share`, `checks.max_jump`) measured on what the
store would hold after the write (stored rows of those days merged with the fetched ones). All symbols
are then upserted in one transaction, so a provider, validation, quality or database failure leaves the
store untouched for the whole partition set. Upserts are idempotent: re-running a partition rewrites the
same rows.
"""


import time
from datetime import date

import dagster as dg
import pandas as pd

from pipeline.defs.market_data.completeness import (
    Segment,
    blocking_missing,
    coverage_metadata,
    day_coverage,
    fetch_segments,
)
from pipeline.defs.market_data.outcome import INGESTION, outcome_observation
from pipeline.defs.market_data.partitions import contiguous_runs, group_by_symbol, partition_key
from pipeline.defs.market_data.quality import blocking_problems, expected_slots, gap_stats, merge_candles
from pipeline.metadata import fmt_ts, md_table, pct
from pipeline.metadata import table as typed_table
from pipeline.resources import MarketDataResource, StoreResource, UniverseResource
from pipeline.scaleout.executor import INGEST_QUEUE, queue_tags
from pipeline.universe import Universe

GROUP = "market_data"
#: width of `candles.source` in the store (VARCHAR(64)); longer text fails on PostgreSQL
SOURCE_MAX_CHARS = 64
SYNTHETIC_MARK = " (SYNTHETIC)"


def candle_column_schema() -> dg.TableSchema:
    """The engine's pandera candle schema as the asset's column schema (dagster-pandera translates the
    columns, dtypes and checks; the open-time column gets its real dtype), shown in the asset overview."""
    from dagster_pandera import pandera_schema_to_dagster_type

    from engine.schemas import CANDLE_SCHEMA

    schema = pandera_schema_to_dagster_type(CANDLE_SCHEMA).metadata["schema"].schema
    columns = [
        dg.TableColumn(c.name, "datetime64[ns, UTC] (open time)" if c.name == "timestamp" else c.type,
                       description=c.description, constraints=c.constraints)
        for c in schema.columns
    ]  # fmt: skip
    return dg.TableSchema(columns=columns, constraints=schema.constraints)


def stored_source(provider) -> str:
    """The short source label stored with every candle: `kind:exchange`, marked when synthetic.

    `provider.describe()` can be long (a file root, retry limits) and goes to the asset metadata instead.
    The result never exceeds `SOURCE_MAX_CHARS`; a synthetic marker survives truncation.
    """
    label = f"{provider.kind or type(provider).__name__}:{provider.exchange}"
    mark = SYNTHETIC_MARK if provider.synthetic and "synthetic" not in label.lower() else ""
    if len(label) + len(mark) > SOURCE_MAX_CHARS:
        label = label[: SOURCE_MAX_CHARS - len(mark)]
    return label + mark


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Segments of one symbol (disjoint, in day order) as one frame."""
    from engine.schemas import empty_candles

    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_candles()
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _after_write(db, uni: Universe, symbol: str, segments: list[Segment]) -> list[pd.DataFrame]:
    """Per segment, what the store will hold for its days after the upsert (stored rows merged with the
    fetched ones): what the quality limits and the completeness rule judge."""
    return [merge_candles(db.read_candles(uni.exchange, symbol, start=seg.start, end=seg.end), seg.candles)
            for seg in segments]  # fmt: skip


def _quality_problems(uni: Universe, symbol: str, segments: list[Segment], after: list[pd.DataFrame]) -> list[str]:
    """Blocking-check breaches of what the store would hold for these days after the upsert."""
    out = []
    for seg, frame in zip(segments, after, strict=True):
        for problem in blocking_problems(
            frame, symbol, max_missing_share=uni.checks.max_missing_share, max_jump=uni.checks.max_jump
        ):
            out.append(f"{symbol} {seg.start.date()}..{(seg.end - pd.Timedelta(milliseconds=1)).date()}: {problem}")
    return out


def _day_metadata(df: pd.DataFrame, day: date, now: pd.Timestamp, universe: Universe, source: str) -> dict:
    start, end = universe.partition_bounds(day)
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

    def _ingest(
        context: dg.AssetExecutionContext,
        store: StoreResource,
        market_data: MarketDataResource,
        universe: UniverseResource,
    ) -> dg.MaterializeResult:
        from engine.data.base import ProviderError
        from engine.schemas import CandleValidationError

        uni = universe.load()
        try:
            provider = market_data.provider(uni)
        except (TypeError, ValueError, ProviderError) as exc:
            where = (f"the market_data resource config (kind={market_data.kind!r})" if market_data.kind
                     else f"provider.options in {uni.source_path}")  # fmt: skip
            raise dg.Failure(
                description=f"cannot build the {market_data.kind or uni.provider_kind!r} market-data provider; "
                f"fix {where}: {exc}",
                allow_retries=False,
            ) from exc
        description = provider.describe()
        source = stored_source(provider)
        now = pd.Timestamp.now(tz="UTC")
        by_symbol = group_by_symbol(context.partition_keys)
        n_parts = sum(len(d) for d in by_symbol.values())
        if n_parts == 0:
            raise dg.Failure(
                description=(
                    "this run's partition range holds no partition: a range is the rectangle between its "
                    "two corner keys, so the first corner needs the earlier date and the symbol that comes "
                    f"first in the universe order {list(uni.symbol_keys)}, e.g. "
                    f"'{uni.start}|{uni.symbol_keys[0]}...<last date>|{uni.symbol_keys[-1]}'"
                ),
                allow_retries=False,
            )
        context.log.info(
            f"ingesting {n_parts} partitions ({len(by_symbol)} symbols) from {description} into exchange "
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
        segments: dict[str, list] = {}
        t0 = time.monotonic()
        for i, (symbol, days) in enumerate(sorted(by_symbol.items()), 1):
            try:
                segments[symbol] = fetch_segments(provider, uni, symbol, contiguous_runs(days), now)
            except (ProviderError, CandleValidationError) as exc:
                raise dg.Failure(
                    description=(
                        f"fetching {symbol} ({days[0]}..{days[-1]}) from {description} failed; nothing was "
                        f"written for this run's {n_parts} partitions: {exc}"
                    ),
                    metadata={"symbol": symbol, "error": str(exc)[:2000]},
                ) from exc
            n = sum(len(seg.candles) for seg in segments[symbol])
            context.log.info(f"[{i}/{len(by_symbol)}] {symbol}: fetched {n} candles")
        fetch_s = time.monotonic() - t0

        # 2) the blocking checks' limits, on what the store would hold after the write
        db = store.get()
        after = {symbol: _after_write(db, uni, symbol, segs) for symbol, segs in segments.items()}
        problems = [p for symbol, segs in sorted(segments.items())
                    for p in _quality_problems(uni, symbol, segs, after[symbol])]  # fmt: skip
        if problems:
            raise dg.Failure(
                description=(
                    f"{len(problems)} quality problems (limits: 'checks' in {uni.source_path}: max_jump "
                    f"{pct(uni.checks.max_jump)}, max_missing_share {pct(uni.checks.max_missing_share)}); "
                    f"nothing was written for this run's {n_parts} partitions:\n- " + "\n- ".join(problems)
                ),
                metadata={"problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems))},
                allow_retries=False,
            )
        fetched = {s: _concat([seg.candles for seg in segs]) for s, segs in segments.items()}

        # 3) write: every symbol in ONE transaction, idempotent upserts
        t1 = time.monotonic()
        rows = db.upsert_candles_many(
            {s: df for s, df in fetched.items() if len(df)},
            exchange=uni.exchange, source=source, synthetic=provider.synthetic,
        )  # fmt: skip
        write_s = time.monotonic() - t1

        # 4) per-partition metadata (rows, first/last, gaps, source); the run summary is ONE observation
        summary, incomplete = [], []
        for symbol, days in sorted(by_symbol.items()):
            df = fetched[symbol]
            for day in days:
                meta = _day_metadata(df, day, now, uni, description)
                meta["stored_source"] = source
                i = next(k for k, seg in enumerate(segments[symbol]) if seg.holds(day))
                coverage = day_coverage(segments[symbol][i], after[symbol][i], day, uni)
                meta.update(coverage_metadata(coverage, uni))
                missing = blocking_missing(coverage, uni)
                if missing:
                    incomplete.append(f"{symbol} {day}: " + ", ".join(f"{r} ({r.reason})" for r in missing))
                context.add_asset_metadata(meta, partition_key=partition_key(day, symbol))
            summary.append({
                "symbol": symbol, "days": f"{days[0]} .. {days[-1]}", "rows": len(df),
                "first": fmt_ts(df["timestamp"].iloc[0]) if len(df) else "-",
                "last": fmt_ts(df["timestamp"].iloc[-1]) if len(df) else "-",
                "gaps (5m slots)": gap_stats(df["timestamp"]).missing,
            })  # fmt: skip
        summary_columns = ["symbol", "days", "rows", "first", "last", "gaps (5m slots)"]
        table = md_table(summary, summary_columns)
        label = "SYNTHETIC (generated, not market data)" if provider.synthetic else "real market data"
        context.log.info(f"wrote {rows} candles for {n_parts} partitions in {write_s:.2f}s\n{table}")
        for line in incomplete:  # recorded incomplete: the blocking gaps check fails at ERROR naming them
            context.log.warning(f"incomplete partition {line}")
        context.log_event(
            dg.AssetObservation(
                asset_key="candles",
                description=f"ingestion run summary: {n_parts} partitions, {rows} candles",
                metadata={
                    **outcome_observation(INGESTION, ok=True, why=f"{rows} candles written").metadata,
                    "run_summary": typed_table(summary, summary_columns),
                    "provider": description,
                    "fetch_seconds": dg.MetadataValue.float(round(fetch_s, 3)),
                    "write_seconds": dg.MetadataValue.float(round(write_s, 3)),
                },
            )
        )
        # small run context on each partition's event; the table above is not copied onto every partition
        return dg.MaterializeResult(
            metadata={
                "run_rows": dg.MetadataValue.int(rows),
                "run_partitions": dg.MetadataValue.int(n_parts),
                "synthetic": dg.MetadataValue.bool(bool(provider.synthetic)),
                "data_label": label,
            }
        )

    @dg.asset(
        name="candles",
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=GROUP,
        kinds={"sql", "pandas"},
        op_tags=queue_tags(INGEST_QUEUE),  # Celery profile: ingest workers, whatever job runs it
        description=(
            f"Closed 5m OHLCV candles for the {spec.name!r} universe ({len(spec.symbols)} symbols "
            f"on {spec.exchange}), partitioned by UTC day x symbol, upserted to the SQL store. "
            "Open-time convention: a candle stamped T covers [T, T+5m).\n\n"
            "Backfills: a UI backfill of a date x symbol selection makes one run per value of the dimension "
            "with fewer selected keys (e.g. 6 symbols x 21 days -> 6 runs, each one symbol's date range); "
            "every run covers its partitions in one process. For exactly ONE run over any rectangle, use "
            "`python -m pipeline.backfill --start D1 --end D2`, `dagster asset materialize --partition-range "
            "'D1|FIRST...D2|LAST'`, or the ingest_candles Launchpad with the tags "
            "dagster/asset_partition_range_start / _end (see docs/pipeline.md)."
        ),
        metadata={
            "exchange": spec.exchange,
            "provider": spec.provider_kind,
            "dagster/column_schema": candle_column_schema(),
        },
    )
    def candles(
        context: dg.AssetExecutionContext,
        store: StoreResource,
        market_data: MarketDataResource,
        universe: UniverseResource,
    ) -> dg.MaterializeResult:
        try:
            return _ingest(context, store, market_data, universe)
        except Exception as exc:
            # the refresh sensor reads this outcome: research never refreshes after a failed ingestion
            why = getattr(exc, "description", None) or str(exc)
            context.log_event(outcome_observation(INGESTION, ok=False, why=why.splitlines()[0][:500]))
            raise

    return candles
