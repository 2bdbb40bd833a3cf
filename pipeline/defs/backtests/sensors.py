"""`backtest_requests`: launch `adhoc_backtest` (or `parameter_sweep` for `kind: sweep`) once per request
file content.

It reads `*.yaml` / `*.yml` from `$CRYPTO4H_REQUESTS_DIR` (default `data/requests`). Each file content
launches `adhoc_backtest` exactly once: run key = file name + content hash, the cursor remembers what was
seen, and the job skips a request key the store already holds. Invalid specs are not retried until the
file changes; the cursor keeps their content hash and every problem, so every tick's skip reason (and
log) repeats them until the file is fixed or removed. Any error reading or checking one file is
reported against that file; the other files are still launched.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import dagster as dg

from pipeline.defs.backtests.jobs import JOB_NAME, adhoc_backtest, request_run_config
from pipeline.defs.backtests.requests import REQUESTS_ENV, RequestSpecError, parse_request, requests_dir
from pipeline.defs.sweeps.config import SweepRequest
from pipeline.defs.sweeps.jobs import SWEEP_JOB, parameter_sweep, sweep_run_config
from pipeline.universe import Universe

MAX_ERROR_CHARS = 1500  # per invalid request file kept in the cursor


def build_request_sensor(universe: Universe) -> dg.SensorDefinition:
    @dg.sensor(
        name="backtest_requests",
        jobs=[adhoc_backtest, parameter_sweep],
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Launch adhoc_backtest (or parameter_sweep for kind: sweep) once per YAML spec in "
        f"${REQUESTS_ENV} (default data/requests).",
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
            except Exception as exc:  # noqa: BLE001 - one bad file never stops the others
                what = str(exc) if isinstance(exc, RequestSpecError) else f"cannot be checked: {exc!r}"
                error = what[:MAX_ERROR_CHARS]
                seen[path.name] = {"sha": digest, "error": error}
                context.log.warning(f"invalid backtest request {path}: {error}")
                problems.append(f"{path.name}: {error}")
                continue
            seen[path.name] = digest
            sweep = isinstance(req, SweepRequest)
            runs.append(
                dg.RunRequest(
                    run_key=key,
                    job_name=SWEEP_JOB if sweep else JOB_NAME,
                    run_config=sweep_run_config(req) if sweep else request_run_config(req),
                    tags={"crypto4h/request": path.name, "crypto4h/request_key": key},
                )
            )
        cursor = json.dumps(seen, sort_keys=True)
        if runs:
            return dg.SensorResult(run_requests=runs, cursor=cursor)
        reason = "; ".join(f"invalid {p}" for p in problems) if problems else "no new backtest requests"
        return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=cursor)

    return backtest_requests
