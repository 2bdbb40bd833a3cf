"""`write_comparison`: several runs side by side, every metric with its interval, every ordering tested.

The page never calls a run "best": it names the run with the highest mean window return and says, from a
paired block-bootstrap test of window returns, whether its lead over each other run is significant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from engine.report import figures, fmt
from engine.report.data import (
    Difference,
    aligned_window_returns,
    compare_returns,
    cost_table,
    data_label,
    metric,
    rank_ic_series,
    sizing_text,
    sleeve_curves,
    universe,
)
from engine.report.render import write_html
from engine.report.single import completed_returns, smoothing, traded_symbols
from engine.report.tables import script_json, trades_payload
from engine.report.verdict import classify, significance_sentence

#: (label, metric key, formatter, interval?) rows of the side-by-side table
METRICS: list[tuple[str, str, Any, bool]] = [
    ("Mean return per window", "mean_window_return", lambda x: fmt.pct(x, 3), True),
    ("Median return per window", "median_window_return", lambda x: fmt.pct(x, 3), True),
    ("Total return (non-compounded)", "total_return", fmt.pct, False),
    ("Sharpe ratio", "sharpe", fmt.ratio, True),
    ("Probabilistic Sharpe ratio", "probabilistic_sharpe", fmt.share, False),
    ("Max drawdown (aggregated)", "max_drawdown_aggregated", fmt.pct, False),
    ("CVaR 5%", "cvar_05", fmt.pct, False),
    ("Worst trade", "worst_trade", fmt.pct, False),
    ("p-value vs random picks", "null_p_value", fmt.p_value, False),
    ("Random picks: mean per window", "null_mean_window_return", lambda x: fmt.pct(x, 3), False),
    ("Benchmark: mean per window", "benchmark_mean_window_return", lambda x: fmt.pct(x, 3), False),
    ("Completed trades", "trade_count", fmt.count, False),
    ("Void trades", "void_trades", fmt.count, False),
    ("Win rate", "win_rate", fmt.share, True),
    ("Mean return per trade", "avg_return", fmt.pct, False),
    ("Profit factor", "profit_factor", fmt.ratio, True),
    ("Coverage", "coverage", fmt.share, False),
    ("Exposure", "exposure", fmt.share, False),
    ("Turnover (× capital per day)", "turnover", lambda x: fmt.ratio(x, 1), False),
    ("Mean rank IC", "rank_ic_mean", lambda x: fmt.ratio(x, 3, sign=True), False),
    ("Rank IC t-statistic", "rank_ic_tstat", fmt.ratio, False),
    ("Break-even fee (bps per side)", "break_even_fee_bps", fmt.bps, False),
    ("CAGR, capital curve (annualised: short runs exaggerate it)", "cagr", lambda x: fmt.pct(x, 1), False),
    ("Max drawdown, capital curve", "max_drawdown_compounded", fmt.pct, False),
]


def _labels(results: Sequence[Any]) -> list[str]:
    """The strategy name, made unique by the parameters or settings that differ, then by a number."""
    names = [str(r.strategy) for r in results]
    out = []
    for i, r in enumerate(results):
        label = names[i]
        if names.count(label) > 1:
            same = [o for o in results if str(o.strategy) == label]
            diff = [f"{k}={fmt.value(v)}" for k, v in (r.params or {}).items()
                    if any((o.params or {}).get(k) != v for o in same)]
            cfg = r.config.to_dict()
            diff += [f"{k}={fmt.value(v)}" for k, v in cfg.items() if any(o.config.to_dict().get(k) != v for o in same)]
            label = f"{label} ({', '.join(diff)})" if diff else label
        out.append(label)
    return [f"{lab} #{i + 1}" if out.count(lab) > 1 else lab for i, lab in enumerate(out)]


def _difference(a: Any, b: Any) -> Difference | None:
    x, y = aligned_window_returns(a, b)
    block = int(max(metric(a, "bootstrap_block") or 1, metric(b, "bootstrap_block") or 1))
    return compare_returns(x, y, a.config, block)


def _settings(r: Any) -> dict[str, str]:
    cfg = r.config
    symbols = universe(r)
    return {
        "Period (UTC)": fmt.period(cfg.start, cfg.end) if cfg.start is not None else fmt.MISSING,
        "Window / shift": f"{fmt.hours(cfg.window_hours)} / {fmt.hours(cfg.shift_hours)}",
        "Fee + slippage / side": f"{fmt.bps(cfg.fee_bps)} + {fmt.bps(cfg.slippage_bps)}",
        "Positions": f"at most {cfg.max_positions}, {sizing_text(cfg)}",
        "Compounding": "yes" if getattr(cfg, "compounding", False) else "no",
        "Feature timeframe": str(cfg.feature_timeframe),
        "Decisions": fmt.count(r.metrics.get("decision_times")),
        "Universe": f"{len(symbols)} symbols" + (f" ({', '.join(symbols)})" if len(symbols) <= 8 else ""),
        "Data": data_label(r) or fmt.MISSING,
    }


def _setup(runs: list[tuple[str, Any, str]]) -> tuple[list[tuple[str, str]], list[str]]:
    """Settings shared by every run (shown once) and the names of those that differ (table columns)."""
    settings = [_settings(r) for _, r, _ in runs]
    keys = list(dict.fromkeys(k for st in settings for k in st))
    common = [(k, settings[0][k]) for k in keys if all(st.get(k) == settings[0].get(k) for st in settings)]
    common = [(k, v) for k, v in common if v != fmt.MISSING]
    shared = {k for k, _ in common}
    return common, [k for k in keys if k not in shared]


def _run_rows(runs: list[tuple[str, Any, str]], differing: list[str]) -> list[dict[str, Any]]:
    rows = []
    for label, r, color in runs:
        kind, title = classify(r)
        st = _settings(r)
        rows.append({
            "label": label, "color": color, "kind": kind, "title": title,
            "params": ", ".join(f"{k}={fmt.value(v)}" for k, v in (r.params or {}).items()) or "none",
            "settings": [st.get(k, fmt.MISSING) for k in differing],
            "mean": fmt.pct(r.metrics.get("mean_window_return"), 3),
            "interval": fmt.interval(r.metrics.get("mean_window_return_ci_low"),
                                     r.metrics.get("mean_window_return_ci_high"), digits=3),
            "p": fmt.p_value(r.metrics.get("null_p_value")),
        })
    return rows


#: rows of the compounded capital curve: shown only when a compared run compounds
CAPITAL_KEYS = frozenset({"cagr", "max_drawdown_compounded"})


def _metric_rows(runs: list[tuple[str, Any, str]]) -> list[dict[str, Any]]:
    rows = []
    compounding = any(getattr(r.config, "compounding", False) for _, r, _ in runs)
    for label, key, f, has_ci in METRICS:
        if key in CAPITAL_KEYS and not compounding:
            continue
        cells = []
        for _, r, _ in runs:
            m = r.metrics
            ci = fmt.interval(m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high"), f) if has_ci else ""
            cells.append({"value": f(m.get(key)), "interval": ci, "v": fmt.num(m.get(key))})
        rows.append({"label": label, "has_ci": has_ci, "cells": cells})
    return rows


def _leader_sentences(runs: list[tuple[str, Any, str]], confidence: float) -> tuple[list[str], list[dict]]:
    scored = [(label, r) for label, r, _ in runs if metric(r, "mean_window_return") is not None]
    cache: dict[tuple[int, int], Difference | None] = {}

    def diff(a: Any, b: Any) -> Difference | None:
        key = (id(a), id(b))
        if key not in cache:
            cache[key] = _difference(a, b)
        return cache[key]

    pairs = []
    for (la, a, _), (lb, b, _) in combinations(runs, 2):
        if metric(b, "mean_window_return") is not None and (metric(a, "mean_window_return") or 0) < metric(
                b, "mean_window_return"):
            (la, a), (lb, b) = (lb, b), (la, a)  # the higher mean first: differences read as leads
        d = diff(a, b)
        pairs.append({"a": la, "b": lb, "diff": d, "text": significance_sentence(d, confidence),
                      "significant": d is not None and d.p_value is not None and d.p_value < 1 - confidence})
    if len(scored) < 2:
        return ["Fewer than two runs have a mean window return: nothing to order."], pairs
    scored.sort(key=lambda lr: -metric(lr[1], "mean_window_return"))
    (top, a), rest = scored[0], scored[1:]
    out = [f"{top} has the highest mean window return ({fmt.pct(metric(a, 'mean_window_return'), 3)})."]
    for label, b in rest:
        d = diff(a, b)
        subject = f"Its lead over {label} ({fmt.pct(metric(b, 'mean_window_return'), 3)})"
        out.append(significance_sentence(d, confidence, subject))
    return out, pairs


def _same_benchmark(results: Sequence[Any]) -> bool:
    series = [r.windows.set_index("decision_time")["benchmark_return"] for r in results
              if "benchmark_return" in getattr(r, "windows", pd.DataFrame())]
    if len(series) != len(results) or not series:
        return False
    return all(s.index.equals(series[0].index) and np.allclose(s.fillna(0), series[0].fillna(0)) for s in series)


def _figures(runs: list[tuple[str, Any, str]]) -> dict[str, Markup | None]:
    results = [r for _, r, _ in runs]
    curves, bench = [], None
    for label, r, color in runs:
        c = sleeve_curves(r)
        if c is not None:
            curves.append((c[0], figures.Series(label, color)))
            bench = bench or c[1]
    if bench is not None and not _same_benchmark(results):
        bench = None
    returns = [(completed_returns(r).to_numpy(np.float64), figures.Series(label, color)) for label, r, color in runs]
    ic = [(df, figures.Series(label, color)) for label, r, color in runs if (df := rank_ic_series(r)) is not None]
    cost = []
    for label, r, color in runs:
        df = cost_table(r)
        if df is not None:
            be = metric(r, "break_even_fee_bps")
            cost.append((df, None if be is None else be + r.config.slippage_bps,
                         r.config.fee_bps + r.config.slippage_bps, figures.Series(label, color)))
    confidence = results[0].config.confidence
    return {
        "equity": Markup(figures.equity(curves, bench, confidence=confidence)) if curves else None,
        "distribution": Markup(figures.distribution(returns)),
        "rank_ic": Markup(figures.rank_ic(ic, smoothing(results[0]))) if ic else None,
        "costs": Markup(figures.costs(cost)) if cost else None,
        "same_benchmark": bench is not None,
    }


def _monthly(runs: list[tuple[str, Any, str]]) -> list[dict[str, Any]] | None:
    frames = {label: r.monthly for label, r, _ in runs
              if isinstance(getattr(r, "monthly", None), pd.DataFrame) and "total_return" in r.monthly}
    if not frames:
        return None
    months = sorted(set().union(*(df["month"].astype(str) for df in frames.values())))
    rows = []
    for month in months:
        cells = []
        for label, _, _ in runs:
            df = frames.get(label)
            hit = df.loc[df["month"].astype(str) == month, "total_return"] if df is not None else pd.Series([])
            cells.append(fmt.pct(hit.iloc[0]) if len(hit) else fmt.MISSING)
        rows.append({"month": month, "cells": cells})
    return rows


def write_comparison(
    results: Sequence[Any] | Mapping[str, Any], path: str | Path
) -> Path:
    """Write several `WalkForwardResult`s side by side as one self-contained HTML file; return its path.

    `results` is a sequence (labels are the strategy names, made unique) or a mapping label -> result.
    """
    if isinstance(results, Mapping):
        labels, items = [str(k) for k in results], list(results.values())
    else:
        items = list(results)
        labels = _labels(items)
    if not items:
        raise ValueError("write_comparison needs at least one result")
    colors = [figures.PALETTE[i % len(figures.PALETTE)] for i in range(len(items))]
    runs = list(zip(labels, items, colors, strict=True))
    confidence = float(items[0].config.confidence)
    leader, pairs = _leader_sentences(runs, confidence)
    trades = trades_payload([(label, r.trades) for label, r, _ in runs])
    common, differing = _setup(runs)
    return write_html(
        path,
        "comparison.html.j2",
        title=f"Comparison of {len(items)} walk-forward runs",
        runs_info=_run_rows(runs, differing),
        common=common,
        differing=differing,
        leader=leader,
        pairs=pairs,
        metric_rows=_metric_rows(runs),
        figs=_figures(runs),
        monthly=_monthly(runs),
        trades_json=Markup(script_json(trades)),
        trade_count=len(trades["rows"]),
        symbols=traded_symbols(*items),
        runs=labels if len(items) > 1 else [],
        confidence=confidence,
        fmt=fmt,
    )
