"""Research jobs: the refresh (features, rankings, scheduled backtests, performance, comparison)."""

from __future__ import annotations

import dagster as dg

from pipeline.scaleout.executor import RESEARCH_QUEUE, executor_for, run_policy_tags

REFRESH_JOB = "refresh_research"

refresh_job = dg.define_asset_job(
    REFRESH_JOB,
    selection=dg.AssetSelection.groups("research", "backtests", "registry") - dg.AssetSelection.assets("backtest_runs"),
    # one op holds the whole refresh (features computed once): in-process keeps the run light (no step
    # subprocess); Celery profile: that step runs on a `research` worker
    executor_def=executor_for(RESEARCH_QUEUE, default=dg.in_process_executor),
    description="Recompute features and rankings once, re-run every active strategy's backtest (reusing an "
    "identical stored run), then performance, the comparison and the strategy registry page.",
    tags={"crypto4h/kind": "refresh", **run_policy_tags()},
)
