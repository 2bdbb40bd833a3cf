"""The paper equity against the backtest over the same decision times, in both capital views.

Non-compounded: the SPEC's sleeve curve (`engine.metrics.equity_curve`, each window adds
`window_return * shift / window`). Compounded: portfolio mode's sleeves (`engine.portfolio`), each
sleeve re-investing its equity. Both books are laid on the same shift grid, from the first to the last
settled paper decision; a grid time without a paper decision (never recorded) counts as cash in both, so
the two curves differ only where the paper book and the replay disagree.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipeline.defs.paper.replay import Replay
from pipeline.results import stored_walk_forward_config

CURVE_COLUMNS = ("decision_time", "paper_return", "backtest_return", "paper_equity", "backtest_equity",
                 "paper_compounded", "backtest_compounded")  # fmt: skip


def _invested(trades: pd.DataFrame) -> pd.Series:
    """Weight invested per decision id (void trades hand their capital back)."""
    live = trades.loc[trades["status"] != "void"]
    return live.groupby("decision_id")["weight"].sum()


def strategy_curve(decisions: pd.DataFrame, trades: pd.DataFrame, replays: list[Replay]) -> pd.DataFrame:
    """One strategy's paper and backtest curves on its shift grid (settled decisions only)."""
    from engine.metrics import equity_curve
    from engine.portfolio import simulate_sleeves, sleeve_count

    done = decisions.loc[decisions["settled_at"].notna()].sort_values("decision_time")
    if done.empty:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    cfg = stored_walk_forward_config(done["config"].iloc[-1])
    step = pd.Timedelta(milliseconds=cfg.shift_ms)
    grid = pd.date_range(done["decision_time"].iloc[0], done["decision_time"].iloc[-1], freq=step)
    invested = _invested(trades)
    paper_r = done.set_index("decision_time")["window_return"].reindex(grid).fillna(0.0)
    paper_w = done.set_index("decision_time")["id"].map(invested).fillna(0.0).reindex(grid).fillna(0.0)
    windows = pd.concat([r.result.windows for r in replays if r.result is not None] or [pd.DataFrame(
        columns=["decision_time", "window_return", "invested_weight"])])  # fmt: skip
    windows = windows.drop_duplicates("decision_time", keep="last").set_index("decision_time")
    has_paper = grid.isin(done["decision_time"])
    back_r = windows["window_return"].reindex(grid).where(has_paper, 0.0).fillna(0.0)
    back_w = windows["invested_weight"].reindex(grid).where(has_paper, 0.0).fillna(0.0)
    m = sleeve_count(cfg.window_ms, cfg.shift_ms)
    out = {"decision_time": grid, "paper_return": paper_r.to_numpy(), "backtest_return": back_r.to_numpy()}
    for name, r, w in (("paper", paper_r, paper_w), ("backtest", back_r, back_w)):
        _, equity, _ = equity_curve(r.to_numpy(np.float64), cfg.sleeve_factor)
        values, _ = simulate_sleeves(r.to_numpy(np.float64), w.to_numpy(np.float64), m, 1.0, True)
        out[f"{name}_equity"] = equity
        out[f"{name}_compounded"] = values.sum(axis=1)
    return pd.DataFrame(out, columns=list(CURVE_COLUMNS))


def summary_row(strategy: str, curve: pd.DataFrame, decisions: pd.DataFrame, trades: pd.DataFrame) -> dict[str, Any]:
    """Headline numbers of one strategy's paper book against its backtest (fractions; equity x capital)."""
    def dd(x: np.ndarray) -> float | None:
        if not len(x):
            return None
        return float(np.min(x - np.maximum.accumulate(np.maximum(x, 0.0))))

    last = curve.iloc[-1] if len(curve) else None
    return {
        "strategy": strategy,
        "decisions": len(decisions),
        "settled_windows": int(decisions["settled_at"].notna().sum()),
        "open_trades": int((trades["status"] == "open").sum()),
        "paper_total_return": None if last is None else float(last["paper_equity"]),
        "backtest_total_return": None if last is None else float(last["backtest_equity"]),
        "paper_max_drawdown": dd(curve["paper_equity"].to_numpy(np.float64)),
        "backtest_max_drawdown": dd(curve["backtest_equity"].to_numpy(np.float64)),
        "paper_final_equity": None if last is None else float(last["paper_compounded"]),
        "backtest_final_equity": None if last is None else float(last["backtest_compounded"]),
    }


def figure(curves: dict[str, pd.DataFrame], title: str) -> Any | None:
    """Paper (thin line) against backtest (wide pale band): non-compounded return on top, compounded equity
    below."""
    curves = {k: v for k, v in curves.items() if len(v)}
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    for i, (name, df) in enumerate(sorted(curves.items())):
        color = f"C{i}"
        x = pd.to_datetime(df["decision_time"], utc=True).dt.tz_localize(None)
        # the backtest as a wide pale band under the paper line: both stay visible when they coincide
        top.plot(x, df["backtest_equity"] * 100, color=color, linewidth=5, alpha=0.3, label=f"{name} backtest")
        top.plot(x, df["paper_equity"] * 100, color=color, linewidth=1.5, label=f"{name} paper")
        bottom.plot(x, df["backtest_compounded"], color=color, linewidth=5, alpha=0.3)
        bottom.plot(x, df["paper_compounded"], color=color, linewidth=1.5)
    top.set_ylabel("non-compounded (% of capital)", fontsize=10)
    top.axhline(0, color="grey", linewidth=0.8)
    top.set_title(title, fontsize=13)
    top.legend(fontsize=9, loc="best")
    bottom.set_ylabel("compounded (x capital)", fontsize=10)
    bottom.axhline(1, color="grey", linewidth=0.8)
    bottom.set_xlabel("decision time (UTC)", fontsize=10)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
