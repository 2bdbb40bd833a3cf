"""The code location: every asset, check, job, schedule, sensor and resource, assembled in one place.

The universe file (env `CRYPTO4H_UNIVERSE`, default `config/universe.yaml`) is read once here because
its symbols are the static partition keys of `candles`; the resources are pinned to the same file.
`build_defs(universe)` lets tests and the demo build the same graph for another universe.
"""

from __future__ import annotations

import warnings

import dagster as dg

from pipeline.adhoc import adhoc_backtest
from pipeline.assets.backtests import backtests, strategy_comparison, strategy_performance
from pipeline.assets.candles import build_candles_asset
from pipeline.assets.research import features_and_rankings
from pipeline.checks import build_candle_checks
from pipeline.jobs import ingest_job, refresh_job
from pipeline.partitions import build_partitions_def
from pipeline.resources import MarketDataResource, StoreResource, UniverseResource
from pipeline.schedules import build_hourly_schedule
from pipeline.sensors import build_refresh_sensor as _refresh_sensor
from pipeline.sensors import build_request_sensor
from pipeline.universe import Universe, load_universe


def build_defs(universe: Universe | None = None, *, db_url: str = "") -> dg.Definitions:
    """The full `Definitions` for `universe` (default: the configured one)."""
    universe = universe or load_universe()
    partitions_def = build_partitions_def(universe)
    with warnings.catch_warnings():
        # single-run backfill policy and sensor internals are flagged beta; the behaviour is pinned by tests
        warnings.simplefilter("ignore", dg.BetaWarning)
        candles = build_candles_asset(universe, partitions_def)
        hourly = build_hourly_schedule(universe)
        requests = build_request_sensor(universe)
        refresh = _refresh_sensor()
    return dg.Definitions(
        assets=[
            candles,
            features_and_rankings,
            backtests,
            strategy_performance,
            strategy_comparison,
        ],
        asset_checks=[build_candle_checks(universe, partitions_def)],
        jobs=[ingest_job, refresh_job, adhoc_backtest],
        schedules=[hourly],
        sensors=[refresh, requests],
        resources={
            "store": StoreResource(db_url=db_url),
            "market_data": MarketDataResource(),
            "universe": UniverseResource(path=str(universe.source_path or "")),
        },
    )


defs = build_defs()
