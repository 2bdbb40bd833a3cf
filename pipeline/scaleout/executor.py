"""The executor of every job, chosen ONCE when the code location loads (`$CRYPTO4H_EXECUTOR`).

- `in_process` (default): the jobs keep the executor they always had; `make demo` and `make ui` need no
  broker and no server.
- `celery`: each step is a Celery task (dagster-celery's executor) executed by a worker listening on
  the step's queue. Ingestion steps (candles and its checks) carry the `ingest` queue tag; every other
  step falls back to the job's default queue, `research`. So a long research job (a sweep, a refresh)
  only ever occupies research workers and the hourly ingestion always finds an ingest worker.

A new fan-out job (e.g. the sweep) opts in with one line:

    executor_def=executor_for(RESEARCH_QUEUE, default=dg.multiprocess_executor)

The broker and backend are given to the executor as `{"env": ...}` references, so the URLs (and their
passwords) are read in the run process and never stored in a run's configuration.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from pipeline.scaleout.settings import (
    BROKER_ENV,
    INGEST_QUEUE,
    QUEUE_TAG,
    QUEUES,
    RESEARCH_QUEUE,
    backend_env,
    broker_url,
    celery_enabled,
    celery_settings,
    io_dir,
)

__all__ = ["INGEST_QUEUE", "RESEARCH_QUEUE", "executor_for", "io_manager_resources", "queue_tags",
           "run_policy_tags"]  # fmt: skip

#: run tags of the Celery profile: a run that failed for a reason other than a step's own error (a worker
#: process killed mid-step, a lost run process) is re-executed once from the failure by the daemon
#: (needs `run_retries: enabled` in the instance); a step that raised (bad data, a bug) is not retried.
RETRY_TAGS = {"dagster/max_retries": "1", "dagster/retry_on_asset_or_op_failure": "false",
              "dagster/retry_strategy": "FROM_FAILURE"}  # fmt: skip


def queue_tags(queue: str) -> dict[str, str]:
    """Op tags that route a step to `queue` under the Celery executor (ignored by the others)."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; known: {list(QUEUES)}")
    return {QUEUE_TAG: queue}


def executor_for(queue: str, default: dg.ExecutorDefinition | None = None) -> dg.ExecutorDefinition | None:
    """The Celery executor with `queue` as the default queue of the job's steps in the Celery profile,
    else `default` (None = Dagster's default executor)."""
    if not celery_enabled():
        return default
    queue_tags(queue)  # validates the name
    broker_url()  # fail at load, with the variable's name, rather than in the first run
    from dagster_celery import celery_executor

    env = backend_env()
    config: dict[str, Any] = {
        "broker": {"env": BROKER_ENV},
        "backend": {"env": env} if env else "rpc://",
        "config_source": {**celery_settings(), "task_default_queue": queue},
    }
    return celery_executor.configured(config, name=f"celery_{queue}")


def run_policy_tags() -> dict[str, str]:
    """Run tags of the jobs that run on workers: the retry policy in the Celery profile, else none."""
    return dict(RETRY_TAGS) if celery_enabled() else {}


def io_manager_resources() -> dict[str, Any]:
    """`io_manager` on `$CRYPTO4H_IO_DIR` when set: outputs passed between steps (e.g. sweep chunks to
    their merge) must live where every worker can read them, never on one worker's disk."""
    folder = io_dir()
    if not folder:
        return {}
    return {"io_manager": dg.FilesystemIOManager(base_dir=folder)}

