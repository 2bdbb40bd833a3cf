"""`configure_strategy`: switch a strategy on or off and set the parameters the scheduled backtests and
rankings use (typed Launchpad config), then refresh the registry page."""

from __future__ import annotations

import dagster as dg

CONFIGURE_JOB = "configure_strategy"

configure_job = dg.define_asset_job(
    CONFIGURE_JOB,
    selection=dg.AssetSelection.assets("strategies"),
    executor_def=dg.in_process_executor,
    description="Launchpad: ops.strategies.config = {strategy, active, params, reset_params}. Parameters are "
    "checked against the engine registry (names, types, ranges) before anything is stored.",
    tags={"crypto4h/kind": "configure"},
)
