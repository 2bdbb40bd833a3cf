"""A production-profile cluster on this machine, for the live scale-out test and the distributed benchmark:
fresh PostgreSQL databases (Dagster instance, store), Redis as the Celery broker, and the real processes:
`dagster code-server start`, `dagster-daemon run` (on a workspace pointing at the code server) and
Celery workers started by `python -m pipeline.scaleout.workers`.

Every process runs in its own session, with its log in the cluster folder; `stop()` ends them all
(SIGTERM, then SIGKILL for what remains) and is safe to call twice. Nothing here prints a password.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("CRYPTO4H_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
#: own Redis database numbers (broker, results); only these are ever flushed
REDIS_URL = os.environ.get("CRYPTO4H_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
REDIS_BACKEND_URL = os.environ.get("CRYPTO4H_TEST_REDIS_BACKEND_URL", "redis://127.0.0.1:6379/6")
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


def required(var: str) -> bool:
    return os.environ.get(var, "").strip().lower() in ("1", "true", "yes")


def redis_problem(urls: tuple[str, ...] = (REDIS_URL, REDIS_BACKEND_URL)) -> str | None:
    """Why Redis cannot be used (unreachable), or None."""
    import redis

    for url in urls:
        try:
            redis.Redis.from_url(url, socket_connect_timeout=3).ping()
        except redis.RedisError as exc:
            from pipeline.store.engine_url import safe_url

            return f"Redis unreachable at {safe_url(url)}: {exc}"
    return None


def flush_redis(urls: tuple[str, ...] = (REDIS_URL, REDIS_BACKEND_URL)) -> None:
    import redis

    for url in urls:
        redis.Redis.from_url(url).flushdb()


@contextmanager
def pg_databases(*roles: str) -> Iterator[dict[str, sa.URL]]:
    """Fresh PostgreSQL databases, one per role, dropped afterwards (raises OperationalError if the server
    is unreachable)."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    tag = uuid.uuid4().hex[:8]
    names = {role: f"crypto4h_celery_{role}_{tag}" for role in roles}
    created: list[str] = []
    try:
        with admin.connect() as conn:
            for name in names.values():
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
                created.append(name)
        base = sa.make_url(PG_ADMIN_URL)
        yield {role: base.set(database=name) for role, name in names.items()}
    finally:
        try:
            with admin.connect() as conn:
                for name in created:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            admin.dispose()


def url_text(url: sa.URL) -> str:
    return url.render_as_string(hide_password=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> set[int]:
    """Every descendant of `pid` (from /proc), e.g. a Celery node's pool processes."""
    out: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = {int(p) for p in (task / "children").read_text().split()}
            except OSError:
                continue
            todo.extend(kids - out)
            out |= kids
    return out


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a live process (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Cluster:
    """The processes of one production-profile deployment on this machine."""

    root: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    port: int = 0
    _logs: list[Any] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return Path(self.env["DAGSTER_HOME"])

    @property
    def workspace(self) -> Path:
        return self.root / "workspace.yaml"

    @classmethod
    def create(cls, root: Path, instance_url: sa.URL, store_url: sa.URL, universe: Path,
               extra_env: dict[str, str] | None = None) -> Cluster:  # fmt: skip
        """Write DAGSTER_HOME (the production instance file) and the environment every process shares."""
        home = root / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "dagster_home" / "dagster.production.yaml", home / "dagster.yaml")
        (root / "requests").mkdir(exist_ok=True)
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_HOST": instance_url.host or "127.0.0.1",
            "DAGSTER_PG_PORT": str(instance_url.port or 5432),
            "DAGSTER_PG_USER": instance_url.username or "postgres",
            "DAGSTER_PG_PASSWORD": instance_url.password or "",
            "DAGSTER_PG_DB": instance_url.database or "",
            "CRYPTO4H_DB_URL": url_text(store_url),
            "CRYPTO4H_UNIVERSE": str(universe),
            "CRYPTO4H_REPORTS_DIR": str(root / "reports"),
            "CRYPTO4H_REQUESTS_DIR": str(root / "requests"),
            "CRYPTO4H_IO_DIR": str(root / "io"),
            "CRYPTO4H_EXECUTOR": "celery",
            "CRYPTO4H_CELERY_BROKER_URL": REDIS_URL,
            "CRYPTO4H_CELERY_BACKEND_URL": REDIS_BACKEND_URL,
            "PYTHONWARNINGS": "ignore",
            **(extra_env or {}),
        }
        cluster = cls(root=root, env=env)
        with cluster.instance():
            pass  # create the instance storage once, before several processes start at the same moment
        return cluster

    @contextmanager
    def instance(self) -> Iterator[Any]:
        """The cluster's Dagster instance, opened from this process (its env applied meanwhile)."""
        import dagster as dg

        keys = [k for k in self.env if k.startswith("DAGSTER_")]
        saved = {k: os.environ.get(k) for k in keys}
        os.environ.update({k: self.env[k] for k in keys})
        try:
            with dg.DagsterInstance.from_config(str(self.home)) as inst:
                yield inst
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    # --- processes ----------------------------------------------------------------------------------

    def spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        proc = subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        self.procs[name] = proc
        return proc

    def start_services(self) -> None:
        """Code server + daemon (the daemon loads the workspace that points at the code server)."""
        self.port = free_port()
        self.workspace.write_text(json.dumps({"load_from": [{"grpc_server": {
            "host": "127.0.0.1", "port": self.port, "location_name": "crypto4h"}}]}))  # fmt: skip
        self.spawn("code_server", [str(BIN / "dagster"), "code-server", "start", "-m", "pipeline.definitions",
                                   "-d", str(REPO), "-h", "127.0.0.1", "-p", str(self.port)])  # fmt: skip
        self.wait_for(self.code_server_ready, 120, "the code server")
        self.spawn("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(self.workspace)])

    def code_server_ready(self) -> bool:
        proc = subprocess.run([str(BIN / "dagster"), "api", "grpc-health-check", "-p", str(self.port)],
                              env=self.env, capture_output=True, timeout=60)  # fmt: skip
        return proc.returncode == 0

    def start_worker(self, queue: str, concurrency: int = 1, name: str | None = None) -> subprocess.Popen:
        name = name or f"{queue}-{len(self.procs)}"
        log = self.root / f"worker_{name}.log"
        offset = log.stat().st_size if log.is_file() else 0  # a restarted worker appends to its log
        proc = self.spawn(f"worker_{name}", [sys.executable, "-m", "pipeline.scaleout.workers", "--queue", queue,
                                             "--concurrency", str(concurrency), "--name", name])  # fmt: skip

        def ready() -> bool:
            with open(log, "rb") as fh:
                fh.seek(offset)
                return b" ready." in fh.read() and len(children(proc.pid)) >= concurrency

        self.wait_for(ready, 120, f"worker {name}")
        return proc

    def stop_process(self, name: str, grace: float = 20) -> None:
        """Stop one process (its whole session); it is no longer watched by `wait_for`."""
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        """Stop every process this cluster started (workers first, then daemon and code server)."""
        procs = dict(self.procs)
        order = sorted(procs, key=lambda n: (not n.startswith("worker"), n != "daemon"))
        for name in order:
            with suppress(Exception):  # keep stopping the others
                self.stop_process(name)
        for proc in procs.values():  # last resort for anything that ignored SIGTERM
            if proc.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for log in self._logs:
            log.close()

    # --- observation --------------------------------------------------------------------------------

    def log_has(self, name: str, text: str) -> bool:
        path = self.root / f"{name}.log"
        return path.is_file() and text in path.read_text(errors="replace")

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}" for p in sorted(self.root.glob("*.log")))

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str, poll: float = 1.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            dead = [n for n, p in self.procs.items() if p.poll() is not None and not n.startswith("cli")]
            if dead:
                raise RuntimeError(f"process(es) {dead} exited while waiting for {what}\n{self.logs()}")
            time.sleep(poll)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}\n{self.logs()}")

    def cli(self, args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
        """Run a command with the cluster's environment (e.g. the backfill CLI) and return its result."""
        return subprocess.run(args, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)

    def runs(self, job: str | None = None) -> list[Any]:
        """The cluster's runs (oldest first), optionally of one job."""
        import dagster as dg

        with self.instance() as inst:
            records = inst.get_run_records(dg.RunsFilter(job_name=job) if job else None)
        return [r.dagster_run for r in reversed(records)]

    def wait_runs(self, job: str, count: int, timeout: float, since: int = 0) -> list[Any]:
        """Wait until `count` runs of `job` (after the first `since`) have finished; return them."""

        def done() -> list[Any] | None:
            runs = self.runs(job)[since:]
            finished = [r for r in runs if r.status.value in FINISHED]
            return finished if len(finished) >= count else None

        return self.wait_for(done, timeout, f"{count} finished run(s) of {job}", poll=2)

    def events(self, run_id: str) -> list[Any]:
        with self.instance() as inst:
            return list(inst.all_logs(run_id))

    def step_pids(self, run_id: str) -> dict[str, set[int]]:
        """{step key: pids of the processes that logged its step events} (STEP_START .. STEP_SUCCESS)."""
        out: dict[str, set[int]] = {}
        for entry in self.events(run_id):
            ev = entry.dagster_event
            if ev is not None and ev.step_key and ev.event_type_value.startswith("STEP_") and ev.pid:
                out.setdefault(ev.step_key, set()).add(ev.pid)
        return out

    def run_pid(self, run_id: str) -> int | None:
        for entry in self.events(run_id):
            ev = entry.dagster_event
            if ev is not None and ev.event_type_value == "PIPELINE_START":
                return ev.pid
        return None
