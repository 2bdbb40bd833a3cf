"""The code location: every asset, check, job, schedule, sensor and resource, assembled in one place.

The areas live under `pipeline/defs/` (market_data, research, backtests, registry, sweeps, paper); each exposes builders or
definitions that this module wires together. The universe file (env `CRYPTO4H_UNIVERSE`, default
`config/universe.yaml`) is read once here because its symbols are the static partition keys of
`candles`; the resources are pinned to the same file. `build_defs(universe)` lets tests and the demo
build the same graph for another universe. The executor profile (`$CRYPTO4H_EXECUTOR`: in-process by
default, `celery` for workers) is also read once, at import: see `pipeline/scaleout/executor.py`.
"""

from __future__ import annotations

import warnings

import dagster as dg

from pipeline.defs.backtests.jobs import adhoc_backtest
from pipeline.defs.backtests.runs import backtest_runs
from pipeline.defs.backtests.sensors import build_request_sensor
from pipeline.defs.market_data.assets import build_candles_asset
from pipeline.defs.market_data.checks import build_candle_checks
from pipeline.defs.market_data.jobs import ingest_job
from pipeline.defs.market_data.partitions import build_partitions_def
from pipeline.defs.market_data.schedules import build_hourly_schedule
from pipeline.defs.paper.assets import paper_performance, paper_trades
from pipeline.defs.paper.checks import paper_candle_revisions, paper_parity
from pipeline.defs.paper.jobs import paper_job
from pipeline.defs.paper.schedules import build_paper_schedule
from pipeline.defs.registry.assets import strategies
from pipeline.defs.registry.jobs import configure_job
from pipeline.defs.research.assets import build_research_refresh
from pipeline.defs.research.jobs import refresh_job
from pipeline.defs.research.sensors import build_refresh_sensor
from pipeline.defs.sweeps.assets import sweep_runs
from pipeline.defs.sweeps.jobs import parameter_sweep
from pipeline.resources import MarketDataResource, StoreResource, UniverseResource
from pipeline.scaleout.executor import RESEARCH_QUEUE, executor_for, io_manager_resources
from pipeline.universe import Universe, load_universe


def registered_strategies() -> list[str]:
    """The engine registry's strategy names: one scheduled backtest asset each."""
    from engine.strategies import list_strategies

    return [info.name for info in list_strategies()]


def build_defs(universe: Universe | None = None, *, db_url: str = "") -> dg.Definitions:
    """The full `Definitions` for `universe` (default: the configured one)."""
    universe = universe or load_universe()
    partitions_def = build_partitions_def(universe)
    with warnings.catch_warnings():
        # the single-run backfill policy is flagged beta; its behaviour is pinned by tests
        warnings.simplefilter("ignore", dg.BetaWarning)
        candles = build_candles_asset(universe, partitions_def)
        hourly = build_hourly_schedule(universe)
        requests = build_request_sensor(universe)
        refresh = build_refresh_sensor()
    return dg.Definitions(
        assets=[candles, build_research_refresh(registered_strategies()), backtest_runs, strategies, paper_trades,
                paper_performance, sweep_runs],
        asset_checks=[build_candle_checks(universe, partitions_def), paper_parity, paper_candle_revisions],
        jobs=[ingest_job, refresh_job, adhoc_backtest, configure_job, paper_job, parameter_sweep],
        schedules=[hourly, build_paper_schedule(universe)],
        sensors=[refresh, requests],
        resources={
            "store": StoreResource(db_url=db_url),
            "market_data": MarketDataResource(),
            "universe": UniverseResource(path=str(universe.source_path or "")),
            **io_manager_resources(),
        },
        # jobs without their own executor (UI materialisations): Dagster's default, or Celery in the
        # Celery profile ($CRYPTO4H_EXECUTOR, see pipeline/scaleout/executor.py)
        executor=executor_for(RESEARCH_QUEUE),
    )


defs = build_defs()
