"""Honest statistics for overlapping windows (docs/statistics.md explains each one).

Windows of 4h shifted by 2h overlap, so consecutive window returns are autocorrelated: intervals and the
null test come from a studentized circular block bootstrap (arch), never an i.i.d. t-test. Everything is
deterministic for a given seed.
"""

from engine.stats.bootstrap import (
    BlockResamples,
    MeanTest,
    PairedComparison,
    block_bootstrap_ci,
    block_length,
    block_standard_error,
    bootstrap_indices,
    compare_window_returns,
    mean_test,
    percentile_interval,
)
from engine.stats.costs import cost_sensitivity, net_return
from engine.stats.null import excess_over_null, null_baseline, one_sided_p, window_null
from engine.stats.ranking import newey_west_tstat, quantile_spread, rank_ic, rank_ic_series
from engine.stats.sharpe import (
    DeflatedSharpe,
    deflated_sharpe,
    expected_max_sharpe,
    probabilistic_sharpe,
    sharpe_ratio,
)
from engine.stats.summary import RunStatistics, monthly_table, periods_per_year, run_statistics, tail_metrics

__all__ = [
    "DeflatedSharpe",
    "BlockResamples",
    "MeanTest",
    "PairedComparison",
    "RunStatistics",
    "block_bootstrap_ci",
    "block_length",
    "block_standard_error",
    "bootstrap_indices",
    "compare_window_returns",
    "cost_sensitivity",
    "deflated_sharpe",
    "excess_over_null",
    "expected_max_sharpe",
    "mean_test",
    "monthly_table",
    "net_return",
    "newey_west_tstat",
    "null_baseline",
    "one_sided_p",
    "percentile_interval",
    "periods_per_year",
    "probabilistic_sharpe",
    "quantile_spread",
    "rank_ic",
    "rank_ic_series",
    "run_statistics",
    "sharpe_ratio",
    "tail_metrics",
    "window_null",
]
