"""Backtest assets: one scheduled backtest per strategy (`backtests/<strategy>`), `strategy_performance`,
`strategy_comparison` and the home of every run (`backtest_runs`, see `runs.py`).

The scheduled backtests, performance and comparison are specs of the research refresh op
(`pipeline/defs/research/assets.py`): one op computes every symbol's features once and shares them with
the rankings and each strategy's backtest. Each strategy is its own asset spec: one strategy's error is
recorded and reported without stopping the others. Performance and comparison read the store back, so
they show exactly what was recorded and can be re-materialised on their own without re-running anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import pandas as pd

from pipeline.defs.backtests.runs import metrics_table, portfolio_settings, publish_run, span_days
from pipeline.metadata import (
    equity_figure,
    fmt_value,
    frame_table,
    image_markdown,
    numeric_entries,
    save_png,
    table,
)
from pipeline.reports import comparison_file, load_result, reports_dir, reports_url, run_files
from pipeline.results import (
    RunFailed,
    active_strategies,
    curve_from_windows,
    latest_run,
    run_and_record,
    stored_walk_forward_config,
)

GROUP = "backtests"
SCHEDULED_KIND = "scheduled"
PERFORMANCE = dg.AssetKey("strategy_performance")
COMPARISON = dg.AssetKey("strategy_comparison")
SYMBOL_COLUMNS = ("symbol", "trade_count", "win_rate", "avg_return", "profit_factor")


def backtest_key(strategy: str) -> dg.AssetKey:
    return dg.AssetKey([GROUP, strategy])


def backtest_specs(strategies: Sequence[str]) -> list[dg.AssetSpec]:
    """Per registered strategy, its scheduled backtest; then performance and comparison."""
    specs = [
        dg.AssetSpec(
            backtest_key(name),
            deps=["features"],
            group_name=GROUP,
            kinds={"sql"},
            skippable=True,  # an inactive strategy is not run
            description=(
                f"Scheduled walk-forward backtest of `{name}` (parameters from the strategy registry) over the "
                "stored history, recorded in the store with its config, data fingerprint and code version. "
                "Headline metrics are numeric metadata: the Plots tab charts them over time."
            ),
        )
        for name in strategies
    ]
    specs.append(dg.AssetSpec(
        PERFORMANCE, deps=[backtest_key(n) for n in strategies], group_name=GROUP, kinds={"sql"},
        description="Per active strategy, its latest scheduled run read back from the store: the headline "
                    "statistics with intervals (random picks, benchmark, Sharpe, costs) and per-symbol metrics.",
    ))  # fmt: skip
    specs.append(dg.AssetSpec(
        COMPARISON, deps=[PERFORMANCE], group_name=GROUP, kinds={"sql"},
        description="Strategies side by side (the latest run of each, or the runs named in the refresh "
                    "config's compare_run_ids), every metric with its interval, whether the leader's edge over "
                    "the others is significant, and the equity/drawdown curves.",
    ))  # fmt: skip
    return specs


def run_scheduled(
    context: Any, db: Any, uni: Any, row: Mapping[str, Any], cfg: Any, shared: Mapping[str, Any]
) -> dg.MaterializeResult:
    """One strategy's scheduled backtest (raises RunFailed, already recorded, when it cannot run)."""
    from engine.strategies import get_strategy

    name = row["name"]
    try:
        strategy = get_strategy(name, row["parameters"])
    except ValueError as exc:
        raise RunFailed(f"strategy {name!r}: {exc}") from exc
    # reuse an identical stored run only when its report files exist (else it is run and published again)
    run = run_and_record(db, uni, strategy, cfg, kind=SCHEDULED_KIND, reuse=True,
                         reusable=lambda run_id: run_files(run_id, name).html.is_file(), **shared)  # fmt: skip
    context.log.info(f"{name}: run {run.run_id}{' (reused: same data, config and code)' if run.reused else ''}: "
                     f"{run.period}")  # fmt: skip
    metadata = publish_run(context, run, f"{name}: equity, drawdown")
    return dg.MaterializeResult(asset_key=backtest_key(name), metadata=metadata)


def _scheduled_runs(db: Any) -> list[tuple[str, int, dict[str, Any]]]:
    """(strategy, run id, run row) of the latest successful scheduled run of each active strategy."""
    out = []
    for row in active_strategies(db):
        run = latest_run(db, row["name"], SCHEDULED_KIND)
        if run is not None:
            out.append((row["name"], int(run["id"]), run.to_dict()))
    return out


def performance(context: Any, db: Any, failed: Mapping[str, str]) -> dg.MaterializeResult:
    """Statistics of each active strategy's latest scheduled run, read back from the store."""
    from engine.metrics import symbol_metrics

    runs = _scheduled_runs(db)
    if not runs:
        raise RunFailed("no recorded backtests: materialise the backtests first")
    metadata: dict[str, Any] = {}
    stats = []
    for name, run_id, _ in runs:
        metrics = db.backtest_metrics(run_id)
        stats.append({"strategy": name, "run_id": run_id, **metrics})
        trades = db.backtest_trades(run_id)
        per_symbol = symbol_metrics(trades) if len(trades) else pd.DataFrame()
        metadata[f"by_symbol_{name}"] = (frame_table(per_symbol, SYMBOL_COLUMNS, limit=200)
                                         if len(per_symbol) else dg.MetadataValue.text("no trades"))  # fmt: skip
        metadata.update({f"{name}/{k}": v for k, v in numeric_entries(metrics, (
            "win_rate", "avg_return", "mean_window_return", "max_drawdown_aggregated", "trade_count")).items()})
    metadata = {"statistics": metrics_table({r["strategy"]: r for r in stats}),
                "runs": table(stats, ["strategy", "run_id", "trade_count"]), **metadata}
    if failed:
        metadata["failed_this_refresh"] = dg.MetadataValue.md(
            "\n".join(f"- **{k}**: {v} (its latest successful run is shown)" for k, v in failed.items()))
    return dg.MaterializeResult(asset_key=PERFORMANCE, metadata=metadata)


def best_first(rows: list[dict]) -> list[dict]:
    """Comparison rows by mean window return, best first; rows without one (no run data) go last."""
    return sorted(rows, key=lambda r: (r.get("mean_window_return") is None, -(r.get("mean_window_return") or 0.0)))


def _chosen_runs(db: Any, run_ids: Sequence[int]) -> list[tuple[str, int, dict[str, Any]]]:
    out = []
    for run_id in run_ids:
        run = db.backtest_run(int(run_id))
        if run is None or run["status"] != "success":
            state = "unknown" if run is None else f"{run['status']}"
            raise RunFailed(f"compare_run_ids: run {run_id} is {state}; pick successful runs (backtest_runs)")
        out.append((run["strategy"], int(run_id), run))
    return out


def comparison(context: Any, db: Any, run_ids: Sequence[int] = ()) -> dg.MaterializeResult:
    """Runs side by side with intervals; the leader is named with whether its edge is significant."""
    runs = _chosen_runs(db, run_ids) if run_ids else _scheduled_runs(db)
    if not runs:
        raise RunFailed("no recorded backtests to compare: materialise the backtests first")
    rows, curves, windows = [], {}, {}
    for name, run_id, run in runs:
        label = name if not run_ids else f"{name} #{run_id}"
        cfg = stored_walk_forward_config(run["config"])
        w = db.backtest_windows(run_id)
        rows.append({"strategy": label, "run_id": run_id, **db.backtest_metrics(run_id), **portfolio_settings(cfg),
                     "span_days": span_days(w)})  # fmt: skip
        windows[label] = w
        curves[label] = curve_from_windows(w, cfg.sleeve_factor)
    ranked = best_first(rows)
    metadata: dict[str, Any] = {
        "leader": dg.MetadataValue.md(leader_statement(ranked, windows, _overlap(runs))),
        "comparison": metrics_table({r["strategy"]: r for r in ranked}),
        "runs": table(ranked, ["strategy", "run_id", "trade_count"]),
    }
    name = "runs-" + "-".join(str(r) for _, r, _ in runs)  # files never overwritten by another comparison
    try:
        metadata.update(_comparison_files(name, curves, runs))
    except OSError as exc:  # the comparison itself is in the metadata; only its files are missing
        context.log.error(f"cannot write the comparison's files: {exc}")
        metadata["report"] = dg.MetadataValue.text(f"not written: {exc}")
    context.log.info("comparison:\n" + "\n".join(
        f"  {r['strategy']}: mean window return {fmt_value(r.get('mean_window_return'), 'mean_window_return')}"
        for r in ranked))  # fmt: skip
    return dg.MaterializeResult(asset_key=COMPARISON, metadata=metadata)


def _comparison_files(name: str, curves: dict[str, pd.DataFrame], runs: list) -> dict[str, Any]:
    """The comparison's plot and the engine's side-by-side HTML report, under the reports folder."""
    out: dict[str, Any] = {}
    figure = equity_figure(curves, "Comparison: equity and drawdown")
    if figure is not None:
        png = comparison_file(name).with_suffix(".png")
        png.parent.mkdir(parents=True, exist_ok=True)
        save_png(figure, png)
        out["equity_plot"] = image_markdown(_url(png), "equity and drawdown of the compared runs")
    report = _comparison_report(name, runs)
    if report is not None:
        out["report"] = dg.MetadataValue.url(_url(report))
        out["report_file"] = dg.MetadataValue.path(str(report))
    return out


def _overlap(runs: list[tuple[str, int, dict[str, Any]]]) -> int:
    """window/shift of the compared runs (the autocorrelation the paired bootstrap must respect)."""
    cfgs = [stored_walk_forward_config(run["config"]) for _, _, run in runs]
    return max(int(round(c.window_hours / c.shift_hours)) for c in cfgs)


def _url(path: Any) -> str:
    return f"{reports_url()}/{path.relative_to(reports_dir()).as_posix()}"


def _comparison_report(name: str, runs: list[tuple[str, int, dict[str, Any]]]) -> Any:
    """The engine's side-by-side HTML report, when every compared run's result was saved."""
    from engine.report import write_comparison

    results = {}
    for strategy, run_id, _ in runs:
        result = load_result(run_id, strategy)
        if result is None:
            return None
        results[f"{strategy} (run {run_id})"] = result
    return write_comparison(results, comparison_file(name))


def leader_statement(ranked: list[dict], windows: Mapping[str, pd.DataFrame], overlap: int = 2) -> str:
    """Who has the highest mean window return, and whether that lead over each other run is significant
    (paired block bootstrap over the decision times both runs share, one-sided at 5%)."""
    from engine.stats import compare_window_returns

    top = ranked[0]
    if top.get("mean_window_return") is None:
        return "No run has traded windows: nothing to compare."
    lines = [f"Highest mean window return: **{top['strategy']}** "
             f"({fmt_value(top['mean_window_return'], 'mean_window_return')} per window)."]  # fmt: skip
    base = windows[top["strategy"]].set_index("decision_time")["window_return"]
    for other in ranked[1:]:
        test = compare_window_returns(base, windows[other["strategy"]].set_index("decision_time")["window_return"],
                                      overlap=overlap)  # fmt: skip
        if test.n_windows < 10 or test.p_value_greater is None:
            lines.append(f"- versus {other['strategy']}: too few shared decision times ({test.n_windows}) to test.")
            continue
        verdict = "significant" if test.p_value_greater < 0.05 else "NOT significant"
        lines.append(
            f"- versus {other['strategy']}: difference {fmt_value(test.mean_difference, 'mean_difference')} per "
            f"window (95% interval {fmt_value(test.ci_low, 'mean_difference')} .. "
            f"{fmt_value(test.ci_high, 'mean_difference')}, one-sided p = {test.p_value_greater:.3f}, "
            f"{test.n_windows} shared decision times): the lead is **{verdict}** at 5%."
        )
    return "\n".join(lines)
