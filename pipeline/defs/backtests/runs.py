"""What a recorded backtest shows in the UI, and its home: one `backtest_runs` partition per stored run.

Scheduled, ad-hoc and request runs all come through `pipeline.results.run_and_record`; this module turns
the `RecordedRun` into metadata (typed tables split by topic, headline numbers the Plots tab charts,
an equity/drawdown plot) and adds the run's partition to the dynamically partitioned `backtest_runs`
asset, so every run can be found in the asset catalog, not only deep in a run log.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from pipeline.metadata import equity_plot_markdown, frame_table, numeric_entries, table
from pipeline.results import RecordedRun, curve_from_windows

BACKTEST_RUNS = "backtest_runs"
runs_partitions = dg.DynamicPartitionsDefinition(name=BACKTEST_RUNS)

backtest_runs = dg.AssetSpec(
    BACKTEST_RUNS,
    partitions_def=runs_partitions,
    group_name="backtests",
    kinds={"sql"},
    description=(
        "Every recorded backtest run - scheduled, ad hoc (Launchpad) or from a request file - as one "
        "partition named <store run id>-<strategy>-<kind>. Each partition's materialization holds the run's "
        "summary tables, headline metrics, equity/drawdown plot and config. Written by the runs themselves."
    ),
)

RUN_COLUMNS = ("run_id", "kind", "trade_count", "coverage", "win_rate", "avg_return", "profit_factor",
               "max_drawdown_trade")  # fmt: skip
PORTFOLIO_COLUMNS = ("mean_window_return", "mean_window_return_ci_low", "mean_window_return_ci_high",
                     "total_return", "max_drawdown_aggregated", "exposure", "turnover")  # fmt: skip
VERSUS_COLUMNS = ("null_mean_window_return", "null_p_value", "benchmark_mean_window_return",
                  "benchmark_total_return", "rank_ic_mean", "break_even_fee_bps")  # fmt: skip
HEADLINE = ("mean_window_return", "mean_window_return_ci_low", "mean_window_return_ci_high", "win_rate",
            "trade_count", "total_return", "max_drawdown_aggregated", "null_p_value", "sharpe",
            "break_even_fee_bps")  # fmt: skip
TRADE_PREVIEW = ("decision_time", "symbol", "rank", "score", "entry_price", "exit_price", "return_pct",
                 "max_drawdown", "weight", "void")  # fmt: skip


def run_partition_key(run: RecordedRun) -> str:
    """`000042-momentum_rank-adhoc`: sorts by run id, readable in the partition list."""
    return f"{run.run_id:06d}-{run.strategy}-{run.kind}"


def verdict(metrics: dict[str, Any]) -> str:
    """One paragraph in plain words: is there an edge, with its interval and p-value."""
    from pipeline.metadata import fmt_value

    mean, low, high = (metrics.get(k) for k in ("mean_window_return", "mean_window_return_ci_low",
                                                 "mean_window_return_ci_high"))  # fmt: skip
    p = metrics.get("null_p_value")
    if mean is None:
        return "No window was traded: nothing to judge."
    interval = f"{fmt_value(low, 'mean_window_return')} .. {fmt_value(high, 'mean_window_return')}"
    if low is not None and low > 0 and p is not None and p < 0.05:
        call = "an edge: the interval excludes zero and random picks rarely do as well"
    elif high is not None and high < 0:
        call = "a loss: the whole interval is below zero"
    else:
        call = "no demonstrated edge: the interval includes zero or random picks do as well"
    return (
        f"Mean window return {fmt_value(mean, 'mean_window_return')} per window (interval {interval}); "
        f"p-value against random picks {fmt_value(p)}; equal-weight benchmark "
        f"{fmt_value(metrics.get('benchmark_mean_window_return'), 'mean_window_return')}; break-even fee "
        f"{fmt_value(metrics.get('break_even_fee_bps'), 'break_even_fee_bps')} per side. Verdict: {call}."
    )


def run_metadata(run: RecordedRun, title: str) -> dict[str, Any]:
    """The metadata of one recorded run (used by its home partition, the per-strategy asset, the op)."""
    m = {**run.metrics, "run_id": run.run_id, "kind": run.kind}
    curve = curve_from_windows(run.windows, run.config.sleeve_factor)
    out: dict[str, Any] = {
        "verdict": dg.MetadataValue.md(verdict(m)),
        "store_run_id": dg.MetadataValue.int(run.run_id),
        "reused_identical_run": dg.MetadataValue.bool(run.reused),
        "decision_period": run.period,
        "run": table([m], RUN_COLUMNS),
        "portfolio": table([m], PORTFOLIO_COLUMNS),
        "versus_null_and_benchmark": table([m], VERSUS_COLUMNS),
        **numeric_entries(m, HEADLINE),
        "params": dg.MetadataValue.json(dict(run.params)),
        "config": dg.MetadataValue.json(run.config.to_dict()),
        "symbols": ", ".join(run.symbols),
        "last_trades": frame_table(run.trades.tail(15), TRADE_PREVIEW, limit=15),
    }
    plot = equity_plot_markdown({run.strategy: curve}, title)
    if plot:
        out["equity_plot"] = dg.MetadataValue.md(plot)
    if run.notes:
        out["notes"] = dg.MetadataValue.md("\n".join(f"- {n}" for n in run.notes))
    return out


def record_home(context: Any, run: RecordedRun, metadata: dict[str, Any]) -> str | None:
    """Add the run's `backtest_runs` partition and materialise it with `metadata`; None for a reused run
    (its partition exists since the run was first recorded)."""
    if run.reused:
        return None
    key = run_partition_key(run)
    context.instance.add_dynamic_partitions(BACKTEST_RUNS, [key])
    context.log_event(dg.AssetMaterialization(asset_key=BACKTEST_RUNS, partition=key, metadata=metadata))
    return key
