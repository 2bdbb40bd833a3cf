"""Circular block bootstrap (arch) for per-window series: resample indices, intervals, the mean test.

Windows of 4h shifted by 2h overlap, so consecutive window returns are correlated (lag-1 about 0.5 when
picks persist); i.i.d. resampling would understate every standard error. All statistics of a run share
one (samples x n) index matrix drawn by `arch.bootstrap.CircularBlockBootstrap`, seeded, so results are
deterministic and cost one gather per statistic instead of a Python loop per resample.

The mean (and the null test) use the symmetric studentized block bootstrap (percentile-t, Goetze & Kuensch
1996): a block bootstrap's variance weighs the lag-h autocovariance by `1 - h/block`, so short blocks
understate the variance and long blocks make it noisy; studentizing each resample by its own block-sum
standard error corrects for the noise. Why the block floor is `6 x window/shift`: docs/statistics.md.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from arch.bootstrap import CircularBlockBootstrap, optimal_block_length

from engine.reuse import reusable

#: block floor as a multiple of the overlap window/shift (calibrated by simulation, docs/statistics.md)
BLOCK_FLOOR_OVERLAPS = 6
#: shortest series for arch's Politis-White estimate (it reads about sqrt(n) + 5 autocorrelations)
MIN_OPTIMAL_BLOCK_N = 20


def block_length(x: np.ndarray, overlap: int) -> int:
    """Block length: arch's Politis-White optimal circular block length of each column of `x` (the largest),
    at least `6 * overlap` (overlap = window/shift), at most n.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0:
        raise ValueError("block_length(x, overlap) takes the series itself (its autocorrelation sets the block), "
                         "not its length")
    arr = arr.reshape(len(arr), -1)
    n = arr.shape[0]
    if n < 2:
        return max(1, n)
    floor = BLOCK_FLOOR_OVERLAPS * max(1, int(overlap))
    varying = arr[:, np.ptp(arr, axis=0) > 0]
    if varying.shape[1] and n >= MIN_OPTIMAL_BLOCK_N:
        with np.errstate(invalid="ignore", divide="ignore"):  # long runs of zero-return windows
            optimal = optimal_block_length(varying)["circular"].to_numpy()
        optimal = optimal[np.isfinite(optimal)]
        if len(optimal):
            floor = max(floor, math.ceil(float(optimal.max())))
    return int(min(n, max(1, floor)))


@reusable
def bootstrap_indices(n: int, *, block: int, samples: int, seed: int) -> np.ndarray:
    """(samples x n) resample indices of arch's circular block bootstrap; row j is resample j.

    Within a row, positions `[i*block, (i+1)*block)` hold one block (the last may be cut at n).
    """
    bs = CircularBlockBootstrap(int(block), np.zeros(n), seed=np.random.default_rng(seed))
    out = np.empty((samples, n), dtype=np.int64)
    for j in range(samples):
        out[j] = bs.update_indices()
    return out


class BlockResamples:
    """One set of circular-block resamples of n windows, shared by every statistic of a run.

    Sums over a resample are sums of its blocks, and a block's sum is a difference of the series' circular
    cumulative sum: a resampled total costs (samples x blocks) lookups instead of (samples x n) gathers.
    """

    def __init__(self, n: int, *, block: int, samples: int, seed: int) -> None:
        self.n, self.block = n, max(1, min(int(block), n))
        self.indices = bootstrap_indices(n, block=self.block, samples=samples, seed=seed)
        self.starts = np.ascontiguousarray(self.indices[:, :: self.block])  # (samples, blocks): block starts
        k = self.starts.shape[1]
        self.lengths = np.minimum(self.block, n - self.block * np.arange(k))  # the last block may be cut
        self._ends = self.starts + self.lengths

    @property
    def samples(self) -> int:
        return len(self.indices)

    def block_sums(self, x: np.ndarray) -> np.ndarray:
        """(samples x blocks) sums of `x` over each resampled block."""
        x = np.asarray(x, dtype=np.float64)
        c = np.concatenate(([0.0], np.cumsum(np.concatenate((x, x[: self.block - 1])))))
        return c[self._ends] - c[self.starts]

    def totals(self, x: np.ndarray) -> np.ndarray:
        """Sum of `x` over each resample (samples,)."""
        return self.block_sums(x).sum(axis=1)

    def medians(self, x: np.ndarray) -> np.ndarray:
        """The median of each resample: `np.median(self.gather(x), axis=1)`, bit for bit, several times faster.

        Each value is replaced by its rank in `x` (ties broken by position), so every resample sorts small
        integers instead of floats; the middle ranks map back to the same middle values.
        """
        x = np.asarray(x, dtype=np.float64)
        n = len(x)
        if n == 0 or not np.isfinite(x).all():
            return np.median(self.gather(x), axis=1)
        order = np.argsort(x, kind="stable")
        rank = np.empty(n, dtype=np.int16 if n < 2**15 else np.int32)
        rank[order] = np.arange(n)
        ranks = rank[self.indices]
        ranks.sort(axis=1)
        values = x[order]
        k = n // 2
        return values[ranks[:, k]] if n % 2 else (values[ranks[:, k - 1]] + values[ranks[:, k]]) / 2

    def gather(self, x: np.ndarray) -> np.ndarray:
        """The resampled series themselves (samples x n), for order statistics such as the median."""
        return np.asarray(x, dtype=np.float64)[self.indices]


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    """Equal-tailed percentile interval of bootstrap replicates (NaN replicates, undefined ones, ignored)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return None, None
    alpha = (1 - confidence) / 2
    low, high = np.quantile(v, [alpha, 1 - alpha])
    return (float(low) if np.isfinite(low) else None), (float(high) if np.isfinite(high) else None)


def block_standard_error(x: np.ndarray, block: int) -> float:
    """Standard error of the mean as the circular block bootstrap sees it (its exact bootstrap std).

    The mean of the squared centred circular block sums over all n starting points, over n*block: a
    Bartlett-type long-run variance with bandwidth `block`.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    block = max(1, min(int(block), n))
    dev = x - x.mean()
    c = np.concatenate(([0.0], np.cumsum(np.concatenate((dev, dev[: block - 1])))))
    sums = c[block: block + n] - c[:n]
    return float(math.sqrt(max(float((sums**2).mean()), 0.0) / (n * block)))


class MeanTest(NamedTuple):
    """Studentized block-bootstrap inference on the mean of a series."""

    mean: float
    std_error: float
    ci_low: float | None
    ci_high: float | None
    p_greater: float | None  #: one-sided p-value of H0 mean <= 0 against mean > 0
    p_two_sided: float | None


def mean_test(x: np.ndarray, resamples: BlockResamples, confidence: float) -> MeanTest:
    """Symmetric percentile-t interval of the mean and bootstrap p-values of mean = 0.

    Each resample is studentized by its own block-sum standard error (blocks are the resampling units),
    the sample by `block_standard_error`. The interval is `mean +/- q * se` with `q` the `confidence`
    quantile of |t*| (symmetric percentile-t: Hall 1988, more accurate coverage than equal tails); the
    two-sided p-value is the share of |t*| at least |t|, the one-sided one half of it on the side of t.
    """
    x = np.asarray(x, dtype=np.float64)
    mean = float(x.mean()) if len(x) else math.nan
    se = block_standard_error(x, resamples.block) if len(x) else math.nan
    if len(x) < 2 or not se > 1e-15 * max(1.0, float(np.abs(x).max())) or resamples.samples == 0:
        return MeanTest(mean, se, None, None, None, None)
    sums = resamples.block_sums(x)
    means = sums.sum(axis=1) / resamples.n
    se_star = np.sqrt(((sums - resamples.lengths * means[:, None]) ** 2).sum(axis=1)) / resamples.n
    ok = se_star > 0
    abs_t = np.abs(means[ok] - mean) / se_star[ok]
    if len(abs_t) == 0:
        return MeanTest(mean, se, None, None, None, None)
    q = float(np.quantile(abs_t, confidence))
    t_obs = mean / se
    p_two = min(1.0, (1 + int(np.sum(abs_t >= abs(t_obs)))) / (len(abs_t) + 1))
    p_greater = p_two / 2 if t_obs > 0 else 1 - p_two / 2
    return MeanTest(mean, se, mean - q * se, mean + q * se, p_greater, p_two)


def block_bootstrap_ci(
    x: np.ndarray, *, samples: int, block: int, confidence: float, seed: int
) -> tuple[float | None, float | None]:
    """Studentized circular-block-bootstrap confidence interval of the mean of `x`."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2 or samples <= 0:
        return None, None
    test = mean_test(x, BlockResamples(len(x), block=block, samples=samples, seed=seed), confidence)
    return test.ci_low, test.ci_high


class PairedComparison(NamedTuple):
    """Mean of `a - b` over aligned windows, its studentized block-bootstrap interval and p-values."""

    mean_difference: float | None
    ci_low: float | None
    ci_high: float | None
    p_value_greater: float | None  #: H0 mean(a - b) <= 0 against a better than b
    p_value_two_sided: float | None  #: H0 mean(a - b) = 0
    block: int
    n_windows: int


def compare_window_returns(
    a, b, *, block: int | None = None, overlap: int = 2, samples: int = 1000, confidence: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Is strategy `a` better than `b` on the same decision times, or is the difference luck?

    `a`, `b`: per-window returns on the same decision times (arrays of equal length, or Series aligned on
    their index; windows missing in either are dropped). Pairing removes the market moves both share, so
    the difference is far more precise than comparing two separate intervals. `block=None` chooses it as
    for a run (`block_length` of the difference, floor `6 * overlap`, overlap = window/shift).
    """
    if hasattr(a, "index") and hasattr(b, "index"):
        a, b = a.align(b, join="inner")
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"compare_window_returns: a and b must be aligned 1-d series (shapes {a.shape}, {b.shape})")
    diff = (a - b)[np.isfinite(a) & np.isfinite(b)]
    n = len(diff)
    block = block_length(diff, overlap) if block is None else max(1, min(int(block), max(n, 1)))
    if n == 0:
        return PairedComparison(None, None, None, None, None, block, 0)
    if n < 2 or samples <= 0:
        return PairedComparison(float(diff.mean()), None, None, None, None, block, n)
    test = mean_test(diff, BlockResamples(n, block=block, samples=samples, seed=seed), confidence)
    return PairedComparison(test.mean, test.ci_low, test.ci_high, test.p_greater, test.p_two_sided, block, n)
