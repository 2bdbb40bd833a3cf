"""`backtests` -> `strategy_performance` -> `strategy_comparison`.

`backtests` runs every active strategy with its default parameters over the stored history and records
each run (config, universe, data fingerprint, code version, trades, windows, metrics) in the store.
The two downstream assets read those records back, so they show exactly what was stored and can be
re-materialised without re-running the engine.
"""


import dagster as dg
import pandas as pd
from pydantic import Field

from pipeline.quality import fmt_ts
from pipeline.research import (
    SUMMARY_COLUMNS,
    TRADE_PREVIEW,
    active_strategies,
    curve_from_windows,
    equity_plot_markdown,
    frame_table,
    latest_run,
    load_candles,
    md_table,
    record_result,
    stored_walk_forward_config,
    summary_row,
)
from pipeline.resources import StoreResource, UniverseResource

GROUP = "research"
SCHEDULED_KIND = "scheduled"
STAT_COLUMNS = (
    "mean_window_return", "mean_window_return_ci_low", "mean_window_return_ci_high", "null_mean_window_return",
    "null_p_value", "benchmark_mean_window_return", "rank_ic_mean", "break_even_fee_bps",
)  # fmt: skip


class BacktestsConfig(dg.Config):
    """Walk-forward settings of the per-strategy refresh (strategy parameters stay at their defaults)."""

    lookback_days: int = Field(default=0, ge=0, description="Days of stored history to test; 0 = all of it.")
    window_hours: float = Field(default=4, gt=0, description="Holding window per decision.")
    shift_hours: float = Field(default=2, gt=0, description="Hours between decision times.")
    fee_bps: float = Field(default=10, ge=0, description="Fee per side, basis points.")
    slippage_bps: float = Field(default=0, ge=0, description="Slippage per side, basis points.")
    max_positions: int = Field(default=3, ge=1, description="Symbols held per window.")
    warmup_bars: int = Field(default=0, ge=0, description="Closed feature bars needed; 0 = engine default.")


def best_first(rows: list[dict]) -> list[dict]:
    """Comparison rows by mean window return, best first; rows without one (no run data) go last."""
    return sorted(rows, key=lambda r: (r.get("mean_window_return") is None, -(r.get("mean_window_return") or 0.0)))


@dg.asset(
    deps=["features"],
    group_name=GROUP,
    kinds={"sql"},
    description=(
        "Walk-forward backtest of every active strategy (default parameters) over the stored history; "
        "each run is recorded in the store with its config, data fingerprint and code version."
    ),
)
def backtests(
    context: dg.AssetExecutionContext,
    config: BacktestsConfig,
    store: StoreResource,
    universe: UniverseResource,
) -> dg.MaterializeResult:
    from engine.backtest import WalkForwardConfig, run_walk_forward
    from engine.strategies import get_strategy

    uni = universe.load()
    db = store.get()
    ref = uni.reference_time()
    start = ref - pd.Timedelta(days=config.lookback_days) if config.lookback_days else None
    candles = load_candles(db, uni, start=start, end=ref)
    if not candles:
        raise dg.Failure(description=f"no stored candles for {uni.name!r}: materialise `candles` first")
    cfg = WalkForwardConfig(
        window_hours=config.window_hours,
        shift_hours=config.shift_hours,
        fee_bps=config.fee_bps,
        slippage_bps=config.slippage_bps,
        max_positions=config.max_positions,
        warmup_bars=config.warmup_bars or None,
    )
    rows, failures, curves, previews = [], {}, {}, []
    for row in active_strategies(db):
        name = row["name"]
        try:
            strategy = get_strategy(name, row["parameters"])
            result = run_walk_forward(candles, strategy, cfg)
            run_id = record_result(db, result, kind=SCHEDULED_KIND, candles=candles)
        except Exception as exc:  # noqa: BLE001 - recorded, reported, and the asset fails below
            context.log.error(f"{name}: backtest failed: {exc}")
            failures[name] = str(exc)
            db.record_failed_backtest(
                strategy=name, kind=SCHEDULED_KIND, config=cfg.to_dict(), universe=sorted(candles), error=str(exc)
            )
            continue
        context.log.info(f"{name}: run {run_id}: {result.summary()}")
        rows.append(summary_row(name, run_id, result.metrics))
        curves[name] = result.windows
        previews.append(f"**{name}** (last 10 trades)\n\n" + frame_table(result.trades.tail(10), TRADE_PREVIEW))
    if failures:
        raise dg.Failure(
            description=f"backtests failed for {sorted(failures)}: " + "; ".join(f"{k}: {v}" for k, v in failures.items()),
            metadata={"succeeded": dg.MetadataValue.md(md_table(rows, ["strategy", "run_id", "trade_count"]))},
        )
    first = min(df["timestamp"].iloc[0] for df in candles.values())
    last = max(df["timestamp"].iloc[-1] for df in candles.values())
    plot = equity_plot_markdown(curves, f"{uni.name}: walk-forward equity and drawdown (non-compounded)")
    metadata = {
        "summary": dg.MetadataValue.md(md_table(rows, ["strategy", "run_id", *SUMMARY_COLUMNS])),
        "run_ids": dg.MetadataValue.json({r["strategy"]: r["run_id"] for r in rows}),
        "data_range": f"{fmt_ts(first)} .. {fmt_ts(last)}",
        "symbols": dg.MetadataValue.int(len(candles)),
        "config": dg.MetadataValue.json(cfg.to_dict()),
        "trade_preview": dg.MetadataValue.md("\n\n".join(previews)),
    }
    if plot:
        metadata["equity_plot"] = dg.MetadataValue.md(plot)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    deps=["backtests"],
    group_name=GROUP,
    kinds={"sql"},
    description=(
        "Per strategy, the latest scheduled backtest's performance read back from the store: headline "
        "metrics, block-bootstrap confidence interval, null baseline, benchmark, rank IC, break-even fee, "
        "and per-symbol metrics."
    ),
)
def strategy_performance(
    context: dg.AssetExecutionContext, store: StoreResource
) -> dg.MaterializeResult:
    from engine.metrics import symbol_metrics

    db = store.get()
    metadata: dict[str, object] = {}
    rows, stats = [], []
    for row in active_strategies(db):
        name = row["name"]
        run = latest_run(db, name, SCHEDULED_KIND)
        if run is None:
            context.log.warning(f"{name}: no successful scheduled backtest yet")
            continue
        run_id = int(run["id"])
        metrics = db.backtest_metrics(run_id)
        trades = db.backtest_trades(run_id)
        rows.append(summary_row(name, run_id, metrics))
        stats.append({"strategy": name, **{k: metrics.get(k) for k in STAT_COLUMNS}})
        per_symbol = symbol_metrics(trades) if len(trades) else pd.DataFrame()
        metadata[f"by_symbol_{name}"] = dg.MetadataValue.md(
            frame_table(per_symbol, list(per_symbol.columns), limit=100) if len(per_symbol) else "no trades"
        )
        for key in ("win_rate", "avg_return", "max_drawdown_aggregated", "trade_count"):
            value = metrics.get(key)
            if value is not None:
                metadata[f"{name}/{key}"] = dg.MetadataValue.float(float(value))
    if not rows:
        raise dg.Failure(description="no recorded backtests: materialise `backtests` first")
    metadata["summary"] = dg.MetadataValue.md(md_table(rows, ["strategy", "run_id", *SUMMARY_COLUMNS]))
    metadata["statistics"] = dg.MetadataValue.md(md_table(stats, ["strategy", *STAT_COLUMNS]))
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    deps=["strategy_performance"],
    group_name=GROUP,
    kinds={"sql"},
    description="Strategies side by side: summary table, equity/drawdown plot and recent trades.",
)
def strategy_comparison(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult:
    db = store.get()
    rows, curves, previews = [], {}, []
    for row in active_strategies(db):
        name = row["name"]
        run = latest_run(db, name, SCHEDULED_KIND)
        if run is None:
            continue
        run_id = int(run["id"])
        metrics = db.backtest_metrics(run_id)
        rows.append({**summary_row(name, run_id, metrics),
                     "mean_window_return": metrics.get("mean_window_return"),
                     "null_p_value": metrics.get("null_p_value"),
                     "break_even_fee_bps": metrics.get("break_even_fee_bps")})
        cfg = stored_walk_forward_config(run["config"])
        curves[name] = curve_from_windows(db.backtest_windows(run_id), cfg.sleeve_factor)
        trades = db.backtest_trades(run_id)
        previews.append(f"**{name}** (last 5 trades)\n\n" + frame_table(trades.tail(5), TRADE_PREVIEW))
    if not rows:
        raise dg.Failure(description="no recorded backtests to compare: materialise `backtests` first")
    ranked = best_first(rows)
    columns = ["strategy", "run_id", "trade_count", "win_rate", "avg_return", "mean_window_return",
               "null_p_value", "max_drawdown_aggregated", "total_return", "break_even_fee_bps"]  # fmt: skip
    metadata: dict[str, object] = {
        "comparison": dg.MetadataValue.md(md_table(ranked, columns)),
        "best_by_mean_window_return": ranked[0]["strategy"],
        "trade_preview": dg.MetadataValue.md("\n\n".join(previews)),
    }
    plot = equity_plot_markdown(curves, "Strategy comparison: equity and drawdown (non-compounded sleeves)")
    if plot:
        metadata["equity_plot"] = dg.MetadataValue.md(plot)
    context.log.info("\n" + md_table(ranked, columns))
    return dg.MaterializeResult(metadata=metadata)
