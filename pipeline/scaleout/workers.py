"""`python -m pipeline.scaleout.workers` (`make workers QUEUE=research N=2`): start one Celery worker node
with N processes for one queue.

    python -m pipeline.scaleout.workers --queue research --concurrency 2 [--name NAME] [--loglevel INFO]
                                        [--allow-sqlite] [--dry-run] [-- extra celery worker options]

It is `celery -A dagster_celery.app worker` (dagster-celery's worker app, the one `dagster-celery worker
start` runs) with:
- this package's `dagster_celery_config` module on PYTHONPATH, so broker and settings come from the
  environment and no URL is written to disk;
- `--include pipeline.definitions`: the code location is imported once in the parent and the pool
  processes fork from it (a broken universe file stops the worker at start, with the error);
- one queue per node, prefetch 1, prefork pool of N processes.

The command replaces this process (exec), so signals reach Celery: SIGTERM waits for running steps
(warm shutdown), SIGQUIT stops at once. Checks before starting: the broker variable is set, and the
store is not a local SQLite file (each machine would write its own; `--allow-sqlite` for one-host trials).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import uuid
from pathlib import Path

from pipeline.scaleout.settings import (
    BROKER_ENV,
    EXECUTOR_ENV,
    QUEUES,
    ScaleOutConfigError,
    backend_url,
    broker_url,
)

CONFIG_DIR = Path(__file__).resolve().parent / "celery_path"
#: the folder holding this `pipeline` package: workers import the same code as the command that starts them
CODE_ROOT = CONFIG_DIR.parents[2]
APP = "dagster_celery.app"
CODE_MODULE = "pipeline.definitions"


def store_problem(allow_sqlite: bool) -> str | None:
    """Why the store setting cannot serve several workers, or None."""
    from pipeline.store.engine_url import ENV_VAR, DatabaseUrlError, check_url, safe_url

    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return None if allow_sqlite else (
            f"${ENV_VAR} is not set: workers would write the local SQLite file data/crypto4h.db. Point it at "
            "the shared PostgreSQL store (or pass --allow-sqlite for a single-host trial)")  # fmt: skip
    try:
        backend = check_url(raw, f"${ENV_VAR}").get_backend_name()
    except DatabaseUrlError as exc:
        return str(exc)
    if backend == "sqlite" and not allow_sqlite:
        return (f"${ENV_VAR} is a SQLite file ({safe_url(raw)}): other machines cannot reach it. Use the shared "
                "PostgreSQL store (or --allow-sqlite for a single-host trial)")  # fmt: skip
    return None


def command(queue: str, concurrency: int, name: str | None, loglevel: str, extra: list[str]) -> list[str]:
    """The celery worker command line (no URL in it: those come from the environment)."""
    exe = shutil.which("celery", path=str(Path(sys.executable).parent)) or shutil.which("celery") or "celery"
    node = name or f"{queue}-{uuid.uuid4().hex[:6]}"
    return [exe, "-A", APP, "worker", "--queues", queue, "--concurrency", str(concurrency),
            "--hostname", f"{node}@%h", "--prefetch-multiplier", "1", "--loglevel", loglevel,
            "--include", CODE_MODULE, *extra]  # fmt: skip


def worker_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The worker's environment: the config module's folder and this code first on PYTHONPATH, the Celery
    profile on."""
    env = dict(os.environ if base is None else base)
    paths = (str(CONFIG_DIR), str(CODE_ROOT), env.get("PYTHONPATH", ""))
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env[EXECUTOR_ENV] = "celery"
    return env


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(prog="python -m pipeline.scaleout.workers", description=__doc__.splitlines()[0])
    parser.add_argument("--queue", "-Q", required=True, choices=QUEUES, help="the queue these workers serve")
    parser.add_argument("--concurrency", "-c", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--name", help="node name (default <queue>-<random>; @<host> is appended)")
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument("--allow-sqlite", action="store_true", help="accept a SQLite store (one host only)")
    parser.add_argument("--dry-run", action="store_true", help="print the command and exit")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")

    from pipeline.store.engine_url import ENV_VAR, safe_url

    env = worker_env()
    os.environ[EXECUTOR_ENV] = "celery"  # what the workers will run with; validates the broker below
    try:
        broker, backend = broker_url(), backend_url()
    except ScaleOutConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problem = store_problem(args.allow_sqlite)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    cmd = command(args.queue, args.concurrency, args.name, args.loglevel, extra)
    store = os.environ.get(ENV_VAR) or "the default SQLite file"
    print(f"crypto4h workers: queue {args.queue!r} x {args.concurrency} process(es); broker {safe_url(broker)} "
          f"(${BROKER_ENV}), results {safe_url(backend)}, store {safe_url(store)}, "
          f"DAGSTER_HOME={os.environ.get('DAGSTER_HOME', '(unset)')}", file=sys.stderr, flush=True)  # fmt: skip
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    os.execvpe(cmd[0], cmd, env)  # replaces this process: Celery receives the signals
    return 0  # pragma: no cover - exec does not return


if __name__ == "__main__":
    raise SystemExit(main())
