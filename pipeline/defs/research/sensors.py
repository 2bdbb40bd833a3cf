"""`refresh_after_candles`: refresh research once after new candles land (Dagster public API only).

It watches `candles` materialisations (`DagsterInstance.fetch_materializations`). For each ingestion
run that has finished it launches `refresh_research` once (run key = the ingestion run id). Nothing is
launched:
- while a refresh or a candle run is queued or running (`get_run_records`): the cursor stays put, so a
  burst of ingestion runs (a UI backfill) leads to one refresh;
- from a failed ingestion run, nor while the latest candle run's ingestion or blocking checks failed:
  every ingestion and every check evaluation records its outcome as an observation of `candles`
  (`pipeline/defs/market_data/outcome.py`), and the tick quotes the newest one (which check, why), so
  bad data never reaches rankings;
- when rankings were already materialised after those candles (a full-graph run, the demo).
Every skip says why in the tick.
"""

from __future__ import annotations

import dagster as dg

from pipeline.defs.market_data.jobs import INGEST_JOB
from pipeline.defs.market_data.outcome import INGESTION, latest_outcome
from pipeline.defs.research.jobs import REFRESH_JOB, refresh_job

CANDLES = dg.AssetKey("candles")
RANKINGS = dg.AssetKey("rankings")
BATCH = 1000
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _ingests(run: dg.DagsterRun) -> bool:
    return run.job_name == INGEST_JOB or CANDLES in (run.asset_selection or ())


def _busy(instance: dg.DagsterInstance) -> str | None:
    """Why a refresh should wait: a refresh already queued/running, or candles still being ingested."""
    for rec in instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS), limit=100):
        run = rec.dagster_run
        if run.job_name == REFRESH_JOB:
            return f"refresh run {run.run_id[:8]} is {run.status.value}"
        if _ingests(run):
            return f"candle run {run.run_id[:8]} is {run.status.value}"
    return None


def _blocked(instance: dg.DagsterInstance) -> str | None:
    """Why research must not refresh now: the latest candle run's ingestion or blocking checks failed."""
    latest = latest_outcome(instance)
    if latest is None or latest[1].get("ok"):
        return None
    run_id, outcome = latest
    run = instance.get_run_by_id(run_id)
    status = run.status.value if run is not None else "FAILURE"
    if outcome.get("stage") == INGESTION:
        return (f"the latest ingestion run {run_id[:8]} ended in {status}: {outcome.get('why')}; fix the cause "
                "and ingest again")  # fmt: skip
    if outcome.get("ingested_in_run"):
        return (f"the latest ingestion run {run_id[:8]} ended in {status} (blocking check "
                f"'{outcome.get('check')}' failed: {outcome.get('why')}); repair the data and ingest again")  # fmt: skip
    return (f"the latest '{outcome.get('check')}' check on candles (run {run_id[:8]}) failed: {outcome.get('why')}; "
            "repair the data, then ingest or re-execute the checks")  # fmt: skip


def build_refresh_sensor() -> dg.SensorDefinition:
    """The candles -> research refresh sensor."""

    @dg.sensor(
        name="refresh_after_candles",
        job=refresh_job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="After a successful candle ingestion run, refresh features, rankings and backtests once.",
    )
    def refresh_after_candles(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        instance = context.instance
        after = int(context.cursor) if context.cursor else None
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=CANDLES, after_storage_id=after), limit=BATCH, ascending=True
        )
        if not result.records:
            return dg.SkipReason("no new candle materialisations")
        busy = _busy(instance)
        if busy:  # one refresh per burst of ingestion (backfills, overlapping ticks); cursor stays put
            return dg.SkipReason(f"waiting: {busy}")
        blocked = _blocked(instance)
        if blocked:  # bad or missing data must not reach rankings/backtests; cursor stays put
            context.log.warning(f"not refreshing research: {blocked}")
            return dg.SkipReason(f"blocked: {blocked}")
        runs: dict[str, tuple[int, float]] = {}
        for rec in result.records:
            runs[rec.run_id] = (rec.storage_id, rec.timestamp)  # ascending: last one wins
        cursor = after or 0
        launch: tuple[str, float] | None = None
        notes = []
        for run_id, (storage_id, ts) in runs.items():
            run = instance.get_run_by_id(run_id)
            if run is not None and not run.is_finished:
                notes.append(f"waiting for ingestion run {run_id[:8]} to finish")
                break
            cursor = storage_id
            if run is not None and run.status == dg.DagsterRunStatus.SUCCESS:
                launch = (run_id, ts)
            else:
                status = run.status.value if run is not None else "deleted"
                notes.append(f"ingestion run {run_id[:8]} {status}: not refreshing from it (see its checks)")
        if launch is not None:
            latest = instance.get_latest_materialization_event(RANKINGS)
            if latest is not None and latest.timestamp > launch[1]:
                notes.append(f"rankings already refreshed after run {launch[0][:8]}")
                launch = None
        for note in notes:
            context.log.info(note)
        if launch is None:
            return dg.SensorResult(skip_reason=dg.SkipReason("; ".join(notes) or "nothing to do"), cursor=str(cursor))
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"refresh-after-{launch[0]}", tags={"crypto4h/after_run": launch[0]})],
            cursor=str(cursor),
        )

    return refresh_after_candles
