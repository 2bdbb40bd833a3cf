"""What a recorded backtest shows, and its home: one `backtest_runs` partition per stored run.

Scheduled, ad-hoc and request runs all come through `pipeline.results.run_and_record`; `publish_run`
then writes the run's report files (HTML report, equity plot, result), builds its metadata (verdict,
headline table with units and intervals, numbers the Plots tab charts, the plot inline, the report
link) and materialises the run's partition of the dynamically partitioned `backtest_runs` asset, so every
run can be found in the asset catalog, not only deep in a run log.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from pipeline.metadata import equity_figure, fmt_value, frame_table, image_markdown, numeric_entries, table
from pipeline.reports import RunFiles, load_result, run_files, save_run
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
        "verdict, headline metrics with intervals, equity/drawdown plot, a link to its HTML report and its "
        "config. Written by the runs themselves."
    ),
)

#: (metric key, label, interval keys) of the headline table, in reading order
HEADLINE_ROWS = (
    ("mean_window_return", "mean return / window", ("mean_window_return_ci_low", "mean_window_return_ci_high")),
    ("median_window_return", "median return / window",
     ("median_window_return_ci_low", "median_window_return_ci_high")),
    ("null_mean_window_return", "random picks / window", None),
    ("null_p_value", "p vs random picks", None),
    ("benchmark_mean_window_return", "benchmark / window", None),
    ("total_return", "total return", None),
    ("max_drawdown_aggregated", "max drawdown", None),
    ("sharpe", "Sharpe (annualised)", ("sharpe_ci_low", "sharpe_ci_high")),
    ("deflated_sharpe", "deflated Sharpe (prob.)", None),
    ("win_rate", "win rate / trade", ("win_rate_ci_low", "win_rate_ci_high")),
    ("profit_factor", "profit factor", ("profit_factor_ci_low", "profit_factor_ci_high")),
    ("trade_count", "completed trades", None),
    ("coverage", "coverage", None),
    ("break_even_fee_bps", "break-even fee / side", None),
    ("sizing", "sizing (portfolio mode)", None),
    ("cagr", "CAGR (compounded, annualised)", None),
    ("max_drawdown_compounded", "max drawdown (compounded)", None),
    ("final_equity", "final equity", None),
    ("avg_invested_share", "average invested share", None),
)  # fmt: skip
#: CAGR is shown only for runs spanning at least this many days (annualised weeks mislead)
MIN_CAGR_DAYS = 90
#: rows shown only for runs in portfolio mode (compounding on)
COMPOUNDED = frozenset({"cagr", "max_drawdown_compounded", "final_equity", "avg_invested_share"})
NUMERIC = ("mean_window_return", "mean_window_return_ci_low", "mean_window_return_ci_high", "win_rate",
           "trade_count", "total_return", "max_drawdown_aggregated", "null_p_value", "sharpe",
           "break_even_fee_bps")  # fmt: skip
TRADE_PREVIEW = ("decision_time", "symbol", "return_pct", "max_drawdown", "weight")


def span_days(windows: Any) -> float:
    """Days from the first decision to the last (0 without windows)."""
    if windows is None or len(windows) == 0:
        return 0.0
    times = windows["decision_time"]
    return float((times.iloc[-1] - times.iloc[0]).total_seconds() / 86_400)


def portfolio_settings(cfg: Any) -> dict[str, Any]:
    """How capital was sized and whether it compounded, as table cells (from a WalkForwardConfig)."""
    sizing = cfg.sizing + (f", cap {cfg.max_weight:.0%}" if cfg.max_weight else "")
    if cfg.position_fraction:
        sizing += f", {cfg.position_fraction:.0%} per position"
    return {"sizing": sizing + (", compounding" if cfg.compounding else ", not compounded"),
            "compounding": bool(cfg.compounding)}


def run_partition_key(run: RecordedRun) -> str:
    """`000042-momentum_rank-adhoc`: sorts by run id, readable in the partition list."""
    return f"{run.run_id:06d}-{run.strategy}-{run.kind}"


def metrics_table(runs: dict[str, dict[str, Any]], value_label: str = "value") -> dg.TableMetadataValue:
    """A narrow vertical table: one row per headline metric, one column per run ("value [interval]"), units
    in the values (fits the asset page; a single run gets a separate interval column)."""
    single = len(runs) == 1
    rows = []
    compounding = any(m.get("compounding") for m in runs.values())
    long_enough = all((m.get("span_days") or 0) >= MIN_CAGR_DAYS for m in runs.values())
    for key, text, interval in HEADLINE_ROWS:
        if not any(key in m for m in runs.values()) or (key in COMPOUNDED and not compounding):
            continue
        if key == "cagr" and not long_enough:  # annualising a few weeks gives absurd figures
            continue
        row: dict[str, Any] = {"metric": text}
        for label, m in runs.items():
            value = fmt_value(m.get(key), key)
            ci = "-"
            if interval and m.get(interval[0]) is not None:
                ci = f"{fmt_value(m.get(interval[0]), key)} .. {fmt_value(m.get(interval[1]), key)}"
            if single:
                row.update({value_label: value, "95% interval": ci})
            else:
                row[label] = value if ci == "-" else f"{value} [{ci}]"
        rows.append(row)
    columns = ["metric", value_label, "95% interval"] if single else ["metric", *runs]
    return table(rows, columns)


def headline_table(metrics: dict[str, Any]) -> dg.TableMetadataValue:
    return metrics_table({"run": metrics})


def verdict_text(result: Any, metrics: dict[str, Any]) -> str:
    """The report's verdict paragraph (the engine's wording), or a short one without a result."""
    if result is not None:
        from engine.report.verdict import verdict

        return verdict(result).text
    mean = metrics.get("mean_window_return")
    if mean is None:
        return "No window was traded: nothing to judge."
    return (f"Mean return per window {fmt_value(mean, 'mean_window_return')} (interval "
            f"{fmt_value(metrics.get('mean_window_return_ci_low'), 'mean_window_return')} .. "
            f"{fmt_value(metrics.get('mean_window_return_ci_high'), 'mean_window_return')}), p-value against "
            f"random picks {fmt_value(metrics.get('null_p_value'))}.")  # fmt: skip


def _files(run: RecordedRun, title: str) -> tuple[RunFiles | None, Any]:
    """Write a fresh run's files; find a reused run's. Returns (files or None, the engine result or None)."""
    if not run.reused and run.result is not None:
        curve = curve_from_windows(run.windows, run.config.sleeve_factor)
        figure = equity_figure({run.strategy: curve}, title)
        return (save_run(run.run_id, run.result, figure) if figure is not None else None), run.result
    files = run_files(run.run_id, run.strategy)
    return (files if files.html.is_file() else None), load_result(run.run_id, run.strategy)


def run_metadata(run: RecordedRun, files: RunFiles | None, result: Any) -> dict[str, Any]:
    """The metadata of one recorded run (its home partition, the per-strategy asset, the ad-hoc op)."""
    m = {**run.metrics, **portfolio_settings(run.config), "run_id": run.run_id, "kind": run.kind,
         "span_days": span_days(run.windows)}
    out: dict[str, Any] = {
        "verdict": dg.MetadataValue.md(verdict_text(result, m)),
        "headline": headline_table(m),
    }
    if files is not None:
        out["equity_plot"] = image_markdown(files.png_url, f"{run.strategy}: equity and drawdown")
        out["report"] = dg.MetadataValue.url(files.html_url)
        out["report_file"] = dg.MetadataValue.path(str(files.html))
    out.update({
        "store_run_id": dg.MetadataValue.int(run.run_id),
        "kind": run.kind,
        "reused_identical_run": dg.MetadataValue.bool(run.reused),
        "decision_period": run.period,
        "symbols": ", ".join(run.symbols),
        **numeric_entries(m, NUMERIC),
        "params": dg.MetadataValue.json(dict(run.params)),
        "config": dg.MetadataValue.json(run.config.to_dict()),
        "last_trades": frame_table(run.trades.tail(10), TRADE_PREVIEW, limit=10),
    })  # fmt: skip
    if run.notes:
        out["notes"] = dg.MetadataValue.md("\n".join(f"- {n}" for n in run.notes))
    return out


def publish_run(context: Any, run: RecordedRun, title: str) -> dict[str, Any]:
    """Report files, metadata, and the run's `backtest_runs` partition (added when missing, so a run whose
    publishing failed once gets its home the next time it is published)."""
    try:
        files, result = _files(run, title)
    except OSError as exc:  # the run is recorded; its home still says where the report could not go
        context.log.error(f"run {run.run_id}: cannot write its report files: {exc}")
        files, result, failure = None, run.result, exc
    else:
        failure = None
    metadata = run_metadata(run, files, result)
    key = run_partition_key(run)
    if not run.reused or not context.instance.has_dynamic_partition(BACKTEST_RUNS, key):
        context.instance.add_dynamic_partitions(BACKTEST_RUNS, [key])
        context.log_event(dg.AssetMaterialization(asset_key=BACKTEST_RUNS, partition=key, metadata=metadata))
    metadata["home_partition"] = f"backtest_runs / {key}"
    if failure is not None:
        raise RunPublishError(f"run {run.run_id} is recorded but its report files could not be written under "
                              f"{run_files(run.run_id, run.strategy).html.parent}: {failure}")  # fmt: skip
    if files is not None:
        context.log.info(f"run {run.run_id} report: {files.html} ({files.html_url})")
    return metadata


class RunPublishError(RuntimeError):
    """A recorded run's report files could not be written (e.g. an unwritable reports folder)."""
