"""Ranking diagnostics: per-decision-time rank IC, its autocorrelation-robust t-stat, quintile spread.

Both look at every eligible symbol with a score and a completed outcome, not only the picks: they ask
whether the score orders the universe, independently of the `max_positions` cut.
"""

from __future__ import annotations

import math

import numpy as np
from arch.covariance.kernel import Bartlett

from engine.features.cross_section import group_codes, pct_rank_by_code

#: fewest scored symbols at a decision time for a rank IC or a quintile spread
MIN_SCORED = 3


def rank_ic_series(
    times: np.ndarray, score: np.ndarray, forward_return: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spearman correlation of score vs forward return per decision time with >= 3 scored symbols.

    Returns (decision times, IC, number of scored symbols), in time order. A time whose scores or returns
    are all tied has no IC.
    """
    times = np.asarray(times)
    ok = np.isfinite(score) & np.isfinite(forward_return)
    empty = (times[:0], np.array([]), np.array([], dtype=np.int64))
    if not ok.any():
        return empty
    codes, n_groups = group_codes(times[ok])
    row_of = np.empty(n_groups, dtype=np.int64)
    row_of[codes] = np.flatnonzero(ok)  # any row of each group: they share its time
    mask = np.ones(len(codes), dtype=bool)
    n = np.bincount(codes, minlength=n_groups).astype(np.float64)
    a = pct_rank_by_code(np.asarray(score)[ok], codes, n_groups, mask) * n[codes]
    b = pct_rank_by_code(np.asarray(forward_return)[ok], codes, n_groups, mask) * n[codes]

    def total(w: np.ndarray) -> np.ndarray:
        return np.bincount(codes, weights=w, minlength=n_groups)

    sa, sb = total(a), total(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = total(a * b) - sa * sb / n
        var_a = total(a * a) - sa**2 / n
        var_b = total(b * b) - sb**2 / n
        valid = (n >= MIN_SCORED) & (var_a > 1e-12) & (var_b > 1e-12)
        ic = cov / np.sqrt(var_a * var_b)
    t = times[row_of]
    order = np.argsort(t[valid], kind="stable")
    return t[valid][order], ic[valid][order], n[valid][order].astype(np.int64)


def rank_ic(times: np.ndarray, score: np.ndarray, forward_return: np.ndarray) -> dict[str, float | int | None]:
    """Mean rank IC, number of decision times with one, and the share of positive ICs."""
    _, ic, _ = rank_ic_series(times, score, forward_return)
    if len(ic) == 0:
        return {"rank_ic_mean": None, "rank_ic_count": 0, "rank_ic_positive_share": None}
    return {"rank_ic_mean": float(ic.mean()), "rank_ic_count": int(len(ic)),
            "rank_ic_positive_share": float((ic > 0).mean())}


def newey_west_tstat(x: np.ndarray, min_bandwidth: float) -> float | None:
    """t-stat of the mean of `x` with a Bartlett (Newey-West) long-run variance from arch.

    The bandwidth is arch's automatic choice, at least `min_bandwidth`: consecutive ICs share overlapping
    windows, and Bartlett weights lag j by 1 - j/(bandwidth+1), so a bandwidth near the overlap would
    discount exactly the correlation that matters.
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 3 or not np.ptp(x) > 0:
        return None
    try:
        auto = float(Bartlett(x).bandwidth)
    except (ZeroDivisionError, FloatingPointError, ValueError):  # short series with no usable autocovariance
        auto = 0.0
    auto = auto if math.isfinite(auto) else 0.0
    bandwidth = float(min(len(x) - 1, max(auto, min_bandwidth)))
    lrv = float(np.squeeze(Bartlett(x, bandwidth=bandwidth).cov.long_run))
    if not lrv > 0:
        return None
    return float(x.mean() / math.sqrt(lrv / len(x)))


def quantile_spread(
    times: np.ndarray, symbols: np.ndarray, score: np.ndarray, forward_return: np.ndarray
) -> float | None:
    """Mean over decision times of (top-quintile mean return - bottom-quintile mean return).

    At a time with `n >= 3` scored symbols, each quintile holds `k = max(1, n // 5)` symbols: the `k` best
    and the `k` worst in the engine's rank order (score descending, ties by symbol name). So with 3-9
    symbols it compares the single best with the single worst; with 10-14, the best two with the worst two.
    """
    ok = np.flatnonzero(np.isfinite(score) & np.isfinite(forward_return))
    if len(ok) == 0:
        return None
    t, s, sym, r = np.asarray(times)[ok], np.asarray(score)[ok], np.asarray(symbols).astype(str)[ok], forward_return[ok]
    order = np.lexsort((sym, -s, t))
    t, r = t[order], r[order]
    new = np.r_[True, t[1:] != t[:-1]]
    group = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    n = np.bincount(group)
    pos = np.arange(len(t)) - starts[group]
    k = np.maximum(1, n // 5)
    top = pos < k[group]
    bottom = pos >= (n - k)[group]
    spread = (np.bincount(group[top], weights=r[top], minlength=len(n))
              - np.bincount(group[bottom], weights=r[bottom], minlength=len(n))) / k
    spread = spread[n >= MIN_SCORED]
    return float(spread.mean()) if len(spread) else None
