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

It never waits on a dead run. A run whose process was killed is marked FAILURE by Dagster (the code
server sees its worker exit; run monitoring's `max_runtime_seconds` fails runs orphaned with their code
server, see docs/reliability.md). Until then, a run that has been STARTED for more than
`$CRYPTO4H_STALE_RUN_SECONDS` (default 30 min; the hourly ingestion takes about a minute), or stuck in
NOT_STARTED/STARTING for more than `STARTING_LIMIT_SECONDS`, is presumed dead: the tick says so and goes
on without it (queued runs are alive by definition: they wait for a slot). Public API only: run records'
start/create times, and a run's newest candle materialisation as its sign of life (a long backfill that
has just written is not presumed dead).
"""

from __future__ import annotations

import os
import time

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


STALE_ENV = "CRYPTO4H_STALE_RUN_SECONDS"
DEFAULT_STALE_SECONDS = 1800
#: longer than run monitoring's start timeout (180 s): a run still not started by then is dead
STARTING_LIMIT_SECONDS = 600


def _ingests(run: dg.DagsterRun) -> bool:
    return run.job_name == INGEST_JOB or CANDLES in (run.asset_selection or ())


def stale_after_seconds() -> float:
    """How long a STARTED run may go on before the sensor presumes it dead (`$CRYPTO4H_STALE_RUN_SECONDS`)."""
    raw = os.environ.get(STALE_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_STALE_SECONDS
    except ValueError:
        return DEFAULT_STALE_SECONDS
    return value if value > 0 else DEFAULT_STALE_SECONDS


def presumed_dead(record: dg.RunRecord, now: float, last_seen: float | None = None) -> str | None:
    """Why an unfinished run is presumed dead (its process was killed and nobody marked it), or None.

    QUEUED runs wait for a slot and are never dead. STARTED ones are dead once started (or `last_seen`,
    e.g. their newest materialisation: a sign of life) longer ago than `stale_after_seconds()`;
    NOT_STARTED / STARTING ones after `STARTING_LIMIT_SECONDS`.
    """
    run = record.dagster_run
    if run.status == dg.DagsterRunStatus.STARTED:
        since = max(record.start_time or record.create_timestamp.timestamp(), last_seen or 0.0)
        limit = stale_after_seconds()
    elif run.status in (dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING):
        since, limit = record.create_timestamp.timestamp(), STARTING_LIMIT_SECONDS
    else:
        return None
    age = now - since
    if age <= limit:
        return None
    return (f"{run.status.value} for {_duration(age)} (limit {_duration(limit)}): presumed dead; terminate it in "
            "the UI (or let run monitoring fail it)")  # fmt: skip


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _busy(instance: dg.DagsterInstance, now: float | None = None, dead: list[str] | None = None) -> str | None:
    """Why a refresh should wait: a live refresh queued/running, or candles still being ingested.

    Runs presumed dead (see `presumed_dead`) are not waited on; `dead` collects a note for each.
    """
    now = time.time() if now is None else now
    for rec in instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS), limit=100):
        run = rec.dagster_run
        kind = "refresh" if run.job_name == REFRESH_JOB else "candle" if _ingests(run) else None
        if kind is None:
            continue
        why = presumed_dead(rec, now)
        if why:
            if dead is not None:
                dead.append(f"not waiting for {kind} run {run.run_id[:8]}: {why}")
            continue
        return f"{kind} run {run.run_id[:8]} is {run.status.value}"
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
        dead: list[str] = []
        busy = _busy(instance, dead=dead)
        for note in dead:
            context.log.warning(note)
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
        notes = list(dead)
        now = time.time()
        for run_id, (storage_id, ts) in runs.items():
            record = instance.get_run_record_by_id(run_id)
            run = record.dagster_run if record is not None else None
            gone = presumed_dead(record, now, last_seen=ts) if record is not None else None
            if run is not None and not run.is_finished and not gone:
                notes.append(f"waiting for ingestion run {run_id[:8]} to finish")
                break
            cursor = storage_id
            if run is not None and run.status == dg.DagsterRunStatus.SUCCESS:
                launch = (run_id, ts)
            elif gone:
                context.log.warning(f"ingestion run {run_id[:8]} is {gone}")
                notes.append(f"ingestion run {run_id[:8]} {gone}: not refreshing from it")
            else:
                status = run.status.value if run is not None else "deleted"
                notes.append(f"ingestion run {run_id[:8]} {status}: not refreshing from it (see its checks)")
        if launch is not None:
            latest = instance.get_latest_materialization_event(RANKINGS)
            if latest is not None and latest.timestamp > launch[1]:
                notes.append(f"rankings already refreshed after run {launch[0][:8]}")
                launch = None
        for note in notes[len(dead):]:  # the dead-run notes were logged as warnings above
            context.log.info(note)
        if launch is None:
            return dg.SensorResult(skip_reason=dg.SkipReason("; ".join(notes) or "nothing to do"), cursor=str(cursor))
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"refresh-after-{launch[0]}", tags={"crypto4h/after_run": launch[0]})],
            cursor=str(cursor),
        )

    return refresh_after_candles
