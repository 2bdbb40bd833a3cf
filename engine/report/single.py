"""`write_report`: one self-contained HTML research note for one walk-forward run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from engine.report import figures, fmt
from engine.report.data import (
    compounded_curve,
    cost_table,
    data_label,
    frame,
    metric,
    null_band,
    portfolio_mode,
    rank_ic_series,
    sizing_text,
    sleeve_curves,
    universe,
)
from engine.report.render import write_html
from engine.report.tables import Column, Table, month_table, pct3, script_json, symbol_table, trades_payload
from engine.report.verdict import verdict


@dataclass
class Row:
    label: str
    value: str
    interval: str = fmt.MISSING
    note: str = ""


def strategy_description(name: str) -> str:
    try:
        from engine.strategies import get_strategy

        return str(getattr(get_strategy(name), "description", "") or "")
    except Exception:  # an unregistered or renamed strategy still gets its report
        return ""


def config_items(result: Any) -> list[tuple[str, str]]:
    """Header facts: everything needed to reproduce or judge the run, with units."""
    cfg, m = result.config, result.metrics
    windows = frame(result, "windows", ("decision_time",))
    first = windows["decision_time"].iloc[0] if windows is not None else cfg.start
    last = windows["decision_time"].iloc[-1] if windows is not None else None
    symbols = universe(result)
    items = [
        ("Period (UTC)", fmt.period(cfg.start if cfg.start is not None else first, cfg.end)),
        ("Decisions (UTC)", f"{fmt.count(m.get('decision_times'))}, every {fmt.hours(cfg.shift_hours)}, "
         f"{fmt.utc(first)} to {fmt.utc(last)}"),
        ("Window / shift", f"{fmt.hours(cfg.window_hours)} held, new decision every {fmt.hours(cfg.shift_hours)}"),
        ("Fee / slippage", f"{fmt.bps(cfg.fee_bps)} + {fmt.bps(cfg.slippage_bps)} per side"),
        ("Positions", f"at most {cfg.max_positions}, {sizing_text(cfg)}"),
        ("Feature timeframe", str(cfg.feature_timeframe)),
        ("Warm-up", f"{cfg.warmup_bars} bars" if cfg.warmup_bars else "engine default"),
        ("Universe", f"{len(symbols)} symbols: {', '.join(symbols)}" if symbols else fmt.MISSING),
        ("Data", data_label(result) or fmt.MISSING),
        ("Statistics", f"{cfg.confidence:.0%} intervals, block bootstrap ({fmt.count(cfg.bootstrap_samples)} "
         f"samples, block {fmt.count(m.get('bootstrap_block'))} windows, seed {cfg.seed})"),
    ]
    if getattr(cfg, "compounding", None) is not None:
        items.append(("Compounding", f"yes, initial capital {fmt.money(cfg.initial_capital)}" if cfg.compounding
                      else "no (v1: each sleeve stakes its initial share)"))
    return items


def key_figures(result: Any) -> list[dict[str, str]]:
    m = result.metrics
    return [
        {"label": f"Mean return / {fmt.hours(result.config.window_hours)} window", "value": fmt.pct(m.get("mean_window_return"), 3),
         "sub": fmt.interval(m.get("mean_window_return_ci_low"), m.get("mean_window_return_ci_high"), digits=3)},
        {"label": "Total return", "value": fmt.pct(m.get("total_return")), "sub": "non-compounded sleeves"},
        {"label": "Max drawdown", "value": fmt.pct(m.get("max_drawdown_aggregated")), "sub": "aggregated curve"},
        {"label": "p vs random picks", "value": fmt.p_value(m.get("null_p_value")), "sub": "one-sided"},
        {"label": "Break-even fee", "value": fmt.bps(m.get("break_even_fee_bps")), "sub": "per side"},
    ]


def metric_groups(result: Any) -> list[tuple[str, list[Row]]]:
    m = result.metrics

    def iv(key: str, f=fmt.pct, **kw: Any) -> str:
        return fmt.interval(m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high"), f, **kw)

    w = fmt.hours(result.config.window_hours)
    ret = [
        Row(f"Mean return per {w} window", fmt.pct(m.get("mean_window_return"), 3), iv("mean_window_return", digits=3),
            "net of costs; idle windows count as 0"),
        Row("Median return per window", fmt.pct(m.get("median_window_return"), 3), iv("median_window_return", digits=3)),
        Row("Total return", fmt.pct(m.get("total_return")), note="sum of sleeve contributions, non-compounded"),
        Row("Sharpe ratio", fmt.ratio(m.get("sharpe")), iv("sharpe", fmt.ratio)),
        Row("Probabilistic Sharpe ratio", fmt.share(m.get("probabilistic_sharpe")),
            note="probability that the true Sharpe ratio is above 0"),
    ]
    risk = [
        Row("Max drawdown (aggregated curve)", fmt.pct(m.get("max_drawdown_aggregated"))),
        Row("Return 5% quantile", fmt.pct(m.get("return_q05")), note="value at risk, 5%"),
        Row("CVaR 5%", fmt.pct(m.get("cvar_05")), note="mean of the worst 5%"),
        Row("Worst trade", fmt.pct(m.get("worst_trade")), note="net return"),
        Row("Worst intra-trade drawdown", fmt.pct(m.get("max_drawdown_trade")), note="lowest low vs entry"),
        Row("Longest losing streak", _unit(m.get("longest_losing_streak"), "windows")),
    ]
    versus = [
        Row("Random picks: mean per window", fmt.pct(m.get("null_mean_window_return"), 3),
            note=f"standard error of the excess {fmt.pct(m.get('null_std'), 3, sign=False)}"),
        Row("p-value vs random picks", fmt.p_value(m.get("null_p_value")), note="one-sided: no better than random picks (block bootstrap)"),
        Row("Benchmark: mean per window", fmt.pct(m.get("benchmark_mean_window_return"), 3),
            note="equal weight, every eligible symbol"),
        Row("Benchmark: total return", fmt.pct(m.get("benchmark_total_return"))),
        Row("Benchmark: max drawdown", fmt.pct(m.get("benchmark_max_drawdown_aggregated"))),
    ]
    trades = [
        Row("Completed trades", fmt.count(m.get("trade_count")), note=f"{fmt.count(m.get('void_trades'))} void (no candle)"),
        Row("Win rate", fmt.share(m.get("win_rate")), iv("win_rate", fmt.share)),
        Row("Mean / median return per trade", f"{fmt.pct(m.get('avg_return'))} / {fmt.pct(m.get('median_return'))}"),
        Row("Profit factor", fmt.ratio(m.get("profit_factor")), iv("profit_factor", fmt.ratio),
            "sum of gains / |sum of losses|"),
        Row("Coverage", fmt.share(m.get("coverage")), note="decision times with a trade"),
        Row("Exposure", fmt.share(m.get("exposure")), note="capital in the market, time-averaged"),
        Row("Turnover", _unit(m.get("turnover"), "× capital per day", 1)),
    ]
    ranking = [
        Row("Mean rank IC", fmt.ratio(m.get("rank_ic_mean"), 3, sign=True), note="Spearman, score vs net return"),
        Row("Rank IC t-statistic", fmt.ratio(m.get("rank_ic_tstat"))),
        Row("Decisions with IC > 0", fmt.share(m.get("rank_ic_positive_share")),
            note=f"of {fmt.count(m.get('rank_ic_count'))} scored decisions"),
        Row("Top − bottom quantile spread", fmt.pct(m.get("quantile_spread_mean"), 3), note="mean per window"),
    ]
    groups = [("Return, net of costs", ret), ("Risk", risk), ("Versus chance and the market", versus),
              ("Trades", trades), ("Ranking skill", ranking)]
    if portfolio_mode(result.config) and m.get("final_equity") is not None:
        groups.insert(2, ("Capital curve (portfolio mode)", capital_rows(result)))
    return groups


def capital_rows(result: Any) -> list[Row]:
    """The compounded curve's metrics (docs/portfolio.md); annualised figures flag short runs."""
    m, cfg = result.metrics, result.config
    windows = frame(result, "windows", ("decision_time",))
    days = 0.0 if windows is None else (
        (windows["decision_time"].iloc[-1] - windows["decision_time"].iloc[0]).total_seconds() / 86_400
        + cfg.window_hours / 24)
    short = f"annualised from {days:,.0f} days: not a forecast" if days < 365 else "annualised"
    return [
        Row("Final equity", fmt.money(m.get("final_equity")), note=f"from {fmt.money(cfg.initial_capital)}"),
        Row("CAGR", fmt.pct(m.get("cagr"), 1), note=short),
        Row("Volatility", fmt.pct(m.get("volatility_annual"), 1, sign=False), note=short),
        Row("Sharpe (capital curve)", fmt.ratio(m.get("sharpe_compounded")), note=short),
        Row("Sortino", fmt.ratio(m.get("sortino"))),
        Row("Calmar", fmt.ratio(m.get("calmar")), note="CAGR / |max drawdown|"),
        Row("Max drawdown (capital)", fmt.pct(m.get("max_drawdown_compounded")), note="relative to the peak"),
        Row("Invested share", fmt.share(m.get("avg_invested_share")), note="time-averaged, rest in cash"),
    ]


def _unit(x: Any, unit: str, digits: int = 0) -> str:
    v = fmt.num(x)
    return fmt.MISSING if v is None else (f"{v:,.{digits}f} {unit}")


def cost_rows(result: Any) -> Table:
    df = cost_table(result)
    if df is not None:
        df = df.copy()
        fee = df["fee_bps"] if "fee_bps" in df else df["cost_bps_per_side"] - result.config.slippage_bps
        slip = df.get("slippage_bps", result.config.slippage_bps)
        df["split"] = [f"{fmt.bps(f)} + {fmt.bps(s)}".replace(" bps +", " +") for f, s in
                       zip(fee, np.broadcast_to(slip, len(df)), strict=True)]
    cols = [
        Column("cost_bps_per_side", "Cost / side", fmt.bps, title="fee + slippage per side"),
        Column("split", "Fee + slippage", str, numeric=False),
        Column("mean_window_return", "Mean / window", pct3),
        Column("total_return", "Total return", lambda x: fmt.pct(x), title="non-compounded"),
    ]
    return Table.from_frame(df, cols)


def smoothing(result: Any) -> int:
    """One day of decisions for the rolling rank IC."""
    return max(2, round(24 / float(result.config.shift_hours)))


def figure_set(result: Any) -> dict[str, Markup | None]:
    cfg = result.config
    s = figures.Series(result.strategy, figures.PALETTE[0])
    out: dict[str, Markup | None] = {"equity": None, "distribution": None, "rank_ic": None, "costs": None}
    curves = sleeve_curves(result)
    if curves is not None:
        own, bench = curves
        own.label = f"{result.strategy} (non-compounded sleeves)"
        comp = compounded_curve(result)
        label = f"{result.strategy}, compounded capital"
        extra = [(comp, figures.Series(label, figures.PALETTE[2]))] if comp else []
        out["equity"] = Markup(figures.equity([(own, figures.Series(own.label, s.color))], bench, null_band(result),
                                              extra, cfg.confidence))
    returns = completed_returns(result).to_numpy(np.float64)
    out["distribution"] = Markup(figures.distribution([(returns, s)], round_trip_cost=2 * cfg.cost_per_side))
    ic = rank_ic_series(result)
    if ic is not None:
        out["rank_ic"] = Markup(figures.rank_ic([(ic, s)], smoothing(result)))
    costs = cost_table(result)
    if costs is not None:
        be = metric(result, "break_even_fee_bps")
        be_cost = None if be is None else be + cfg.slippage_bps
        out["costs"] = Markup(figures.costs([(costs, be_cost, cfg.fee_bps + cfg.slippage_bps, s)]))
    return out


def completed_returns(result: Any) -> pd.Series:
    """Net returns of the non-void trades."""
    t = result.trades
    if not isinstance(t, pd.DataFrame) or t.empty:
        return pd.Series([], dtype=float)
    return t.loc[~t["void"].astype(bool), "return_pct"].astype(float)


def traded_symbols(*results: Any) -> list[str]:
    """Symbols with at least one trade: the trades table's filter choices."""
    frames = [r.trades for r in results if isinstance(r.trades, pd.DataFrame) and len(r.trades)]
    return sorted({str(s) for t in frames for s in t["symbol"].unique()})


def distribution_stats(result: Any) -> list[tuple[str, str]]:
    r = completed_returns(result)
    m = result.metrics
    return [
        ("Completed trades", fmt.count(len(r))),
        ("Void trades", fmt.count(m.get("void_trades"))),
        ("Win rate", fmt.share(m.get("win_rate"))),
        ("Mean", fmt.pct(r.mean() if len(r) else None)),
        ("Median", fmt.pct(r.median() if len(r) else None)),
        ("Std", fmt.pct(r.std(ddof=1) if len(r) > 1 else None, sign=False)),
        ("Best", fmt.pct(r.max() if len(r) else None)),
        ("Worst", fmt.pct(r.min() if len(r) else None)),
        ("Return 5% quantile", fmt.pct(m.get("return_q05"))),
        ("CVaR 5%", fmt.pct(m.get("cvar_05"))),
        ("Round-trip cost", f"≈ {fmt.pct(-2 * result.config.cost_per_side)}"),
    ]


def write_report(result: Any, path: str | Path) -> Path:
    """Write `result` as one self-contained HTML file (scripts, styles, figures inline); return its path."""
    v = verdict(result)
    trades = trades_payload([(result.strategy, result.trades)])
    return write_html(
        path,
        "report.html.j2",
        title=f"{result.strategy}: walk-forward backtest",
        strategy=result.strategy,
        description=strategy_description(result.strategy),
        params=[(k, fmt.value(val)) for k, val in (result.params or {}).items()],
        config=config_items(result),
        verdict=v,
        key_figures=key_figures(result),
        groups=metric_groups(result),
        figs=figure_set(result),
        has_null_band=null_band(result) is not None,
        has_compounded=compounded_curve(result) is not None,
        dist_stats=distribution_stats(result),
        symbols_table=symbol_table(result),
        months_table=month_table(result),
        costs_table=cost_rows(result),
        trades_json=Markup(script_json(trades)),
        trade_count=len(trades["rows"]),
        symbols=traded_symbols(result),
        runs=[],
        confidence=result.config.confidence,
        window=fmt.hours(result.config.window_hours),
        cost_text=f"{fmt.bps(result.config.fee_bps)} fee and {fmt.bps(result.config.slippage_bps)} slippage per side",
    )
