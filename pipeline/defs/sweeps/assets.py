"""`sweep_runs`: the home of every sweep, one partition per sweep (`<sweep id>-<strategy>`), materialised by
the sweep's merge step with its verdict (best configuration, PBO, deflated Sharpe, SPA in plain words),
its top configurations, a plot and the link to its HTML report."""

from __future__ import annotations

from typing import Any

import dagster as dg

from pipeline.metadata import fmt_value, image_markdown, numeric_entries, save_png, table
from pipeline.reports import reports_dir, reports_url

SWEEP_RUNS = "sweep_runs"
sweep_partitions = dg.DynamicPartitionsDefinition(name=SWEEP_RUNS)

sweep_runs = dg.AssetSpec(
    SWEEP_RUNS,
    partitions_def=sweep_partitions,
    group_name="sweeps",
    kinds={"sql"},
    description=(
        "Every parameter sweep (Launchpad job parameter_sweep, or a request file with kind: sweep) as one "
        "partition: the best configuration and how likely it is overfit (PBO, deflated Sharpe, SPA), the top "
        "configurations with intervals, and the HTML report with the sortable table and parameter heat maps."
    ),
)

TOP_COLUMNS = ("config_id", "mean_window_return", "mean_window_return_ci_low", "mean_window_return_ci_high",
               "null_p_value")  # fmt: skip


def sweep_key(sweep_id: int, strategy: str) -> str:
    return f"{int(sweep_id):05d}-{strategy}"


def _url(path: Any) -> str:
    return f"{reports_url()}/{path.relative_to(reports_dir()).as_posix()}"


def _figure(result: Any) -> Any:
    """Every configuration's mean window return with its interval, best first (the search at a glance)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = result.table.sort_values(result.objective if result.objective in result.table else "mean_window_return",
                                 ascending=False).reset_index(drop=True)  # fmt: skip
    y = t["mean_window_return"] * 100
    lo = (t["mean_window_return"] - t["mean_window_return_ci_low"]) * 100
    hi = (t["mean_window_return_ci_high"] - t["mean_window_return"]) * 100
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    ax.errorbar(range(len(t)), y, yerr=[lo, hi], fmt="o", markersize=3, linewidth=0.8, capsize=0)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("configuration, best first", fontsize=9)
    ax.set_ylabel("mean return / window (%)", fontsize=9)
    ax.set_title(f"{result.strategy}: {len(t)} configurations, 95% intervals", fontsize=10)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def verdict_text(summary: dict[str, Any], verdict: Any) -> str:
    """The report's overfitting verdict with the three figures spelled out."""
    best = summary.get("best_params") or {}
    params = ", ".join(f"{k}={v}" for k, v in best.items()) or "(defaults)"
    return (f"{verdict.text} Best of {summary['configurations']} configurations: #{summary['best_config_id']} "
            f"({params}). PBO {fmt_value(summary.get('pbo'))} (share of cross-validation splits where the "
            f"in-sample best ranks below the median out of sample); deflated Sharpe "
            f"{fmt_value(summary.get('deflated_sharpe'))} (probability the best Sharpe beats the best of "
            f"{summary['n_trials']} skill-less tries); SPA p-value {fmt_value(summary.get('spa_p_value'))} "
            "(chance that no configuration beats the equal-weight benchmark).")  # fmt: skip


def publish_sweep(context: Any, sweep_id: int, result: Any) -> dict[str, Any]:
    """Report, plot and metadata of a merged sweep; materialises its `sweep_runs` partition."""
    from engine.report.sweep import overfitting_verdict

    summary = result.summary()
    stem = reports_dir() / "sweeps" / sweep_key(sweep_id, result.strategy)
    stem.parent.mkdir(parents=True, exist_ok=True)
    html = result.report(stem.with_suffix(".html"))
    png = stem.with_name(stem.name + "-configs.png")
    save_png(_figure(result), png)
    top = result.table.sort_values(result.objective, ascending=False).head(10)
    varied = [c for c in result.varied if c in top.columns]
    metadata: dict[str, Any] = {
        "verdict": dg.MetadataValue.md(verdict_text(summary, overfitting_verdict(result))),
        "sweep_id": dg.MetadataValue.int(sweep_id),
        "best_params": dg.MetadataValue.json(summary.get("best_params") or {}),
        "top_configurations": table(top.to_dict("records"), [*TOP_COLUMNS[:1], *varied[:2], *TOP_COLUMNS[1:4]]),
        "configurations_plot": image_markdown(_url(png), "configurations with intervals"),
        "report": dg.MetadataValue.url(_url(html)),
        "report_file": dg.MetadataValue.path(str(html)),
        **numeric_entries(summary, ("pbo", "deflated_sharpe", "spa_p_value")),
        "configurations": dg.MetadataValue.int(int(summary["configurations"])),
        "n_trials": dg.MetadataValue.int(int(summary["n_trials"])),
        "decision_times": dg.MetadataValue.int(int(summary["decision_times"])),
    }
    key = sweep_key(sweep_id, result.strategy)
    context.instance.add_dynamic_partitions(SWEEP_RUNS, [key])
    context.log_event(dg.AssetMaterialization(asset_key=SWEEP_RUNS, partition=key, metadata=metadata))
    metadata["home_partition"] = f"sweep_runs / {key}"
    return metadata



