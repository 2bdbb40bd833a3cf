"""`write_sweep_report`: one self-contained HTML page for a parameter sweep: the grid, the best run's
verdict, how likely that choice is overfit (PBO, deflated Sharpe, SPA) in plain words, parameter heat
maps and a sortable table of every configuration."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from engine.report import fmt
from engine.report import sweep_figures as figs
from engine.report.render import write_html
from engine.report.single import config_items, strategy_description
from engine.report.tables import Column, Table
from engine.report.verdict import Verdict, verdict

#: (metric key, column label, formatter) of the configurations table, when the sweep has the metric
TABLE_METRICS: list[tuple[str, str, Any]] = [
    ("mean_window_return", "Mean / window", lambda x: fmt.pct(x, 3)),
    ("total_return", "Total return", fmt.pct),
    ("sharpe", "Sharpe", fmt.ratio),
    ("trade_count", "Trades", fmt.count),
    ("win_rate", "Win rate", fmt.share),
    ("max_drawdown_aggregated", "Max DD", fmt.pct),
    ("null_p_value", "p vs random", fmt.p_value),
    ("rank_ic_mean", "Rank IC", lambda x: fmt.ratio(x, 3, sign=True)),
    ("break_even_fee_bps", "Break-even fee", fmt.bps),
]
PERCENT_WORDS = ("return", "drawdown", "win_rate", "coverage", "exposure")


@dataclass
class _BestRun:
    """What `engine.report.verdict` reads, rebuilt from the sweep's row when the full run was not kept."""

    strategy: str
    metrics: dict[str, Any]
    config: Any
    windows: pd.DataFrame


def best_run(sweep: Any) -> Any:
    row = sweep.best()
    config_id = int(row["config_id"])
    if sweep.results is not None:
        return sweep.results[config_id]
    _, cfg = sweep.walk_forward_config(config_id)
    windows = pd.DataFrame({"decision_time": sweep.returns.index, "window_return": sweep.returns[config_id].to_numpy(),
                            "benchmark_return": sweep.benchmarks[cfg.cost_per_side].to_numpy()})
    metrics = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
    return _BestRun(sweep.strategy, metrics, cfg, windows)


def overfitting_verdict(sweep: Any) -> Verdict:
    """PBO, the deflated Sharpe and SPA, each in one sentence, under a title that weighs them together."""
    alpha = 1 - float(sweep.config.confidence)
    pbo, dsr, spa = sweep.overfitting(), sweep.deflated_sharpe, sweep.spa
    out: list[str] = []
    if pbo.pbo is None:
        out.append("PBO is not defined: it needs at least two configurations and enough windows for its blocks.")
    else:
        out.append(
            f"Splitting the {pbo.rows_used:,} windows into {pbo.blocks} blocks and taking every half of them "
            f"({pbo.n_splits:,} ways) as in-sample, the configuration that was best in sample ranked at or below "
            f"the out-of-sample median in {pbo.pbo:.0%} of the splits (PBO = {pbo.pbo:.2f}; about 0.5 means the "
            f"ranking of configurations is noise, near 0 that the in-sample winner stays ahead). It lost money "
            f"out of sample in {pbo.prob_oos_loss:.0%} of the splits.")
    if dsr.probability is None:
        out.append("The deflated Sharpe ratio is not defined: the best configuration's daily P&L has no variance.")
    else:
        word = "significant" if dsr.probability >= 1 - alpha else "not significant"
        out.append(
            f"The best configuration's daily P&L has an annualised Sharpe ratio of {fmt.ratio(dsr.sharpe)}; the best "
            f"of {dsr.n_trials:,} configurations without skill would reach about {fmt.ratio(dsr.threshold)} by luck. "
            f"The probability that its true Sharpe ratio exceeds that bar (deflated Sharpe ratio) is "
            f"{dsr.probability:.1%}: {word} at the {alpha:.0%} level ({dsr.n_days} days).")
    if spa.p_value is None:
        out.append("Hansen's SPA test is not available: no configuration differs from the benchmark.")
    else:
        beats = spa.p_value < alpha
        out.append(
            f"Hansen's SPA test of the {spa.n_models:,} distinct configurations against the equal-weight benchmark "
            f"gives {fmt.p_text(spa.p_value)} (stationary bootstrap, mean block {spa.block} windows, "
            f"{spa.reps:,} samples): " + ("at least one configuration beats the benchmark by more than the search "
                                          "explains." if beats else "no configuration beats the benchmark once "
                                          "the number tried is accounted for."))
    overfit = pbo.pbo is not None and pbo.pbo >= 0.5
    survives = (pbo.pbo is not None and pbo.pbo <= 0.2 and dsr.probability is not None
                and dsr.probability >= 1 - alpha and (spa.p_value is None or spa.p_value < alpha))
    if overfit:
        return Verdict("loss", "Likely overfit: picking the best configuration picked luck.", out)
    if survives:
        return Verdict("edge", "The best configuration's lead survives the search.", out)
    return Verdict("partial", "The search itself may explain the best result: treat it as unproven.", out)


def _percent(column: str) -> bool:
    return any(w in column for w in PERCENT_WORDS)


def parameter_figures(sweep: Any) -> list[tuple[str, Markup]]:
    """Heat maps of the objective for each pair of varied parameters (a line for a single one)."""
    varied = [v for v in sweep.varied if pd.api.types.is_numeric_dtype(sweep.table[v])
              or pd.api.types.is_bool_dtype(sweep.table[v])]
    key = sweep.objective
    label = f"{key}{' (%)' if _percent(key) else ''}"
    table = sweep.table.assign(**{key: pd.to_numeric(sweep.table[key], errors="coerce")})
    if len(varied) == 1:
        return [(varied[0], Markup(figs.line_by_value(table, varied[0], key, label, _percent(key))))]
    out = []
    for x, y in list(itertools.combinations(varied, 2))[:3]:
        out.append((f"{y} × {x}", Markup(figs.heat_map(table, x, y, key, label, _percent(key)))))
    return out


def configurations_table(sweep: Any) -> Table:
    metrics = [(k, label, f) for k, label, f in TABLE_METRICS if k in sweep.table.columns]
    columns = [Column("config_id", "Id", str)] + [Column(p, p, fmt.value, numeric=pd.api.types.is_numeric_dtype(
        sweep.table[p]) and not pd.api.types.is_bool_dtype(sweep.table[p])) for p in sweep.varied]
    columns += [Column(k, label, f) for k, label, f in metrics]
    table = Table.from_frame(sweep.table, columns)
    if "mean_window_return_ci_low" in sweep.table.columns:  # the interval, sorted by its lower bound
        table.columns.insert(len(sweep.varied) + 2, Column("ci", f"{sweep.config.confidence:.0%} interval", str))
        for row, (lo, hi) in zip(table.rows, sweep.table[["mean_window_return_ci_low", "mean_window_return_ci_high"]]
                                 .itertuples(index=False), strict=True):
            row.insert(len(sweep.varied) + 2, (fmt.interval(lo, hi, digits=3), repr(fmt.num(lo)) if fmt.num(lo) is not
                                               None else ""))
    return table


def grid_items(sweep: Any) -> list[tuple[str, str]]:
    names = [c for c in sweep.configs[0] if c != "config_id"]
    items = [(n, ", ".join(fmt.value(v) for v in pd.unique(sweep.table[n]))) for n in names]
    items.append(("Configurations", f"{len(sweep.table):,} run; {sweep.n_trials:,} counted as tried (deflated Sharpe)"))
    items.append(("Objective", f"{sweep.objective} (higher is better)"))
    return items


def write_sweep_report(sweep: Any, path: str | Path) -> Path:
    """Write `sweep` (a SweepResult) as one self-contained HTML file; return its absolute path."""
    if len(sweep.returns) == 0:
        raise ValueError("this sweep has no decision times (check start, end and the warm-up): nothing to report")
    best = best_run(sweep)
    row = sweep.best()
    pbo = sweep.overfitting()
    header = config_items(best)
    header[0] = ("Period (UTC)", fmt.period(sweep.returns.index[0] if len(sweep.returns) else sweep.config.start,
                                            sweep.config.end))
    header = [(k, v) for k, v in header if k not in ("Fee / slippage", "Positions", "Universe")]
    header.append(("Universe", f"{len(sweep.symbols)} symbols: {', '.join(sweep.symbols)}"))
    cfg = sweep.config
    return write_html(
        path,
        "sweep.html.j2",
        title=f"{sweep.strategy}: parameter sweep",
        strategy=sweep.strategy,
        description=strategy_description(sweep.strategy),
        config=header,
        grid=grid_items(sweep),
        best_id=int(row["config_id"]),
        best_params=[(k, fmt.value(row[k])) for k in sweep.varied],
        best_verdict=verdict(best),
        overfit=overfitting_verdict(sweep),
        kpis=[
            {"label": "Configurations", "value": fmt.count(len(sweep.table)), "sub": f"{sweep.n_trials:,} counted as tried"},
            {"label": "Best mean / window", "value": fmt.pct(row.get("mean_window_return"), 3),
             "sub": fmt.interval(row.get("mean_window_return_ci_low"), row.get("mean_window_return_ci_high"), digits=3)},
            {"label": "PBO", "value": fmt.ratio(pbo.pbo), "sub": f"CSCV, {pbo.blocks} blocks"},
            {"label": "Deflated Sharpe", "value": fmt.share(sweep.deflated_sharpe.probability),
             "sub": "P(true Sharpe > luck bar)"},
            {"label": "SPA p-value", "value": fmt.p_value(sweep.spa_p_value), "sub": "vs equal-weight benchmark"},
        ],
        heat_maps=parameter_figures(sweep),
        logits=Markup(figs.logits(pbo.logits, pbo.pbo)) if pbo.pbo is not None else None,
        degradation=Markup(figs.degradation(pbo.is_performance, pbo.oos_performance, pbo.metric))
        if pbo.pbo is not None else None,
        pbo_metric=pbo.metric,
        curves=Markup(figs.curves(sweep.returns, int(row["config_id"]), sweep.benchmark, cfg.sleeve_factor,
                                  cfg.window_hours)) if len(sweep.returns) else None,
        configs_table=configurations_table(sweep),
        confidence=cfg.confidence,
    )
