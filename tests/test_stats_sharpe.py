"""Sharpe, probabilistic Sharpe (PSR) and deflated Sharpe (DSR): hand-computed from the papers' formulas.

Bailey & Lopez de Prado, "The Sharpe ratio efficient frontier" (2012) and "The deflated Sharpe ratio"
(2014). The expected values below are computed here independently (plain math/statistics, no scipy).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from engine.stats import (
    deflated_sharpe,
    expected_max_sharpe,
    probabilistic_sharpe,
    psr_from_moments,
    sharpe_ratio,
)

PHI = NormalDist().cdf
PHI_INV = NormalDist().inv_cdf
GAMMA = 0.5772156649015329
RETURNS = np.array([0.012, -0.004, 0.007, 0.021, -0.015, 0.003, 0.009, -0.002, 0.011, -0.030, 0.018, 0.005])


def _moments(x: np.ndarray) -> tuple[float, float, float]:
    """Per-period Sharpe (sample std), skewness and kurtosis (population central moments), by hand."""
    n = len(x)
    mean = sum(x) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in x) / (n - 1))
    m2 = sum((v - mean) ** 2 for v in x) / n
    m3 = sum((v - mean) ** 3 for v in x) / n
    m4 = sum((v - mean) ** 4 for v in x) / n
    return mean / sd, m3 / m2**1.5, m4 / m2**2


def test_sharpe_ratio_annualises_with_sqrt_periods():
    sr, _, _ = _moments(RETURNS)
    assert sharpe_ratio(RETURNS) == pytest.approx(sr)
    assert sharpe_ratio(RETURNS, periods_per_year=4380) == pytest.approx(sr * math.sqrt(4380))
    assert sharpe_ratio(np.array([0.01])) is None
    assert sharpe_ratio(np.full(5, 0.01)) is None  # no dispersion: undefined, not infinite


def test_probabilistic_sharpe_by_hand():
    sr, skew, kurt = _moments(RETURNS)
    n = len(RETURNS)
    expected = PHI(sr * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))
    assert probabilistic_sharpe(RETURNS) == pytest.approx(expected, rel=1e-12)
    # against an annualised benchmark of 1 with 12 periods a year: per-period benchmark 1/sqrt(12)
    b = 1 / math.sqrt(12)
    expected_b = PHI((sr - b) * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))
    assert probabilistic_sharpe(RETURNS, 1.0, periods_per_year=12) == pytest.approx(expected_b, rel=1e-12)
    assert probabilistic_sharpe(np.zeros(10)) is None


def test_deflated_sharpe_paper_example():
    # Bailey & Lopez de Prado (2014), numerical example: 100 trials whose annualised Sharpe ratios have
    # variance 0.5, 1250 daily returns (250 a year), annualised Sharpe 2.5, skewness -3, kurtosis 10.
    variance = 0.5 / 250
    z = (1 - GAMMA) * PHI_INV(1 - 1 / 100) + GAMMA * PHI_INV(1 - 1 / (100 * math.e))
    assert expected_max_sharpe(100, variance) == pytest.approx(math.sqrt(variance) * z, rel=1e-12)
    assert expected_max_sharpe(100, variance) == pytest.approx(0.1132, abs=5e-5)  # the paper's SR0
    dsr = psr_from_moments(2.5 / math.sqrt(250), 1250, -3.0, 10.0, expected_max_sharpe(100, variance))
    assert dsr == pytest.approx(0.9004, abs=5e-4)  # the paper's DSR
    assert expected_max_sharpe(1, variance) == 0.0  # one trial: nothing to deflate


def test_deflated_sharpe_on_returns_by_hand():
    sr, skew, kurt = _moments(RETURNS)
    n = len(RETURNS)

    def dsr(threshold: float) -> float:
        return PHI((sr - threshold) * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))

    # default trial variance: the sampling variance of a zero-Sharpe estimate, 1/(n-1) per period
    z10 = (1 - GAMMA) * PHI_INV(1 - 1 / 10) + GAMMA * PHI_INV(1 - 1 / (10 * math.e))
    got = deflated_sharpe(RETURNS, 10, periods_per_year=12)
    threshold = math.sqrt(1 / (n - 1)) * z10
    assert got.probability == pytest.approx(dsr(threshold), rel=1e-9)
    assert got.threshold == pytest.approx(threshold * math.sqrt(12), rel=1e-12)
    assert got.sharpe == pytest.approx(sr * math.sqrt(12), rel=1e-12)
    assert got.n_trials == 10
    # a given annualised trial variance of 2.4 with 12 periods a year: 0.2 per period
    given = deflated_sharpe(RETURNS, 10, periods_per_year=12, trials_sharpe_variance=2.4)
    assert given.probability == pytest.approx(dsr(math.sqrt(0.2) * z10), rel=1e-9)
    # one trial = PSR against 0; more trials can only lower the probability
    assert deflated_sharpe(RETURNS, 1).probability == pytest.approx(probabilistic_sharpe(RETURNS), rel=1e-12)
    probabilities = [deflated_sharpe(RETURNS, k).probability for k in (1, 2, 10, 100, 1000)]
    assert probabilities == sorted(probabilities, reverse=True)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, float("nan")])
def test_deflated_sharpe_refuses_bad_trial_counts(bad):
    with pytest.raises(ValueError, match="n_trials"):
        deflated_sharpe(RETURNS, bad)


def test_deflated_sharpe_refuses_bad_variance_and_handles_flat_returns():
    with pytest.raises(ValueError, match="trials_sharpe_variance"):
        deflated_sharpe(RETURNS, 5, trials_sharpe_variance=-1.0)
    flat = deflated_sharpe(np.zeros(20), 5)
    assert flat.probability is None and flat.sharpe is None and flat.n_trials == 5
