"""Backfill plumbing shared by `python -m pipeline.backfill` and `make demo`: plan partition-range runs
(one per block of symbols adjacent in the universe order) and execute or queue them.

A range over the multi-partitions definition is the rectangle between its two corner keys (dates x
symbols in universe order), so one range run can cover every symbol of many days in one process.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

from pipeline.universe import REPO_ROOT, Universe

#: run tag of backfill runs: the production run queue limits them apart from the hourly ingestion
BACKFILL_TAGS = {"crypto4h/kind": "backfill"}


def resolve_dagster_home() -> Path:
    """`$DAGSTER_HOME` as an absolute path (Dagster refuses relative ones), default `dagster_home/`."""
    raw = os.environ.get("DAGSTER_HOME") or str(REPO_ROOT / "dagster_home")
    home = Path(raw).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def partition_dates(universe: Universe) -> tuple[date, date]:
    """First and last partition date of the universe (today, UTC, for a live universe)."""
    import pandas as pd

    return universe.start, universe.last_date or pd.Timestamp.now(tz="UTC").date()


def plan(universe: Universe, start: date, end: date, symbols: list[str] | None = None, *,
         block_size: int = 0, days_per_run: int = 0) -> list[dict[str, str]]:  # fmt: skip
    """Range tags of the run(s) covering `[start, end]` x `symbols` (default: all): one per adjacent block,
    cut further into blocks of at most `block_size` symbols and spans of at most `days_per_run` days
    (0 = no cut). Separate runs are what the run queue spreads over Celery workers, and they bound
    the memory of one run (a run holds its partitions in memory before its one write).

    Raises ValueError with a message for the user (dates outside the partitions, unknown symbols).
    """
    from datetime import timedelta

    from pipeline.defs.market_data.partitions import range_tags, symbol_blocks

    first, last = partition_dates(universe)
    if end < start:
        raise ValueError(f"--end {end} is before --start {start}")
    if start < first or end > last:
        raise ValueError(f"dates {start}..{end} are outside the partitions of {universe.name!r} ({first}..{last})")
    if block_size < 0 or days_per_run < 0:
        raise ValueError("--block-size and --days-per-run must be positive (0 = no cut)")
    blocks = symbol_blocks(universe, symbols) if symbols else [list(universe.symbols)]
    if block_size:
        blocks = [b[i:i + block_size] for b in blocks for i in range(0, len(b), block_size)]
    spans = [(start, end)]
    if days_per_run:
        step = timedelta(days=days_per_run)
        spans = [(d, min(d + step - timedelta(days=1), end))
                 for d in (start + k * step for k in range((end - start) // step + 1)) if d <= end]  # fmt: skip
    return [range_tags(universe, a, b, block) for a, b in spans for block in blocks]


def run_in_process(defs: Any, instance: Any, tags: dict[str, str], *, log_level: str = "INFO") -> Any:
    """Execute `ingest_candles` for one partition range here; returns the ExecuteInProcessResult."""
    from pipeline.defs.market_data.jobs import INGEST_JOB

    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    return defs.resolve_job_def(INGEST_JOB).execute_in_process(
        instance=instance, tags=tags, run_config=run_config, raise_on_error=False
    )


def run_error(result: Any) -> str:
    """The first step failure's message of a finished run ('' when none)."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            err = event.step_failure_data.error
            while err.cause is not None and "DagsterExecutionStepExecutionError" in (err.cls_name or ""):
                err = err.cause
            message = err.message.strip()
            head, _, rest = message.partition(": ")
            if err.cls_name and head.endswith(err.cls_name):  # "dagster...Failure: text" -> "text"
                message = rest
            return f"{event.step_key}: {message}"
    return ""


def queue_command(tags: dict[str, str], workspace: str | Path | None = None) -> list[str]:
    """The `dagster job launch` command that queues one range run on the instance (daemon executes it).

    `workspace` (default `workspace.yaml`): in a deployment, a workspace that points at the running code
    server (`deploy/workspace.yaml`), so each launch connects instead of loading the code itself."""
    from pipeline.defs.market_data.jobs import INGEST_JOB

    exe = Path(sys.executable).with_name("dagster")
    return [str(exe), "job", "launch", "-w", str(workspace or REPO_ROOT / "workspace.yaml"), "-j", INGEST_JOB,
            "--tags", json.dumps(tags)]  # fmt: skip
