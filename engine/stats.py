"""Honest statistics for overlapping windows: block bootstrap, null baseline, rank IC, cost sensitivity.

Windows of 4h shifted by 2h overlap, so consecutive window returns are autocorrelated (lag-1 about 0.5):
i.i.d. t-tests overstate significance. Everything here is deterministic for a given seed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def block_length(n: int, overlap: int) -> int:
    """At least twice the overlap (window/shift), and n^(1/3) for long series (a standard rate)."""
    return int(max(1, min(n, max(2 * overlap, round(n ** (1 / 3))))))


def block_bootstrap_ci(
    x: np.ndarray, *, samples: int, block: int, confidence: float, seed: int
) -> tuple[float | None, float | None]:
    """Moving-block bootstrap confidence interval of the mean of `x`."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 2 or samples <= 0:
        return None, None
    block = max(1, min(block, n))
    k = -(-n // block)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - block + 1, size=(samples, k))
    idx = (starts[:, :, None] + np.arange(block)).reshape(samples, k * block)[:, :n]
    means = x[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def null_baseline(eligible: pd.DataFrame, picks_per_time: pd.Series, n_windows: int) -> dict[str, float | None]:
    """Random picks among the eligible symbols, same count per decision time, in closed form.

    For `k` random picks out of `N` eligible returns with mean `mu` and population variance `s2`, the
    equal-weight window return has mean `mu` and variance `s2/k * (N-k)/(N-1)`; picks are independent
    across decision times, so the mean over windows is exact without Monte Carlo noise.
    """
    if n_windows == 0:
        return {"null_mean_window_return": None, "null_std": None}
    g = eligible.groupby("decision_ms", sort=False)["outcome_return"]
    stats = pd.DataFrame({"mu": g.mean(), "s2": g.var(ddof=0), "N": g.size()})
    k = picks_per_time.reindex(stats.index).fillna(0).to_numpy()
    N = stats["N"].to_numpy()
    active = k > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        var_t = np.where(N > 1, stats["s2"].to_numpy() / np.maximum(k, 1) * (N - k) / np.maximum(N - 1, 1), 0.0)
    mean = float(stats["mu"].to_numpy()[active].sum() / n_windows)
    std = float(math.sqrt(max(var_t[active].sum(), 0.0)) / n_windows)
    return {"null_mean_window_return": mean, "null_std": std}


def one_sided_p(value: float, mean: float, std: float) -> float | None:
    """P(null >= value) under a normal null (the CLT holds over thousands of independent picks)."""
    if std is None or std <= 0 or value is None or mean is None:
        return None
    z = (value - mean) / std
    return float(0.5 * math.erfc(z / math.sqrt(2)))


def rank_ic(eligible: pd.DataFrame) -> dict[str, float | int | None]:
    """Spearman correlation of score vs forward return per decision time (>= 3 scored symbols)."""
    d = eligible.loc[np.isfinite(eligible["score"]) & ~eligible["void"], ["decision_ms", "score", "return_pct"]]
    if d.empty:
        return {"rank_ic_mean": None, "rank_ic_count": 0, "rank_ic_positive_share": None}
    g = d.groupby("decision_ms", sort=False)
    rs = g["score"].rank(method="average")
    rr = g["return_pct"].rank(method="average")
    tmp = pd.DataFrame({"t": d["decision_ms"], "a": rs, "b": rr})
    tmp["ab"], tmp["aa"], tmp["bb"] = tmp.a * tmp.b, tmp.a * tmp.a, tmp.b * tmp.b
    s = tmp.groupby("t", sort=False).agg(n=("a", "size"), a=("a", "sum"), b=("b", "sum"),
                                          ab=("ab", "sum"), aa=("aa", "sum"), bb=("bb", "sum"))
    s = s[s.n >= 3]
    cov = s.ab - s.a * s.b / s.n
    var_a = s.aa - s.a**2 / s.n
    var_b = s.bb - s.b**2 / s.n
    ok = (var_a > 0) & (var_b > 0)
    ic = cov[ok] / np.sqrt(var_a[ok] * var_b[ok])
    if ic.empty:
        return {"rank_ic_mean": None, "rank_ic_count": 0, "rank_ic_positive_share": None}
    return {"rank_ic_mean": float(ic.mean()), "rank_ic_count": int(len(ic)),
            "rank_ic_positive_share": float((ic > 0).mean())}


def net_return(gross_ratio: np.ndarray, cost_per_side: float) -> np.ndarray:
    """exit*(1-c) / (entry*(1+c)) - 1, from the gross ratio exit/entry."""
    return gross_ratio * (1.0 - cost_per_side) / (1.0 + cost_per_side) - 1.0


def cost_sensitivity(
    trades: pd.DataFrame, n_windows: int, levels_bps: tuple[float, ...], slippage_bps: float, sleeve_factor: float
) -> tuple[pd.DataFrame, float | None]:
    """Mean window return at several total costs per side, and the break-even fee.

    Mean window return is `g(c) * A - B` with `g(c) = (1-c)/(1+c)`, `A` the mean weighted gross ratio and
    `B` the mean invested weight, so the break-even cost is `(A - B)/(A + B)`; the break-even fee is that
    minus the slippage. A negative value means the strategy loses money even with zero fees.
    """
    done = trades.loc[~trades["void"]] if len(trades) else trades
    w = done["weight"].to_numpy(np.float64) if len(done) else np.array([])
    ratio = done["gross_ratio"].to_numpy(np.float64) if len(done) else np.array([])
    rows = []
    for bps in levels_bps:
        c = bps / 10_000
        total = float((w * net_return(ratio, c)).sum())
        rows.append({
            "cost_bps_per_side": bps,
            "mean_window_return": total / n_windows if n_windows else None,
            "total_return": total * sleeve_factor,
        })
    table = pd.DataFrame(rows, columns=["cost_bps_per_side", "mean_window_return", "total_return"])
    if n_windows == 0 or len(done) == 0:
        return table, None
    a = float((w * ratio).sum())
    b = float(w.sum())
    break_even_cost = (a - b) / (a + b)
    return table, break_even_cost * 10_000 - slippage_bps
