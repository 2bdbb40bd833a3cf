"""The random-pick null: what a strategy with no selection skill earns at each decision time.

At decision time `t_k` with `N_k` eligible symbols (net outcomes with mean `mu_k`, population variance
`s2_k`), random distinct picks given the strategy's weights `w_1..w_p` earn `W mu_k` on average (`W` = sum
of the weights) with variance `s2_k (N_k sum(w^2) - W^2) / (N_k - 1)` (sampling without replacement). With
equal weights `1/p` that is `mu_k` and `s2_k/p * (N_k-p)/(N_k-1)`; without picks, 0.
"""

from __future__ import annotations

import math

import numpy as np

from engine.reuse import reusable


@reusable
def outcome_moments(
    times: np.ndarray, outcome: np.ndarray, decision_ms: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per decision time: number of eligible symbols, mean and population variance of their outcomes
    (the same for every configuration of a sweep at one cost)."""
    n_windows = len(decision_ms)
    t_idx = np.searchsorted(decision_ms, times)
    N = np.bincount(t_idx, minlength=n_windows).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.bincount(t_idx, weights=outcome, minlength=n_windows) / N
        s2 = np.bincount(t_idx, weights=(outcome - mu[t_idx]) ** 2, minlength=n_windows) / N
    return N, mu, s2


def window_null(
    times: np.ndarray,
    outcome: np.ndarray,
    decision_ms: np.ndarray,
    picks: np.ndarray,
    weight_sum: np.ndarray | None = None,
    weight_sq_sum: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per decision time: mean and std of the window return of `picks[k]` random eligible picks.

    `times`/`outcome` hold one row per eligible (decision time, symbol) with its net return (void = 0).
    The random picks carry the strategy's weights: `weight_sum[k]` and `weight_sq_sum[k]` (sum of weights
    and of squared weights at time k); None means equal weights `1/picks[k]`.
    """
    N, mu, s2 = outcome_moments(times, outcome, decision_ms)
    k = np.asarray(picks, dtype=np.float64)
    active = (k > 0) & (N > 0)
    w = np.where(active, 1.0, 0.0) if weight_sum is None else np.asarray(weight_sum, dtype=np.float64)
    w2 = np.where(active, 1.0 / np.maximum(k, 1), 0.0) if weight_sq_sum is None else np.asarray(weight_sq_sum, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = s2 * (N * w2 - w**2) / (N - 1)
    mean = np.where(active, w * mu, 0.0)
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
    """d_k = window return - expected return of random picks with the same weights (0 without picks).

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
