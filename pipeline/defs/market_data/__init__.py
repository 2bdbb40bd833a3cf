"""Market data: the partitioned `candles` asset, its checks, the hourly ingestion and backfills."""
