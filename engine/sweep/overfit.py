"""Overfitting statistics of a sweep: PBO by combinatorially symmetric cross-validation, Hansen's SPA
test (arch), and the deflated Sharpe ratio of the chosen configuration (engine.stats).

All three answer "is the best configuration better than what trying this many configurations on noise
would give?" from the per-window returns of every configuration; docs/sweeps.md says how to read them.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from arch.bootstrap import SPA, optimal_block_length
from scipy import stats

from engine.stats import deflated_sharpe

#: CSCV splits the windows into this many contiguous blocks (Bailey et al. use 16: C(16, 8) = 12,870 splits)
PBO_BLOCKS = 16
PBO_METRICS = ("mean", "sharpe")
#: days per year for the daily P&L the deflated Sharpe reads (crypto trades every day)
DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class PBOResult:
    """Probability of backtest overfitting (Bailey, Borwein, Lopez de Prado & Zhu, 2017).

    For each of the `n_splits` ways to pick half of the `blocks` as in-sample (IS), the configuration
    with the best IS `metric` is located in the out-of-sample (OOS) ranking: relative rank
    `w = rank / (N + 1)` (ties share their average rank), logit `log(w / (1 - w))`. `pbo` is the share
    of splits with logit <= 0, i.e. where the IS winner did no better than the OOS median.
    """

    pbo: float | None
    logits: np.ndarray
    chosen: np.ndarray  # config id picked in-sample, per split
    is_performance: np.ndarray  # its IS metric, per split
    oos_performance: np.ndarray  # its OOS metric, per split
    blocks: int
    rows_used: int
    n_configs: int
    metric: str

    @property
    def n_splits(self) -> int:
        return len(self.logits)

    @property
    def prob_oos_loss(self) -> float | None:
        """Share of splits where the IS winner's OOS metric is below 0 (it lost money out of sample)."""
        return float((self.oos_performance < 0).mean()) if len(self.logits) else None

    @property
    def degradation_slope(self) -> float | None:
        """Slope of the OOS metric on the IS metric of the winners (<= 0: IS success does not carry over)."""
        if len(self.logits) < 3 or np.ptp(self.is_performance) == 0 or not np.isfinite(self.is_performance).all():
            return None
        return float(stats.linregress(self.is_performance, self.oos_performance).slope)


def _performance(total: np.ndarray, squares: np.ndarray, n: float, metric: str) -> np.ndarray:
    """Mean, or Sharpe = mean / sample std (0 for a flat zero series, +-inf for a flat nonzero one)."""
    mean = total / n
    if metric == "mean":
        return mean
    var = np.maximum((squares - n * mean**2) / (n - 1), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = mean / np.sqrt(var)
    return np.where(var > 0, sharpe, np.where(mean == 0, 0.0, np.copysign(np.inf, mean)))


def pbo_cscv(returns: pd.DataFrame, blocks: int = PBO_BLOCKS, metric: str = "sharpe") -> PBOResult:
    """CSCV over the rows (time) of `returns` (one column per configuration, labelled by its id).

    The earliest `T mod blocks` rows are dropped so that blocks have equal length (as in the paper).
    Vectorised: per-block sums and squares, then every split's IS and OOS metrics by one matrix product.
    """
    if metric not in PBO_METRICS:
        raise ValueError(f"PBO metric must be one of {PBO_METRICS} (got {metric!r})")
    if isinstance(blocks, bool) or int(blocks) != blocks or blocks < 2 or blocks % 2:
        raise ValueError(f"PBO blocks must be an even integer >= 2 (got {blocks!r})")
    m = returns.to_numpy(np.float64)
    t, n = m.shape
    size = t // blocks
    empty = np.array([])
    if n < 2 or size < 1 or (metric == "sharpe" and size * blocks // 2 < 2):
        return PBOResult(None, empty, empty, empty, empty, blocks, 0, n, metric)
    used = m[t - size * blocks:].reshape(blocks, size, n)
    sums, squares = used.sum(axis=1), (used**2).sum(axis=1)
    half = size * blocks / 2
    ids = returns.columns.to_numpy()
    parts: list[tuple[np.ndarray, ...]] = []
    splits = list(itertools.combinations(range(blocks), blocks // 2))
    for start in range(0, len(splits), 4096):  # bounded memory for large sweeps
        ind = np.zeros((len(splits[start:start + 4096]), blocks))
        for row, chosen in enumerate(splits[start:start + 4096]):
            ind[row, list(chosen)] = 1.0
        is_perf = _performance(ind @ sums, ind @ squares, half, metric)
        oos_perf = _performance((1 - ind) @ sums, (1 - ind) @ squares, half, metric)
        best = np.argmax(is_perf, axis=1)  # ties: the lowest config id
        rows = np.arange(len(best))
        oos_best = oos_perf[rows, best]
        below = (oos_perf < oos_best[:, None]).sum(axis=1)
        ties = (oos_perf == oos_best[:, None]).sum(axis=1) - 1
        w = (1 + below + 0.5 * ties) / (n + 1)
        parts.append((np.log(w / (1 - w)), ids[best], is_perf[rows, best], oos_best))
    logits, chosen, is_best, oos_best = (np.concatenate(p) for p in zip(*parts, strict=True))
    return PBOResult(float((logits <= 0).mean()), logits, chosen, is_best, oos_best, blocks,
                     size * blocks, n, metric)


@dataclass(frozen=True)
class SPAResult:
    """Hansen's test for superior predictive ability against the equal-weight benchmark.

    Null: no configuration beats the benchmark's mean per-window return. `p_value` is Hansen's
    consistent p-value; `lower` and `upper` bound it. Stationary bootstrap with mean block `block`
    windows, `reps` replications, studentised, `seed` from the run's config.
    """

    p_value: float | None
    p_lower: float | None
    p_upper: float | None
    block: int
    reps: int
    n_models: int


def spa_test(
    returns: pd.DataFrame, benchmark: np.ndarray, *, min_block: int, reps: int, seed: int
) -> SPAResult:
    """SPA of every configuration's per-window returns against the benchmark's (arch.bootstrap.SPA).

    Identical columns are tested once and columns equal to the benchmark are dropped (their loss
    differential has no variance to studentise by; neither changes the maximum statistic). The mean
    block length is arch's `optimal_block_length` (stationary) of the average excess return, at least
    `min_block` windows (the overlap of consecutive windows).
    """
    bench = np.asarray(benchmark, dtype=np.float64)
    models = returns.T.drop_duplicates().T.to_numpy(np.float64)
    models = models[:, ~np.all(models == bench[:, None], axis=0)]
    if models.shape[1] == 0 or len(bench) < 3 or reps < 1:
        return SPAResult(None, None, None, int(min_block), int(reps), models.shape[1])
    excess = (models - bench[:, None]).mean(axis=1)
    auto = float(optimal_block_length(excess)["stationary"].iloc[0]) if np.ptp(excess) > 0 else 1.0
    block = int(max(min_block, math.ceil(auto) if math.isfinite(auto) else 1))
    spa = SPA(-bench, -models, block_size=min(block, len(bench)), reps=int(reps), bootstrap="stationary",
              studentize=True, nested=False, seed=np.random.default_rng(seed))
    spa.compute()
    p = spa.pvalues
    return SPAResult(float(p["consistent"]), float(p["lower"]), float(p["upper"]), block, int(reps),
                     models.shape[1])


def daily_pnl(returns: pd.DataFrame, window_hours: float, sleeve_factor: float) -> pd.DataFrame:
    """Each configuration's P&L per UTC day of the non-compounded sleeve curve (a window counts on the
    day it closes). Overlapping 4h windows are strongly autocorrelated; daily sums nearly are not, which
    is what the deflated Sharpe's i.i.d. formula needs."""
    closes = returns.index + pd.Timedelta(hours=float(window_hours)) - pd.Timedelta(milliseconds=1)
    daily = (returns * float(sleeve_factor)).groupby(closes.floor("D")).sum()
    daily.index.name = "day"
    return daily


@dataclass(frozen=True)
class DeflatedSharpeResult:
    """The deflated Sharpe ratio of one configuration (`engine.stats.deflated_sharpe`) on its daily P&L.

    `probability` that its true Sharpe ratio exceeds `threshold`, the annualised Sharpe ratio the best of
    `n_trials` skill-less configurations would reach by luck. `trials_sharpe_variance` is the variance of
    the trials' Sharpe ratios used for that bar: `None` means the sampling variance of a zero Sharpe
    estimate over `n_days` returns (`variance="sampling"`, the default); `across_variance` is the variance
    actually observed across the sweep's configurations, for reference.
    """

    config_id: Any
    probability: float | None
    threshold: float | None
    sharpe: float | None
    n_trials: int
    trials_sharpe_variance: float | None
    across_variance: float | None
    n_days: int
    periods_per_year: float = DAYS_PER_YEAR


def _field(out: Any, name: str, index: int) -> Any:
    if isinstance(out, dict):
        return out.get(name)
    return getattr(out, name) if hasattr(out, name) else out[index]


def sharpe_across(daily: pd.DataFrame) -> np.ndarray:
    """Annualised Sharpe ratio of each configuration's daily P&L (configurations without variance left out)."""
    x = daily.to_numpy(np.float64)
    if len(x) < 2:
        return np.array([])
    sd = x.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = x.mean(axis=0) / sd * math.sqrt(DAYS_PER_YEAR)
    return sharpe[np.isfinite(sharpe) & (sd > 0)]


def deflated_sharpe_of(
    daily: pd.DataFrame, config_id: Any, n_trials: int, variance: str = "sampling"
) -> DeflatedSharpeResult:
    """DSR of `config_id` among `n_trials` (`engine.stats.deflated_sharpe` on daily P&L).

    `variance="sampling"` sets the bar from the Sharpe variance skill-less trials of this length show (the
    null hypothesis itself); `"across"` from the variance observed across the sweep's configurations (Bailey
    & Lopez de Prado's estimate). A grid's configurations are correlated, which shrinks the observed
    variance when nothing has an edge, and differ in skill when something has, which inflates it: the
    sampling variance is the steadier bar (docs/sweeps.md compares both on simulated markets).
    """
    if variance not in ("sampling", "across"):
        raise ValueError(f"variance must be 'sampling' or 'across' (got {variance!r})")
    sharpes = sharpe_across(daily)
    across = float(np.var(sharpes, ddof=1)) if len(sharpes) >= 2 else None
    used = across if variance == "across" else None
    out = deflated_sharpe(daily[config_id].to_numpy(np.float64), int(n_trials), periods_per_year=DAYS_PER_YEAR,
                          trials_sharpe_variance=used)
    return DeflatedSharpeResult(
        config_id=config_id,
        probability=_field(out, "probability", 0),
        threshold=_field(out, "threshold", 1),
        sharpe=_field(out, "sharpe", 2),
        n_trials=int(n_trials),
        trials_sharpe_variance=used,
        across_variance=across,
        n_days=len(daily),
    )
