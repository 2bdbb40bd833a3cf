"""Jobs: candle ingestion (partitioned, with its checks) and the research refresh.

Both run in one process (`in_process_executor`): their steps are sequential anyway, and one process per
run keeps the hourly tick and SQLite-backed runs light on a small machine.
"""

from __future__ import annotations

import dagster as dg

INGEST_JOB = "ingest_candles"
REFRESH_JOB = "refresh_research"
RESEARCH_ASSETS = ("features", "rankings", "backtests", "strategy_performance", "strategy_comparison")

ingest_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.assets("candles"),
    executor_def=dg.in_process_executor,
    description="Fetch, validate and upsert 5m candles for the partitions of the run, then check them.",
    tags={"crypto4h/kind": "ingest"},
)

refresh_job = dg.define_asset_job(
    REFRESH_JOB,
    selection=dg.AssetSelection.assets(*RESEARCH_ASSETS),
    executor_def=dg.in_process_executor,
    description="Recompute features and rankings, re-run the per-strategy backtests and the comparison.",
    tags={"crypto4h/kind": "refresh"},
)

__all__ = ["INGEST_JOB", "REFRESH_JOB", "RESEARCH_ASSETS", "ingest_job", "refresh_job"]
