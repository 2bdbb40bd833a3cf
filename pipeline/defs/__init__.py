"""Dagster definitions by area: `market_data/` (candles), `research/` (features, rankings, the refresh),
`backtests/` (per-strategy, ad-hoc and request backtests, performance, comparison). Each area uses the
same file roles (`assets.py`, `checks.py`, `jobs.py`, `schedules.py`, `sensors.py`, `config.py`);
`pipeline/definitions.py` assembles them into one `Definitions`."""
