"""Research jobs: the refresh (features, rankings, scheduled backtests, performance, comparison)."""

from __future__ import annotations

import dagster as dg

REFRESH_JOB = "refresh_research"

refresh_job = dg.define_asset_job(
    REFRESH_JOB,
    selection=dg.AssetSelection.groups("research", "backtests", "registry") - dg.AssetSelection.assets("backtest_runs"),
    # one op holds the whole refresh; in-process keeps the run light (no step subprocess)
    executor_def=dg.in_process_executor,
    description="Recompute features and rankings once, re-run every active strategy's backtest (reusing an "
    "identical stored run), then performance, the comparison and the strategy registry page.",
    tags={"crypto4h/kind": "refresh"},
)
