"""Market-data jobs: candle ingestion (partitioned, with its checks)."""

from __future__ import annotations

import dagster as dg

from pipeline.scaleout.executor import INGEST_QUEUE, executor_for, run_policy_tags

INGEST_JOB = "ingest_candles"

ingest_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.assets("candles"),
    # embedded default: one process per run (the steps are sequential anyway, and it keeps the hourly tick
    # light on SQLite); Celery profile: each step on an `ingest` worker (pipeline/scaleout/executor.py)
    executor_def=executor_for(INGEST_QUEUE, default=dg.in_process_executor),
    description="Fetch, validate and upsert 5m candles for the partitions of the run, then check them. "
    "For one run over many days and symbols, set the tags dagster/asset_partition_range_start and "
    "dagster/asset_partition_range_end (e.g. 2018-01-10|ETH-BTC and 2018-01-30|NXT-BTC) in the Launchpad.",
    tags={"crypto4h/kind": "ingest", **run_policy_tags()},
)
