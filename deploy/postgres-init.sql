-- Two databases on one server: `dagster` (the Dagster instance: runs, events, schedules) is created by
-- POSTGRES_DB; `crypto4h` holds the candle and results store (pipeline/store, migrated on first use).
CREATE DATABASE crypto4h OWNER crypto4h;
