"""Sensors: refresh research after new candles land, and launch backtests from request files.

1. `refresh_after_candles` watches `candles` materialisations. For each ingestion run that has finished
   it launches `refresh_research` once (run key = the ingestion run id). A failed ingestion run (e.g.
   a blocking check failed) launches nothing: bad data does not flow into rankings. Nothing is launched
   either while the latest ingestion run failed or while the latest evaluation of a blocking candle check
   failed with ERROR severity (also when the checks were executed on their own): the sensor waits with
   its cursor unchanged and says why in the tick. Runs still in progress are waited for (the cursor does
   not pass them), and nothing is launched when rankings were already materialised after those candles
   (e.g. a full-graph run or the demo).
2. `backtest_requests` reads `*.yaml` specs from `$CRYPTO4H_REQUESTS_DIR` (default `data/requests`). Each
   file content launches `adhoc_backtest` exactly once: run key = file name + content hash, the cursor
   remembers what was seen, and the job skips a request key the store already holds. Invalid specs are
   not retried until the file changes; the cursor keeps their content hash and error, so every tick's
   skip reason (and log) repeats them until the file is fixed or removed.
"""


import hashlib
import json
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from pipeline.adhoc import (
    BacktestRequest,
    StrategyName,
    adhoc_backtest,
    build_engine_objects,
    request_run_config,
)
from pipeline.checks import BLOCKING_CHECKS
from pipeline.jobs import INGEST_JOB, REFRESH_JOB, refresh_job
from pipeline.universe import REPO_ROOT, Universe

REQUESTS_ENV = "CRYPTO4H_REQUESTS_DIR"
DEFAULT_REQUESTS_DIR = REPO_ROOT / "data" / "requests"
CANDLES = dg.AssetKey("candles")
RANKINGS = dg.AssetKey("rankings")
BATCH = 1000
MAX_ERROR_CHARS = 500  # per invalid request file kept in the cursor


class RequestSpecError(ValueError):
    """A request file is not a valid backtest request; the message says what to fix."""


def requests_dir() -> Path:
    return Path(os.environ.get(REQUESTS_ENV) or DEFAULT_REQUESTS_DIR).expanduser()


def parse_request(text: str | bytes, request_key: str, universe: Universe) -> BacktestRequest:
    """YAML text -> a validated `BacktestRequest` (engine-checked), or RequestSpecError."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RequestSpecError(f"invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RequestSpecError("a request is a mapping, e.g. 'strategy: macd_rsi_confluence'")
    allowed = set(BacktestRequest.model_fields) - {"request_key"}
    unknown = sorted(set(map(str, data)) - allowed)
    if unknown:
        raise RequestSpecError(f"unknown keys {unknown}; allowed: {sorted(allowed)}")
    clean: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, datetime | date):
            v = v.isoformat()
        if k == "universe" and isinstance(v, str):
            v = [s.strip() for s in v.split(",") if s.strip()]
        clean[str(k)] = v
    if "strategy" in clean and str(clean["strategy"]) not in StrategyName.__members__:
        raise RequestSpecError(
            f"unknown strategy {clean['strategy']!r}; valid strategies: {sorted(StrategyName.__members__)}"
        )
    try:
        req = BacktestRequest(**clean, request_key=request_key)
    except Exception as exc:  # noqa: BLE001 - pydantic/dagster validation errors, reported as text
        raise RequestSpecError(str(exc).replace("\n", " ")) from exc
    try:
        build_engine_objects(req, universe)
    except ValueError as exc:
        raise RequestSpecError(str(exc)) from exc
    return req


def build_request_sensor(universe: Universe) -> dg.SensorDefinition:
    @dg.sensor(
        name="backtest_requests",
        job=adhoc_backtest,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Launch adhoc_backtest once per YAML spec in ${REQUESTS_ENV} (default data/requests).",
    )
    def backtest_requests(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        folder = requests_dir()
        if not folder.is_dir():
            return dg.SkipReason(f"requests folder {folder} does not exist (create it and drop *.yaml specs)")
        # cursor: {file name: content hash} for launched files, {file name: {"sha", "error"}} for invalid ones
        seen: dict[str, Any] = json.loads(context.cursor) if context.cursor else {}
        runs, problems = [], []
        paths = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
        present = {p.name for p in paths}
        for name in [n for n, v in seen.items() if isinstance(v, dict) and n not in present]:
            del seen[name]  # an invalid file was removed: stop reporting it
        for path in paths:
            try:
                content = path.read_bytes()
            except OSError as exc:
                context.log.warning(f"backtest request {path} is unreadable: {exc}")
                problems.append(f"{path.name}: unreadable ({exc})")
                continue
            digest = hashlib.sha256(content).hexdigest()[:16]
            prev = seen.get(path.name)
            if isinstance(prev, dict) and prev.get("sha") == digest:
                problem = f"{path.name}: {prev.get('error', 'invalid')} (unchanged since it was rejected)"
                context.log.info(f"invalid backtest request {problem}")
                problems.append(problem)
                continue
            if prev == digest:
                continue
            key = f"{path.name}:{digest}"
            try:
                req = parse_request(content, key, universe)
            except RequestSpecError as exc:
                error = str(exc)[:MAX_ERROR_CHARS]
                seen[path.name] = {"sha": digest, "error": error}
                context.log.warning(f"invalid backtest request {path}: {error}")
                problems.append(f"{path.name}: {error}")
                continue
            seen[path.name] = digest
            runs.append(
                dg.RunRequest(
                    run_key=key,
                    run_config=request_run_config(req),
                    tags={"crypto4h/request": path.name, "crypto4h/request_key": key},
                )
            )
        cursor = json.dumps(seen, sort_keys=True)
        if runs:
            return dg.SensorResult(run_requests=runs, cursor=cursor)
        reason = "; ".join(f"invalid {p}" for p in problems) if problems else "no new backtest requests"
        return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=cursor)

    return backtest_requests


IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _busy(instance: dg.DagsterInstance) -> str | None:
    """Why a refresh should wait: a refresh already queued/running, or candles still being ingested."""
    for rec in instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS), limit=100):
        run = rec.dagster_run
        if run.job_name == REFRESH_JOB:
            return f"refresh run {run.run_id[:8]} is {run.status.value}"
        if CANDLES in (run.asset_selection or ()) or run.job_name == INGEST_JOB:
            return f"candle run {run.run_id[:8]} is {run.status.value}"
    return None


def _blocked(instance: dg.DagsterInstance) -> str | None:
    """Why research must not refresh now: the latest ingestion failed, or the latest evaluation of a
    blocking candle check failed with ERROR severity (its data is in the store but unusable)."""
    # not re-exported by `dagster` 1.13; the storage API below is what the UI's check history uses
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as Status

    planned = instance.get_latest_planned_materialization_info(CANDLES)
    run = instance.get_run_by_id(planned.run_id) if planned is not None else None
    if run is not None and run.status == dg.DagsterRunStatus.FAILURE:
        return f"the latest ingestion run {run.run_id[:8]} ended in {run.status.value}; fix the cause and ingest again"
    done = {Status.SUCCEEDED, Status.FAILED}
    for name in BLOCKING_CHECKS:
        key = dg.AssetCheckKey(CANDLES, name)
        records = instance.event_log_storage.get_asset_check_execution_history(key, limit=1, status=done)
        if not records or records[0].status != Status.FAILED or records[0].event is None:
            continue
        evaluation = records[0].event.dagster_event.event_specific_data
        if getattr(evaluation, "severity", None) == dg.AssetCheckSeverity.ERROR:
            why = getattr(evaluation, "description", None) or "failed"
            return (f"the latest '{name}' check on candles (run {records[0].run_id[:8]}) failed: {why}; "
                    "repair the data, then ingest or re-execute the checks")  # fmt: skip
    return None


def build_refresh_sensor() -> dg.SensorDefinition:
    """The candles -> research refresh sensor (built in `build_defs`, like the others)."""

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
