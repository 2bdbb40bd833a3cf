"""Market-data jobs: candle ingestion (partitioned, with its checks)."""

from __future__ import annotations

import dagster as dg

INGEST_JOB = "ingest_candles"

ingest_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.assets("candles"),
    # one process per run: the steps are sequential anyway, and it keeps the hourly tick light on SQLite
    executor_def=dg.in_process_executor,
    description="Fetch, validate and upsert 5m candles for the partitions of the run, then check them. "
    "For one run over many days and symbols, set the tags dagster/asset_partition_range_start and "
    "dagster/asset_partition_range_end (e.g. 2018-01-10|ETH-BTC and 2018-01-30|NXT-BTC) in the Launchpad.",
    tags={"crypto4h/kind": "ingest"},
)
