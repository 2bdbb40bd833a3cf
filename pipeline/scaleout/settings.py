"""Scale-out settings shared by the two sides of Dagster's Celery executor: the run process that submits
steps and the Celery workers that execute them.

Everything comes from the environment, read when a process starts (the code location loads, or a worker
imports its Celery config). Nothing here connects to anything, and no message shows a password: URLs
are printed with `safe_url`.

| variable | who reads it | meaning |
| --- | --- | --- |
| `CRYPTO4H_EXECUTOR` | code server, run processes, workers | `in_process` (default) or `celery` |
| `CRYPTO4H_CELERY_BROKER_URL` | run processes, workers | `redis://host:6379/0` or `pyamqp://user:pw@host:5672//` |
| `CRYPTO4H_CELERY_BACKEND_URL` | run processes, workers | result backend; default: the broker URL for Redis, `rpc://` for AMQP |
| `CRYPTO4H_IO_DIR` | run processes, workers | folder every worker can reach for step outputs passed between steps |
"""

from __future__ import annotations

import os
from typing import Any

EXECUTOR_ENV = "CRYPTO4H_EXECUTOR"
BROKER_ENV = "CRYPTO4H_CELERY_BROKER_URL"
BACKEND_ENV = "CRYPTO4H_CELERY_BACKEND_URL"
IO_DIR_ENV = "CRYPTO4H_IO_DIR"

IN_PROCESS = "in_process"
CELERY = "celery"
MODES = (IN_PROCESS, CELERY)

INGEST_QUEUE = "ingest"
RESEARCH_QUEUE = "research"
QUEUES = (INGEST_QUEUE, RESEARCH_QUEUE)
#: the op tag dagster-celery reads to pick a step's queue (dagster_celery.tags.DAGSTER_CELERY_QUEUE_TAG)
QUEUE_TAG = "dagster-celery/queue"

#: Redis redelivers a step whose worker vanished without acknowledging it after this long, so it must
#: exceed the longest step (split longer work into more steps: sweep chunks, symbol blocks)
VISIBILITY_TIMEOUT_S = 12 * 3600


class ScaleOutConfigError(ValueError):
    """The scale-out environment is incomplete or inconsistent; the message names the variable."""


def executor_mode() -> str:
    """`$CRYPTO4H_EXECUTOR`, validated (default `in_process`)."""
    raw = os.environ.get(EXECUTOR_ENV, "").strip().lower() or IN_PROCESS
    aliases = {"in-process": IN_PROCESS, "inprocess": IN_PROCESS, "default": IN_PROCESS}
    mode = aliases.get(raw, raw)
    if mode not in MODES:
        raise ScaleOutConfigError(f"${EXECUTOR_ENV}={raw!r} is not one of {list(MODES)}")
    return mode


def celery_enabled() -> bool:
    return executor_mode() == CELERY


def broker_url() -> str:
    """The broker URL (required in the Celery profile)."""
    url = os.environ.get(BROKER_ENV, "").strip()
    if not url:
        raise ScaleOutConfigError(
            f"${EXECUTOR_ENV}=celery needs ${BROKER_ENV} (e.g. redis://127.0.0.1:6379/0, or "
            "pyamqp://guest:guest@127.0.0.1:5672// for RabbitMQ)"
        )
    if not url.startswith(("redis://", "rediss://", "amqp://", "pyamqp://", "amqps://")):
        raise ScaleOutConfigError(f"${BROKER_ENV} must be a redis:// or (py)amqp:// URL, got scheme "
                                  f"{url.split(':', 1)[0]!r}")  # fmt: skip
    return url


def backend_env() -> str | None:
    """Which variable holds the result backend URL, or None for the `rpc://` backend (AMQP brokers).

    Redis keeps results in the broker's database when `$CRYPTO4H_CELERY_BACKEND_URL` is not set; RabbitMQ
    sends them back over AMQP (`rpc://`)."""
    if os.environ.get(BACKEND_ENV, "").strip():
        return BACKEND_ENV
    return BROKER_ENV if broker_url().startswith(("redis://", "rediss://")) else None


def backend_url() -> str:
    env = backend_env()
    return os.environ[env].strip() if env else "rpc://"


def celery_settings() -> dict[str, Any]:
    """Celery settings both sides use (the executor's `config_source` and the workers' config module).

    - one reserved step per worker process (`prefetch 1`): a long sweep chunk never holds a short step;
    - late acknowledgement: a step whose whole worker node disappeared (machine lost, container killed) is
      redelivered to another worker after `VISIBILITY_TIMEOUT_S`;
    - but a step whose own process died (OOM killer, SIGKILL) is failed, not redelivered
      (`task_reject_on_worker_lost` off): its run fails, and the daemon re-executes it once from the
      failure (run tags from `pipeline.scaleout.executor.run_policy_tags`). A poison step cannot loop.
    """
    return {
        "worker_prefetch_multiplier": 1,
        "task_acks_late": True,
        "task_reject_on_worker_lost": False,
        # keep a step running when the broker connection blips; redelivery waits for the visibility timeout
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": VISIBILITY_TIMEOUT_S,
            # dagster-celery's own defaults for publishing retries (its config_source replaces the dict)
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        "result_expires": 7 * 24 * 3600,
    }


def worker_conf() -> dict[str, Any]:
    """The settings module of a worker (`dagster_celery_config`, read by `dagster_celery.app`)."""
    return {"broker_url": broker_url(), "result_backend": backend_url(), **celery_settings()}


def io_dir() -> str:
    """`$CRYPTO4H_IO_DIR` ('' when unset: Dagster's default, `$DAGSTER_HOME/storage`)."""
    return os.environ.get(IO_DIR_ENV, "").strip()
