"""Asset checks on `candles`: schema, duplicates, gaps, OHLC sanity (blocking) and freshness (warning).

The checks read back what the store holds, so they judge the data the research assets will use, not
the provider's answer. Scope: the partitions of the run they execute in (single key or range tags);
executed on their own (UI "Execute checks"), the last `checks.scope_days` days. A blocking check that
fails with ERROR severity fails its step, so downstream assets in the same run are skipped and the
refresh sensor does not launch research runs from that ingestion.
"""


from collections.abc import Iterator

import dagster as dg
import pandas as pd

from pipeline.partitions import group_by_symbol, keys_from_tags
from pipeline.quality import BAR, fmt_ts, gap_stats, ohlc_problems
from pipeline.resources import StoreResource, UniverseResource
from pipeline.universe import Universe, utc_day_bounds

ERROR = dg.AssetCheckSeverity.ERROR
WARN = dg.AssetCheckSeverity.WARN
CHECK_NAMES = ("schema", "duplicates", "gaps", "ohlc_sanity", "freshness")


def _scope(
    context: dg.AssetCheckExecutionContext, partitions_def: dg.MultiPartitionsDefinition, uni: Universe
) -> tuple[dict[str, tuple[pd.Timestamp, pd.Timestamp]], str]:
    """{symbol: [start, end)} to check and a one-line description of where it came from."""
    keys = keys_from_tags(partitions_def, context.run.tags)
    if keys:
        scope = {}
        for symbol, days in group_by_symbol(keys).items():
            scope[symbol] = (utc_day_bounds(days[0])[0], utc_day_bounds(days[-1])[1])
        return scope, f"{len(keys)} partitions of this run"
    ref = uni.reference_time()
    start = (ref - pd.Timedelta(days=uni.checks.scope_days)).floor("D")
    return {s: (start, ref) for s in uni.symbols}, f"last {uni.checks.scope_days} days up to {fmt_ts(ref)}"


def _table(header: list[str], rows: list[list]) -> dg.MetadataValue:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in r) + " |" for r in rows]
    return dg.MetadataValue.md("\n".join(lines))


def build_candle_checks(
    spec: Universe, partitions_def: dg.MultiPartitionsDefinition
) -> dg.AssetChecksDefinition:
    """One multi-check op (reads the scope once, emits the five results)."""
    specs = [
        dg.AssetCheckSpec("schema", asset="candles", blocking=True,
                          description="Stored candles pass the engine's pandera schema (5m grid, UTC, OHLC)."),
        dg.AssetCheckSpec("duplicates", asset="candles", blocking=True,
                          description="No open time appears twice for a symbol."),
        dg.AssetCheckSpec("gaps", asset="candles", blocking=True,
                          description=f"Missing 5m slots between first and last candle: WARN when any, ERROR "
                                      f"above {spec.checks.max_missing_share:.0%} of the span."),
        dg.AssetCheckSpec("ohlc_sanity", asset="candles", blocking=True,
                          description=f"Finite positive prices, low <= open/close <= high, no close-to-close "
                                      f"jump above {spec.checks.max_jump:.0%} in 5 minutes."),
        dg.AssetCheckSpec("freshness", asset="candles", blocking=False,
                          description=f"Newest candle closed within {spec.checks.freshness_minutes} minutes "
                                      "(of the universe end for a historical universe); WARN when stale."),
    ]

    @dg.multi_asset_check(specs=specs, name="candle_checks", can_subset=True)
    def candle_checks(
        context: dg.AssetCheckExecutionContext, store: StoreResource, universe: UniverseResource
    ) -> Iterator[dg.AssetCheckResult]:
        from engine.schemas import CandleValidationError, validate_candles

        uni = universe.load()
        db = store.get()
        scope, scope_text = _scope(context, partitions_def, uni)
        selected = {k.name for k in context.selected_asset_check_keys}
        frames = {s: db.read_candles(uni.exchange, s, start=a, end=b) for s, (a, b) in sorted(scope.items())}
        total = sum(len(f) for f in frames.values())
        base = {"scope": scope_text, "rows_checked": dg.MetadataValue.int(total)}
        context.log.info(f"checking {total} candles ({scope_text})")

        if "schema" in selected:
            bad = {}
            for s, df in frames.items():
                try:
                    validate_candles(df, s)
                except CandleValidationError as exc:
                    bad[s] = str(exc).splitlines()[0]
            yield dg.AssetCheckResult(
                check_name="schema", passed=not bad, severity=ERROR,
                metadata={**base, "failures": _table(["symbol", "rule"], [[s, r] for s, r in bad.items()])},
                description="all symbols pass" if not bad else f"{len(bad)} symbols break the schema",
            )

        if "duplicates" in selected:
            dupes = {s: int(df["timestamp"].duplicated().sum()) for s, df in frames.items()}
            n = sum(dupes.values())
            yield dg.AssetCheckResult(
                check_name="duplicates", passed=n == 0, severity=ERROR,
                metadata={**base, "duplicate_rows": dg.MetadataValue.int(n)},
            )

        if "gaps" in selected:
            rows, worst, missing = [], 0.0, 0
            for s, df in frames.items():
                g = gap_stats(df["timestamp"])
                worst = max(worst, g.missing_share)
                missing += g.missing
                rows.append([s, len(df), g.missing, g.holes, g.largest_minutes, f"{g.missing_share:.2%}"])
            empty = [s for s, df in frames.items() if df.empty]
            too_many = worst > uni.checks.max_missing_share
            yield dg.AssetCheckResult(
                check_name="gaps",
                passed=missing == 0 and not empty,
                severity=ERROR if too_many else WARN,
                metadata={
                    **base,
                    "missing_slots": dg.MetadataValue.int(missing),
                    "worst_missing_share": dg.MetadataValue.float(round(worst, 6)),
                    "symbols_without_data": ", ".join(empty) or "-",
                    "by_symbol": _table(["symbol", "rows", "missing", "holes", "largest (min)", "share"], rows),
                },
                description=(
                    f"worst missing share {worst:.2%} > {uni.checks.max_missing_share:.0%}: data unusable"
                    if too_many else f"{missing} missing 5m slots inside the checked ranges"
                ),
            )

        if "ohlc_sanity" in selected:
            rows, bad_total = [], 0
            for s, df in frames.items():
                probs = ohlc_problems(df, uni.checks.max_jump)
                n = sum(probs.values())
                bad_total += n
                if n:
                    rows.append([s, *probs.values()])
            yield dg.AssetCheckResult(
                check_name="ohlc_sanity", passed=bad_total == 0, severity=ERROR,
                metadata={
                    **base,
                    "bad_bars": dg.MetadataValue.int(bad_total),
                    "problems": _table(
                        ["symbol", "non_finite", "non_positive", "high<low", "o/c outside", "jumps"], rows
                    ),
                },
            )

        if "freshness" in selected:
            ref = uni.reference_time()
            rows, stale = [], []
            for s in uni.symbols:
                summary = db.candle_summary(uni.exchange, s)
                last = summary.get("last")
                if last is None or pd.isna(last):
                    lag = None
                else:
                    lag = (ref - (pd.Timestamp(last) + BAR)).total_seconds() / 60
                if lag is None or lag > uni.checks.freshness_minutes:
                    stale.append(s)
                rows.append([s, fmt_ts(last), "never" if lag is None else f"{lag:.0f}"])
            yield dg.AssetCheckResult(
                check_name="freshness", passed=not stale, severity=WARN,
                metadata={
                    "reference_time": fmt_ts(ref),
                    "stale_symbols": ", ".join(stale) or "-",
                    "by_symbol": _table(["symbol", "last open time", "minutes since close"], rows),
                },
                description=(
                    f"{len(stale)} of {len(uni.symbols)} symbols stale (> {uni.checks.freshness_minutes} min)"
                    if stale else "all symbols fresh"
                ),
            )

    return candle_checks
