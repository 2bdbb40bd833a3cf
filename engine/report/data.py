"""Read a `WalkForwardResult` defensively: fields added by newer engines may be absent or empty.

Reports must render for any result the engine has ever produced, so every optional field is read here
and returned as None when missing; the sections then say "not available" instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from engine.report.fmt import num


def frame(result: Any, name: str, required: tuple[str, ...] = ()) -> pd.DataFrame | None:
    """`result.<name>` if it is a non-empty DataFrame holding the `required` columns, else None."""
    df = getattr(result, name, None)
    if not isinstance(df, pd.DataFrame) or df.empty or any(c not in df.columns for c in required):
        return None
    return df


def metric(result: Any, key: str) -> float | None:
    return num((getattr(result, "metrics", None) or {}).get(key))


def z_value(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def utc_times(values: Any) -> pd.DatetimeIndex:
    """Naive UTC times (matplotlib's date axis and our labels both read them as UTC)."""
    idx = pd.DatetimeIndex(pd.to_datetime(values, utc=True))
    return idx.tz_convert("UTC").tz_localize(None)


@dataclass
class Curve:
    """A cumulative return path as fractions, at the time each value became known (window close)."""

    label: str
    times: pd.DatetimeIndex
    values: np.ndarray
    drawdown: np.ndarray


def _closing_times(windows: pd.DataFrame, window_hours: float) -> pd.DatetimeIndex:
    decision = utc_times(windows["decision_time"])
    return decision + pd.Timedelta(hours=float(window_hours))


def _with_origin(times: pd.DatetimeIndex, values: np.ndarray, origin: pd.Timestamp) -> Curve:
    values = np.r_[0.0, np.asarray(values, dtype=np.float64)]
    peak = np.maximum.accumulate(np.maximum(values, 0.0))
    return Curve("", pd.DatetimeIndex([origin]).append(times), values, values - peak)


def sleeve_curves(result: Any) -> tuple[Curve, Curve | None] | None:
    """The strategy's non-compounded sleeve curve and the benchmark's, starting at 0 at the first decision."""
    windows = frame(result, "windows", ("decision_time", "window_return"))
    if windows is None:
        return None
    cfg = result.config
    times = _closing_times(windows, cfg.window_hours)
    origin = utc_times(windows["decision_time"].iloc[:1])[0]
    sleeve = float(cfg.sleeve_factor)
    own = windows["equity"] if "equity" in windows else (windows["window_return"].fillna(0.0) * sleeve).cumsum()
    strategy = _with_origin(times, own.to_numpy(np.float64), origin)
    strategy.label = "strategy (non-compounded sleeves)"
    bench = None
    if "benchmark_return" in windows and windows["benchmark_return"].notna().any():
        bench = _with_origin(times, np.cumsum(windows["benchmark_return"].fillna(0.0).to_numpy() * sleeve), origin)
        bench.label = "equal-weight universe benchmark"
    return strategy, bench


def null_band(result: Any) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray] | None:
    """Mean and interval of the random-picks curve: picks are independent across times, so variances add."""
    windows = frame(result, "windows", ("decision_time", "null_mean_return", "null_std_return"))
    if windows is None:
        return None
    cfg = result.config
    sleeve = float(cfg.sleeve_factor)
    mean = np.r_[0.0, np.cumsum(windows["null_mean_return"].fillna(0.0).to_numpy() * sleeve)]
    std = np.r_[0.0, np.sqrt(np.cumsum((windows["null_std_return"].fillna(0.0).to_numpy() * sleeve) ** 2))]
    z = z_value(float(cfg.confidence))
    origin = utc_times(windows["decision_time"].iloc[:1])
    times = origin.append(_closing_times(windows, cfg.window_hours))
    return times, mean, mean - z * std, mean + z * std


def compounded_curve(result: Any) -> Curve | None:
    """Portfolio mode's compounded capital (`result.equity`) as a return on the initial capital from 0.

    Only with `config.compounding`: without it the capital curve is the sleeve curve scaled (docs/portfolio.md).
    """
    eq = frame(result, "equity", ("total_equity", "drawdown", "marked_at"))
    if eq is None or not getattr(result.config, "compounding", False):
        return None
    capital = num(getattr(result.config, "initial_capital", None)) or 1.0
    first = eq.index[0] if isinstance(eq.index, pd.DatetimeIndex) else (
        eq["marked_at"].iloc[0] - pd.Timedelta(hours=float(result.config.window_hours)))
    times = utc_times([first]).append(utc_times(eq["marked_at"]))
    values = np.r_[0.0, eq["total_equity"].to_numpy(np.float64) / capital - 1.0]
    drawdown = np.r_[0.0, eq["drawdown"].to_numpy(np.float64)]
    return Curve("compounded capital", times, values, drawdown)


def sizing_text(cfg: Any) -> str:
    """'equal weights', 'inverse volatility, max 40% per position', 'fixed fraction 25%'."""
    sizing = getattr(cfg, "sizing", None) or "equal"
    text = {"equal": "equal weights", "inverse_volatility": "inverse volatility (1/atr_pct)"}.get(
        sizing, str(sizing).replace("_", " "))
    fraction = num(getattr(cfg, "position_fraction", None))
    if fraction is not None:
        text += f" {fraction:.0%} per position"
    cap = num(getattr(cfg, "max_weight", None))
    if cap is not None:
        text += f", max {cap:.0%} per position"
    return text


def portfolio_mode(cfg: Any) -> bool:
    """Opt-in portfolio settings in use (v1 is equal weights, non-compounded)."""
    return bool(getattr(cfg, "compounding", False)) or (getattr(cfg, "sizing", None) or "equal") != "equal" \
        or getattr(cfg, "max_weight", None) is not None


def universe(result: Any) -> list[str]:
    """Symbols that were ever eligible (the panel), else ever traded."""
    for name in ("panel", "trades", "symbol_metrics"):
        df = frame(result, name, ("symbol",))
        if df is not None:
            return sorted({str(s) for s in df["symbol"].unique()})
    return []


def data_label(result: Any) -> str | None:
    for source in (result, getattr(result, "config", None), getattr(result, "metrics", None) or {}):
        label = source.get("data_label") if isinstance(source, dict) else getattr(source, "data_label", None)
        if label:
            return str(label)
    return None


def rank_ic_series(result: Any) -> pd.DataFrame | None:
    return frame(result, "rank_ic", ("decision_time", "rank_ic"))


def cost_table(result: Any) -> pd.DataFrame | None:
    return frame(result, "cost_sensitivity", ("cost_bps_per_side", "mean_window_return"))


def aligned_window_returns(a: Any, b: Any, column_b: str = "window_return") -> tuple[np.ndarray, np.ndarray]:
    """Window returns of two runs at their common decision times (a difference needs paired windows)."""
    wa = frame(a, "windows", ("decision_time", "window_return"))
    wb = frame(b, "windows", ("decision_time", column_b))
    if wa is None or wb is None:
        return np.array([]), np.array([])
    left = wa.set_index("decision_time")["window_return"]
    right = wb.set_index("decision_time")[column_b]
    common = left.index.intersection(right.index)
    return left.loc[common].to_numpy(np.float64), right.loc[common].fillna(0.0).to_numpy(np.float64)


@dataclass
class Difference:
    """Mean paired difference of window returns (a - b), its interval and the one-sided p-value of "a is
    no better than b" (studentized block bootstrap, `engine.stats.compare_window_returns`)."""

    mean: float | None
    low: float | None
    high: float | None
    p_value: float | None
    n: int


def compare_returns(a: np.ndarray, b: np.ndarray, cfg: Any, block: int) -> Difference:
    """The paired test of `a` against `b` over their common decision times."""
    from engine.stats import compare_window_returns

    if len(a) < 2:
        return Difference(None, None, None, None, len(a))  # too few common decision times to test
    out = compare_window_returns(a, b, block=int(block), samples=int(cfg.bootstrap_samples),
                                 confidence=float(cfg.confidence), seed=int(cfg.seed))  # fmt: skip
    return Difference(mean=num(out.mean_difference), low=num(out.ci_low), high=num(out.ci_high),
                      p_value=num(out.p_value_greater), n=len(a))  # fmt: skip
