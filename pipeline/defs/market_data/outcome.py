"""The outcome of the latest candle run, recorded as an observation of `candles`.

Every ingestion (success or failure) and every evaluation of the candle checks leaves one observation
with an `outcome` entry. The refresh sensor reads the newest one through the public
`DagsterInstance.fetch_observations`: research refreshes only when the latest ingestion succeeded and
the latest blocking checks passed, and a blocked tick can quote which check failed and why.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

OUTCOME_KEY = "outcome"
INGESTION = "ingestion"
CHECKS = "checks"


def outcome_observation(
    stage: str, *, ok: bool, why: str, check: str | None = None, ingested: bool = False
) -> dg.AssetObservation:
    """An observation of `candles` whose `outcome` entry says what the run's stage did."""
    verb = "succeeded" if ok else "failed"
    payload = {"stage": stage, "ok": ok, "why": why, "check": check, "ingested_in_run": ingested}
    return dg.AssetObservation(
        asset_key="candles",
        description=f"{stage} {verb}" + (f" ({check})" if check else "") + f": {why}",
        metadata={OUTCOME_KEY: dg.MetadataValue.json(payload)},
    )


def latest_outcome(instance: dg.DagsterInstance, scan: int = 50) -> tuple[str, dict[str, Any]] | None:
    """(run id, outcome payload) of the newest candle observation that carries one."""
    records = instance.fetch_observations(dg.AssetRecordsFilter(asset_key=dg.AssetKey("candles")), limit=scan).records
    for rec in records:  # newest first
        observation = rec.asset_observation
        entry = observation.metadata.get(OUTCOME_KEY) if observation is not None else None
        if entry is not None and isinstance(entry.value, dict):
            return rec.run_id, dict(entry.value)
    return None
