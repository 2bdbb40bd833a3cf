"""Asset checks on `candles`: schema, duplicates, gaps, OHLC sanity (blocking) and freshness (warning).

The checks read back what the store holds, so they judge the data the research assets will use, not
the provider's answer. Scope: the partitions of the run they execute in (single key or range tags);
executed on their own (UI "Execute checks"), the last `checks.scope_days` days. A blocking check that
fails with ERROR severity fails its step, so downstream assets in the same run are skipped and the
refresh sensor does not launch research runs from that ingestion.
"""


from collections.abc import Iterator
from datetime import date

import dagster as dg
import pandas as pd

from pipeline.defs.market_data.completeness import partition_gaps
from pipeline.defs.market_data.outcome import CHECKS, outcome_observation
from pipeline.defs.market_data.partitions import group_by_symbol, keys_from_tags
from pipeline.defs.market_data.quality import BAR, expected_slots, jump_times, schema_problem
from pipeline.metadata import fmt_ts, pct
from pipeline.metadata import table as typed_table
from pipeline.resources import StoreResource, UniverseResource
from pipeline.scaleout.executor import INGEST_QUEUE, queue_tags
from pipeline.universe import Universe, utc_day_bounds

ERROR = dg.AssetCheckSeverity.ERROR
WARN = dg.AssetCheckSeverity.WARN
CHECK_NAMES = ("schema", "duplicates", "gaps", "ohlc_sanity", "freshness")
#: checks that stop downstream steps (and the refresh sensor) when they fail with ERROR severity
BLOCKING_CHECKS = ("schema", "duplicates", "gaps", "ohlc_sanity")


def _scope(
    context: dg.AssetCheckExecutionContext, partitions_def: dg.MultiPartitionsDefinition, uni: Universe
) -> tuple[dict[str, tuple[pd.Timestamp, pd.Timestamp]], dict[str, list[date]], str]:
    """{symbol: [start, end)} to check, {symbol: partition days}, and where the scope came from."""
    keys = keys_from_tags(partitions_def, context.run.tags)
    if keys:
        by_symbol = group_by_symbol(keys)
        scope = {s: (utc_day_bounds(ds[0])[0], utc_day_bounds(ds[-1])[1]) for s, ds in by_symbol.items()}
        return scope, by_symbol, f"{len(keys)} partitions of this run"
    ref = uni.reference_time()
    start = (ref - pd.Timedelta(days=uni.checks.scope_days)).floor("D")
    last = (ref - pd.Timedelta(milliseconds=1)).date()
    days = [d.date() for d in pd.date_range(start.date(), last, freq="D") if d.date() >= uni.start]
    return ({s: (start, ref) for s in uni.symbols}, dict.fromkeys(uni.symbols, days),
            f"last {uni.checks.scope_days} days up to {fmt_ts(ref)}")  # fmt: skip


def _table(rows: list[dict], columns: list[str]) -> dg.MetadataValue:
    return typed_table(rows, columns)


def _gaps_result(context: dg.AssetCheckExecutionContext, uni: Universe, frames: dict[str, pd.DataFrame],
                 days: dict[str, list[date]], base: dict) -> dg.AssetCheckResult:  # fmt: skip
    """Holes over whole partitions (head and tail included): ERROR for any the source never explained or
    above `max_missing_share` of the checked slots, WARN for holes the source confirmed empty."""
    ref = uni.reference_time()
    found = partition_gaps(context.instance, uni, frames, days, ref)
    rows, unexplained_ranges, worst = [], [], 0.0
    for g in found:
        slots = sum(expected_slots(*uni.partition_bounds(d), ref) for d in days[g.symbol] if d not in g.not_ingested)
        share = g.missing / slots if slots else 0.0
        worst = max(worst, share)
        unexplained_ranges += [f"{g.symbol} {h}" for h in g.unexplained]
        rows.append({"symbol": g.symbol, "rows": len(frames.get(g.symbol, [])), "missing": g.missing,
                     "unexplained": g.unexplained_slots, "holes": len(g.holes),
                     "largest gap (min)": max((h.slots * 5 for h in g.holes), default=0), "missing_share": share,
                     "not ingested": ", ".join(map(str, g.not_ingested)) or "-"})  # fmt: skip
    missing = sum(g.missing for g in found)
    too_many = worst > uni.checks.max_missing_share
    if unexplained_ranges:
        shown = "; ".join(unexplained_ranges[:8]) + (" ..." if len(unexplained_ranges) > 8 else "")
        why = f"{len(unexplained_ranges)} missing ranges the source never explained: {shown}"
    elif too_many:
        why = f"worst missing share {worst:.2%} > {pct(uni.checks.max_missing_share)}: data unusable"
    else:
        why = f"{missing} missing 5m slots, each confirmed empty by the source"
    not_ingested = sorted({s for g in found for s in [g.symbol] if g.not_ingested})
    return dg.AssetCheckResult(
        check_name="gaps",
        passed=missing == 0 and not not_ingested,
        severity=ERROR if unexplained_ranges or too_many else WARN,
        metadata={
            **base,
            "missing_slots": dg.MetadataValue.int(missing),
            "unexplained_ranges": dg.MetadataValue.md("\n".join(f"- {r}" for r in unexplained_ranges[:200]) or "-"),
            "worst_missing_share": dg.MetadataValue.float(round(worst, 6)),
            "symbols_without_data": ", ".join(not_ingested) or "-",
            "by_symbol": _table(rows, ["symbol", "rows", "missing", "unexplained", "holes", "largest gap (min)",
                                       "missing_share", "not ingested"]),
        },  # fmt: skip
        description=why if missing or not not_ingested else f"{len(not_ingested)} symbols have partitions not ingested",
    )


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
                                      f"above {pct(spec.checks.max_missing_share)} of the span."),
        dg.AssetCheckSpec("ohlc_sanity", asset="candles", blocking=True,
                          description=f"Bars pass the engine schema (finite, > 0, low <= open/close <= high; the rule "
                                      f"is named) and no close-to-close jump above {pct(spec.checks.max_jump)} in 5 "
                                      "minutes."),
        dg.AssetCheckSpec("freshness", asset="candles", blocking=False,
                          description=f"Newest candle closed within {spec.checks.freshness_minutes} minutes "
                                      "(of the universe end for a historical universe); WARN when stale."),
    ]

    @dg.multi_asset_check(specs=specs, name="candle_checks", can_subset=True, op_tags=queue_tags(INGEST_QUEUE))
    def candle_checks(
        context: dg.AssetCheckExecutionContext, store: StoreResource, universe: UniverseResource
    ) -> Iterator[dg.AssetCheckResult]:
        # all results first: a failing blocking check stops the op when it is yielded, and the refresh
        # sensor reads the outcome (recorded as an observation of candles) before that
        results = list(_evaluate(context, store, universe))
        failures = [r for r in results if not r.passed and r.severity == ERROR and r.check_name in BLOCKING_CHECKS]
        latest = context.instance.fetch_materializations(dg.AssetKey("candles"), limit=1).records
        ingested = bool(latest) and latest[0].run_id == context.run.run_id
        if failures:
            first = failures[0]
            why = first.description or "failed"
            observation = outcome_observation(CHECKS, ok=False, why=why, check=first.check_name, ingested=ingested)
        else:
            observation = outcome_observation(CHECKS, ok=True, why="every blocking check passed", ingested=ingested)
        context.op_execution_context.log_event(observation)
        yield from results

    def _evaluate(
        context: dg.AssetCheckExecutionContext, store: StoreResource, universe: UniverseResource
    ) -> Iterator[dg.AssetCheckResult]:
        uni = universe.load()
        db = store.get()
        scope, scope_days, scope_text = _scope(context, partitions_def, uni)
        selected = {k.name for k in context.selected_asset_check_keys}
        frames = {s: db.read_candles(uni.exchange, s, start=a, end=b) for s, (a, b) in sorted(scope.items())}
        total = sum(len(f) for f in frames.values())
        base = {"scope": scope_text, "rows_checked": dg.MetadataValue.int(total)}
        context.log.info(f"checking {total} candles ({scope_text})")

        rules = {s: schema_problem(df, s) for s, df in frames.items()}
        if "schema" in selected:
            bad = {s: r for s, r in rules.items() if r}
            yield dg.AssetCheckResult(
                check_name="schema", passed=not bad, severity=ERROR,
                metadata={**base, "failures": _table([{"symbol": s, "rule": r} for s, r in bad.items()],
                                                     ["symbol", "rule"])},
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
            yield _gaps_result(context, uni, frames, scope_days, base)

        if "ohlc_sanity" in selected:
            rows, jumps_total = [], 0
            for s, df in frames.items():
                # a frame that breaks the schema has no meaningful returns: report the rule instead
                jumps = jump_times(df, uni.checks.max_jump) if not rules[s] else df["timestamp"].iloc[:0]
                jumps_total += len(jumps)
                if rules[s] or len(jumps):
                    rows.append({"symbol": s, "schema rule": rules[s] or "-", "jumps": len(jumps),
                                 "first jump": fmt_ts(jumps.iloc[0]) if len(jumps) else "-"})
            yield dg.AssetCheckResult(
                check_name="ohlc_sanity", passed=not rows, severity=ERROR,
                metadata={
                    **base,
                    "bad_bars": dg.MetadataValue.int(jumps_total),
                    "problems": _table(rows, ["symbol", "schema rule", "jumps", "first jump"]),
                },
                description=(
                    "prices consistent, no jumps" if not rows
                    else f"{len(rows)} symbols: {jumps_total} bars jump more than {pct(uni.checks.max_jump)}"
                    + (f", {sum(1 for r in rows if r['schema rule'] != '-')} break the price rules"
                       if any(r["schema rule"] != "-" for r in rows) else "")
                ),
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
                rows.append({"symbol": s, "last open time": fmt_ts(last),
                             "minutes since close": "never" if lag is None else f"{lag:.0f}"})
            yield dg.AssetCheckResult(
                check_name="freshness", passed=not stale, severity=WARN,
                metadata={
                    "reference_time": fmt_ts(ref),
                    "stale_symbols": ", ".join(stale) or "-",
                    "by_symbol": _table(rows, ["symbol", "last open time", "minutes since close"]),
                },
                description=(
                    f"{len(stale)} of {len(uni.symbols)} symbols stale (> {uni.checks.freshness_minutes} min)"
                    if stale else "all symbols fresh"
                ),
            )

    return candle_checks
