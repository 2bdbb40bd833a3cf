"""Sharpe ratio, probabilistic Sharpe (PSR) and deflated Sharpe (DSR), Bailey & Lopez de Prado.

PSR asks how likely the true Sharpe exceeds a benchmark given the sample's length, skewness and kurtosis;
DSR sets that benchmark to the Sharpe the best of `n_trials` skill-less configurations would reach by
luck, so a strategy chosen among many is not credited with the luck of the choice.

References: D. Bailey, M. Lopez de Prado, "The Sharpe ratio efficient frontier", J. of Risk 15(2), 2012
(PSR); "The deflated Sharpe ratio", J. of Portfolio Management 40(5), 2014 (DSR).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats

#: Euler-Mascheroni constant (expected maximum of Gumbel-distributed extremes)
EULER_GAMMA = 0.5772156649015329


class DeflatedSharpe(NamedTuple):
    """`probability` that the true Sharpe exceeds `threshold`, the expected best Sharpe of `n_trials`
    skill-less trials; `sharpe` and `threshold` are annualised with the caller's `periods_per_year`."""

    probability: float | None
    threshold: float | None
    sharpe: float | None
    n_trials: int


def _clean(returns: np.ndarray) -> np.ndarray:
    x = np.asarray(returns, dtype=np.float64)
    return x[np.isfinite(x)]


def sharpe_ratio(returns: np.ndarray, periods_per_year: float = 1.0) -> float | None:
    """Mean over sample std (ddof=1), times sqrt(periods_per_year); None when undefined (n < 2, flat)."""
    x = _clean(returns)
    if len(x) < 2:
        return None
    sd = float(x.std(ddof=1))
    if not sd > 1e-15 * max(1.0, float(np.abs(x).max())):
        return None
    return float(x.mean() / sd * math.sqrt(periods_per_year))


def _psr(sr: float, benchmark: float, n: int, skew: float, kurt: float) -> float | None:
    """PSR formula on per-period Sharpe ratios: Phi((sr - benchmark) sqrt(n-1) / sqrt(1 - g3 sr + (g4-1)/4 sr^2))."""
    denom = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr**2
    if n < 2 or not denom > 0:
        return None
    return float(stats.norm.cdf((sr - benchmark) * math.sqrt(n - 1) / math.sqrt(denom)))


def _moments(x: np.ndarray) -> tuple[float, float, float] | None:
    """Per-period Sharpe, skewness and (non-excess) kurtosis, or None when the Sharpe is undefined."""
    sr = sharpe_ratio(x)
    if sr is None:
        return None
    skew = float(stats.skew(x, bias=True))
    kurt = float(stats.kurtosis(x, fisher=False, bias=True))
    return sr, skew, kurt


def probabilistic_sharpe(
    returns: np.ndarray, benchmark_sharpe: float = 0.0, *, periods_per_year: float = 1.0
) -> float | None:
    """P(true Sharpe > `benchmark_sharpe`) for a return series (PSR, Bailey & Lopez de Prado 2012).

    `benchmark_sharpe` is annualised with `periods_per_year` like the Sharpe it is compared with. Assumes
    serially independent returns: with overlapping windows it is optimistic (the bootstrap interval of the
    Sharpe is the honest companion).
    """
    x = _clean(returns)
    m = _moments(x)
    if m is None:
        return None
    sr, skew, kurt = m
    return _psr(sr, benchmark_sharpe / math.sqrt(periods_per_year), len(x), skew, kurt)


def expected_max_sharpe(n_trials: int, trials_sharpe_variance: float) -> float:
    """Expected maximum Sharpe of `n_trials` skill-less trials (DSR's threshold, per-period units)."""
    if n_trials <= 1:
        return 0.0
    z1 = stats.norm.ppf(1.0 - 1.0 / n_trials)
    z2 = stats.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(trials_sharpe_variance) * ((1 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))


def deflated_sharpe(
    returns: np.ndarray,
    n_trials: int,
    *,
    periods_per_year: float = 1.0,
    trials_sharpe_variance: float | None = None,
) -> DeflatedSharpe:
    """Deflated Sharpe ratio (Bailey & Lopez de Prado 2014): PSR against the expected best Sharpe of
    `n_trials` configurations with no skill.

    `trials_sharpe_variance` is the variance of the Sharpe ratios of the trials, annualised like the result
    (per-period variance times `periods_per_year`). When unknown (None) it is the sampling variance of a
    Sharpe estimate with zero true Sharpe over this many returns, `1/(n-1)` per period: the spread skill-less
    trials of the same length would show. `n_trials = 1` gives threshold 0 (DSR = PSR against 0).
    """
    if isinstance(n_trials, bool) or int(n_trials) != n_trials or n_trials < 1:
        raise ValueError(f"deflated_sharpe: n_trials must be an integer >= 1 (got {n_trials!r})")
    n_trials = int(n_trials)
    x = _clean(returns)
    m = _moments(x)
    if m is None:
        return DeflatedSharpe(None, None, None, n_trials)
    sr, skew, kurt = m
    if trials_sharpe_variance is None:
        variance = 1.0 / (len(x) - 1)
    else:
        if not (math.isfinite(trials_sharpe_variance) and trials_sharpe_variance >= 0):
            raise ValueError(f"deflated_sharpe: trials_sharpe_variance must be >= 0 (got {trials_sharpe_variance!r})")
        variance = trials_sharpe_variance / periods_per_year
    threshold = expected_max_sharpe(n_trials, variance)
    scale = math.sqrt(periods_per_year)
    return DeflatedSharpe(_psr(sr, threshold, len(x), skew, kurt), threshold * scale, sr * scale, n_trials)
