"""The random-pick null: what a strategy with no selection skill earns at each decision time.

At decision time `t_k` with `N_k` eligible symbols (net outcomes with mean `mu_k`, population variance
`s2_k`), `p_k` random equal-weight picks earn `mu_k` on average with variance `s2_k/p_k * (N_k-p_k)/(N_k-1)`
(sampling without replacement), and 0 when the strategy picks nothing.
"""

from __future__ import annotations

import math

import numpy as np


def window_null(
    times: np.ndarray, outcome: np.ndarray, decision_ms: np.ndarray, picks: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per decision time: mean and std of the window return of `picks[k]` random eligible picks.

    `times`/`outcome` hold one row per eligible (decision time, symbol) with its net return (void = 0).
    """
    n_windows = len(decision_ms)
    t_idx = np.searchsorted(decision_ms, times)
    N = np.bincount(t_idx, minlength=n_windows).astype(np.float64)
    k = np.asarray(picks, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.bincount(t_idx, weights=outcome, minlength=n_windows) / N
        s2 = np.bincount(t_idx, weights=(outcome - mu[t_idx]) ** 2, minlength=n_windows) / N
        var = s2 / np.maximum(k, 1) * (N - k) / np.maximum(N - 1, 1)
    active = (k > 0) & (N > 0)
    mean = np.where(active, mu, 0.0)
    std = np.sqrt(np.where(active & (N > 1), np.maximum(var, 0.0), 0.0))
    return mean, std


def null_baseline(
    times: np.ndarray, outcome: np.ndarray, decision_ms: np.ndarray, picks: np.ndarray
) -> dict[str, float | None]:
    """Mean window return of random picks and its std if picks were drawn independently at every time.

    This is the closed form of the random-pick Monte Carlo; the run's `null_std` metric is instead the
    block-bootstrap standard error of the strategy's excess over this mean (see `excess_over_null`).
    """
    n_windows = len(decision_ms)
    if n_windows == 0:
        return {"null_mean_window_return": None, "null_std": None}
    mean, std = window_null(times, outcome, decision_ms, picks)
    return {
        "null_mean_window_return": float(mean.sum() / n_windows),
        "null_std": float(np.sqrt((std**2).sum()) / n_windows),
    }


def excess_over_null(window_return: np.ndarray, null_mean: np.ndarray) -> np.ndarray:
    """d_k = window return - expected return of random picks of the same count (0 without picks).

    Without selection skill E[d_k | information at t_k] = 0, whatever the strategy's persistence, so a test
    of mean(d) = 0 that respects the serial dependence of d is a test of skill.
    """
    return np.asarray(window_return, dtype=np.float64) - np.asarray(null_mean, dtype=np.float64)


def one_sided_p(value: float, mean: float, std: float) -> float | None:
    """P(null >= value) under a normal null with this mean and std."""
    if std is None or std <= 0 or value is None or mean is None:
        return None
    z = (value - mean) / std
    return float(0.5 * math.erfc(z / math.sqrt(2)))
