"""Ranking diagnostics: per-decision-time rank IC, its autocorrelation-robust t-stat, quintile spread.

Both look at every eligible symbol with a score and a completed outcome, not only the picks: they ask
whether the score orders the universe, independently of the `max_positions` cut.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from arch.covariance.kernel import Bartlett

from engine.features.cross_section import pct_rank_dense
from engine.reuse import reusable

#: fewest scored symbols at a decision time for a rank IC or a quintile spread
MIN_SCORED = 3


def _layout(times: np.ndarray, members: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """Rows = distinct times (sorted), columns = `members` (or the position within the time).

    A (time x symbol) matrix is small (4k x 100 for a year), so row-wise sorts beat grouped sorts of 400k
    rows. Each (time, member) pair must occur at most once.
    """
    uniq, rows = np.unique(np.asarray(times), return_inverse=True)
    if members is None:
        order = np.argsort(rows, kind="stable")
        starts = np.searchsorted(rows[order], np.arange(len(uniq)))
        cols = np.empty(len(rows), dtype=np.int64)
        cols[order] = np.arange(len(rows)) - starts[rows[order]]
    else:
        cols = np.asarray(members, dtype=np.int64)
    width = int(cols.max()) + 1 if len(cols) else 0
    return uniq, rows, cols, (len(uniq), width)


@reusable
def rank_ic_series(
    times: np.ndarray, score: np.ndarray, forward_return: np.ndarray, members: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spearman correlation of score vs forward return per decision time with >= 3 scored symbols.

    Returns (decision times, IC, number of scored symbols), in time order. A time whose scores or returns
    are all tied has no IC. `members` (symbol codes) is optional and only speeds up the layout.
    """
    score, forward_return = np.asarray(score, dtype=np.float64), np.asarray(forward_return, dtype=np.float64)
    ok = np.isfinite(score) & np.isfinite(forward_return)
    uniq, rows, cols, shape = _layout(times, members)
    if not ok.any():
        return uniq[:0], np.array([]), np.array([], dtype=np.int64)
    # percentile ranks = ranks / n: a per-time scale that leaves the correlation unchanged
    a = pct_rank_dense(score, rows, cols, shape, ok)[ok]
    b = pct_rank_dense(forward_return, rows, cols, shape, ok)[ok]
    r = rows[ok]

    def total(w: np.ndarray) -> np.ndarray:
        return np.bincount(r, weights=w, minlength=shape[0])

    n = total(np.ones(len(r)))
    with np.errstate(invalid="ignore", divide="ignore"):
        sa, sb = total(a), total(b)
        cov = total(a * b) - sa * sb / n
        var_a = total(a * a) - sa**2 / n
        var_b = total(b * b) - sb**2 / n
        keep = (n >= MIN_SCORED) & (var_a > 1e-12) & (var_b > 1e-12)
        ic = cov / np.sqrt(var_a * var_b)
    return uniq[keep], ic[keep], n[keep].astype(np.int64)


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


@reusable
def quantile_spread(
    times: np.ndarray, symbols: np.ndarray, score: np.ndarray, forward_return: np.ndarray
) -> float | None:
    """Mean over decision times of (top-quintile mean return - bottom-quintile mean return).

    At a time with `n >= 3` scored symbols, each quintile holds `k = max(1, n // 5)` symbols: the `k` best
    and the `k` worst in the engine's rank order (score descending, ties by symbol name). So with 3-9
    symbols it compares the single best with the single worst; with 10-14, the best two with the worst two.
    `symbols` are names, or integer codes that sort like the names (the panel's categorical codes).
    """
    symbols = np.asarray(symbols)
    if symbols.dtype.kind not in "iu":
        symbols = pd.factorize(symbols, sort=True)[0]
    score, forward_return = np.asarray(score, dtype=np.float64), np.asarray(forward_return, dtype=np.float64)
    ok = np.isfinite(score) & np.isfinite(forward_return)
    if not ok.any():
        return None
    _, rows, cols, shape = _layout(np.asarray(times)[ok], symbols[ok])
    key = np.full(shape, np.inf)
    key[rows, cols] = -score[ok]
    ret = np.zeros(shape)
    ret[rows, cols] = forward_return[ok]
    order = np.argsort(key, kind="stable")  # best score first; ties keep symbol order; empty cells last
    csum = np.cumsum(np.take_along_axis(ret, order, axis=1), axis=1)
    n = np.isfinite(key).sum(axis=1)
    k = np.maximum(1, n // 5)
    used = n >= MIN_SCORED
    if not used.any():
        return None
    r, n, k = np.flatnonzero(used), n[used], k[used]
    top = csum[r, k - 1]
    bottom = csum[r, n - 1] - np.where(n - k - 1 >= 0, csum[r, np.maximum(n - k - 1, 0)], 0.0)
    return float(((top - bottom) / k).mean())
