"""Honest statistics for overlapping windows: block bootstrap, null baseline, rank IC, cost sensitivity.

Windows of 4h shifted by 2h overlap, so consecutive window returns are autocorrelated (lag-1 about 0.5):
i.i.d. t-tests overstate significance. Everything here is deterministic for a given seed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from engine.features.cross_section import group_codes, pct_rank_by_code


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


def null_baseline(
    times: np.ndarray, outcome: np.ndarray, decision_ms: np.ndarray, picks: np.ndarray
) -> dict[str, float | None]:
    """Random picks among the eligible symbols, same count per decision time, in closed form.

    `times`/`outcome` hold one row per eligible (decision time, symbol) with its net return (void = 0);
    `picks[k]` is the strategy's number of picks at `decision_ms[k]`. For `k` random picks out of `N`
    returns with mean `mu` and population variance `s2`, the equal-weight window return has mean `mu`
    and variance `s2/k * (N-k)/(N-1)`; picks are independent across decision times, so the mean over
    windows needs no Monte Carlo.
    """
    n_windows = len(decision_ms)
    if n_windows == 0:
        return {"null_mean_window_return": None, "null_std": None}
    t_idx = np.searchsorted(decision_ms, times)
    N = np.bincount(t_idx, minlength=n_windows).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.bincount(t_idx, weights=outcome, minlength=n_windows) / N
        s2 = np.bincount(t_idx, weights=(outcome - mu[t_idx]) ** 2, minlength=n_windows) / N
        k = np.asarray(picks, dtype=np.float64)
        active = (k > 0) & (N > 0)
        var_t = np.where(active & (N > 1), s2 / np.maximum(k, 1) * (N - k) / np.maximum(N - 1, 1), 0.0)
    return {
        "null_mean_window_return": float(mu[active].sum() / n_windows),
        "null_std": float(np.sqrt(max(var_t[active].sum(), 0.0)) / n_windows),
    }


def one_sided_p(value: float, mean: float, std: float) -> float | None:
    """P(null >= value) under a normal null (the CLT holds over thousands of independent picks)."""
    if std is None or std <= 0 or value is None or mean is None:
        return None
    z = (value - mean) / std
    return float(0.5 * math.erfc(z / math.sqrt(2)))


def rank_ic(times: np.ndarray, score: np.ndarray, forward_return: np.ndarray) -> dict[str, float | int | None]:
    """Spearman correlation of score vs forward return per decision time (>= 3 scored symbols)."""
    ok = np.isfinite(score) & np.isfinite(forward_return)
    empty = {"rank_ic_mean": None, "rank_ic_count": 0, "rank_ic_positive_share": None}
    if not ok.any():
        return empty
    codes, n_groups = group_codes(times[ok])
    mask = np.ones(len(codes), dtype=bool)
    n = np.bincount(codes, minlength=n_groups).astype(np.float64)
    a = pct_rank_by_code(score[ok], codes, n_groups, mask) * n[codes]
    b = pct_rank_by_code(forward_return[ok], codes, n_groups, mask) * n[codes]

    def total(w: np.ndarray) -> np.ndarray:
        return np.bincount(codes, weights=w, minlength=n_groups)

    sa, sb = total(a), total(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = total(a * b) - sa * sb / n
        var_a = total(a * a) - sa**2 / n
        var_b = total(b * b) - sb**2 / n
        valid = (n >= 3) & (var_a > 1e-12) & (var_b > 1e-12)
        ic = cov[valid] / np.sqrt(var_a[valid] * var_b[valid])
    if len(ic) == 0:
        return empty
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
