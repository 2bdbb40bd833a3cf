"""Helpers for the report tests: sample runs, and the newer result fields filled in when the engine lacks them.

The statistics that newer engines add (per-window null moments, per-month table, rank IC per decision,
interval metrics) are built here with plain pandas, so the report's sections that read them are exercised
on any engine. Values only need to be plausible: the report displays, it does not compute them.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from engine.backtest import WalkForwardConfig, WalkForwardResult, prepare_histories, run_walk_forward
from engine.data.sample import load_sample_candles
from engine.strategies import get_strategy

CHROMIUM = "/usr/bin/chromium"
SAMPLE_CONFIG = dict(start="2018-01-22", end="2018-01-30")


@cache
def _histories():
    return prepare_histories(load_sample_candles(), "1h")


def sample_run(strategy: str = "momentum_rank", params: dict | None = None, candles=None, **cfg) -> WalkForwardResult:
    """A real walk-forward on the bundled 2018 Binance sample (or on `candles`)."""
    data = _histories() if candles is None else candles
    return run_walk_forward(data, get_strategy(strategy, params), WalkForwardConfig(**{**SAMPLE_CONFIG, **cfg}))


def with_new_fields(result: WalkForwardResult) -> WalkForwardResult:
    """A copy of `result` holding every field the report reads, added only where the engine lacks it."""
    r = copy.copy(result)
    r.metrics = dict(result.metrics)
    r.windows = result.windows.copy()
    panel = result.panel
    if "null_mean_return" not in r.windows and len(panel):
        outcome = panel["return_pct"].where(~panel["void"].astype(bool), 0.0)
        g = outcome.groupby(panel["decision_time"], observed=True)
        mu, s2, n = g.mean(), g.var(ddof=0), g.size().astype(float)
        k = r.windows.set_index("decision_time")["n_selected"].astype(float)
        mu, s2, n = (x.reindex(k.index) for x in (mu, s2, n))
        var = (s2 / k.clip(lower=1) * (n - k) / (n - 1).clip(lower=1)).where((k > 0) & (n > 1), 0.0)
        r.windows["null_mean_return"] = mu.where(k > 0, 0.0).fillna(0.0).to_numpy()
        r.windows["null_std_return"] = np.sqrt(var.fillna(0.0)).to_numpy()
    if getattr(result, "rank_ic", None) is None and len(panel):
        scored = panel.assign(ret=panel["return_pct"].where(~panel["void"].astype(bool)))
        rows = []
        for t, grp in scored.dropna(subset=["score", "ret"]).groupby("decision_time", observed=True):
            if len(grp) >= 3 and grp["score"].nunique() > 1 and grp["ret"].nunique() > 1:
                rows.append({"decision_time": t, "rank_ic": grp["score"].rank().corr(grp["ret"].rank()),
                             "n_scored": len(grp)})
        r.rank_ic = pd.DataFrame(rows, columns=["decision_time", "rank_ic", "n_scored"])
    if getattr(result, "monthly", None) is None:
        w = r.windows
        month = pd.to_datetime(w["decision_time"]).dt.strftime("%Y-%m")
        t = result.trades
        t_month = pd.to_datetime(t["decision_time"]).dt.strftime("%Y-%m") if len(t) else pd.Series([], dtype=str)
        rows = []
        for mth, grp in w.groupby(month):
            tr = t.loc[(t_month == mth) & ~t["void"].astype(bool)] if len(t) else t
            eq = grp["contribution"].cumsum()
            rows.append({"month": mth, "windows": len(grp), "trades": len(tr),
                         "win_rate": float((tr["return_pct"] > 0).mean()) if len(tr) else None,
                         "mean_window_return": grp["window_return"].mean(), "total_return": grp["contribution"].sum(),
                         "benchmark_total_return": grp["benchmark_return"].fillna(0).sum() * result.config.sleeve_factor,
                         "max_drawdown": float(min(0.0, (eq - eq.cummax().clip(lower=0)).min()))})
        r.monthly = pd.DataFrame(rows)
    wr = r.windows["window_return"]
    m = r.metrics
    extra = {
        "median_window_return": float(wr.median()), "median_window_return_ci_low": float(wr.quantile(0.4)),
        "median_window_return_ci_high": float(wr.quantile(0.6)),
        "win_rate_ci_low": (m["win_rate"] or 0) - 0.05, "win_rate_ci_high": (m["win_rate"] or 0) + 0.05,
        "profit_factor_ci_low": 0.7, "profit_factor_ci_high": 1.4,
        "sharpe": 0.8, "sharpe_ci_low": -1.1, "sharpe_ci_high": 2.7, "probabilistic_sharpe": 0.71,
        "rank_ic_tstat": 1.2, "quantile_spread_mean": 0.0011, "return_q05": float(wr.quantile(0.05)),
        "cvar_05": float(wr[wr <= wr.quantile(0.05)].mean()), "worst_trade": float(result.trades["return_pct"].min()),
        "longest_losing_streak": 7,
    }
    for key, value in extra.items():
        m.setdefault(key, value)
    costs = result.cost_sensitivity.copy()
    if "fee_bps" not in costs and len(costs):
        costs.insert(0, "slippage_bps", result.config.slippage_bps)
        costs.insert(0, "fee_bps", costs["cost_bps_per_side"] - result.config.slippage_bps)
    r.cost_sensitivity = costs
    return r


def chromium() -> str | None:
    """The headless browser for rendering checks (Debian's `chromium`), or None."""
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def chromium_args(binary: str, profile: Path) -> list[str]:
    return [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", f"--user-data-dir={profile}"]


def screenshot(report: Path, png: Path, profile: Path, size: str = "1400,3000") -> Path:
    binary = chromium()
    assert binary, "chromium is not installed"
    cmd = [*chromium_args(binary, profile), f"--screenshot={png}", f"--window-size={size}", report.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert png.exists(), proc.stderr[-2000:]
    return png


def dump_dom(url: str, profile: Path) -> str:
    binary = chromium()
    assert binary, "chromium is not installed"
    cmd = [*chromium_args(binary, profile), "--virtual-time-budget=3000", "--dump-dom", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout
