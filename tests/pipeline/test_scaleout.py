"""The scale-out configuration without any server: how the executor is chosen, what the Celery profile
puts in the jobs (executor, queues, retry tags), the worker command, the backfill plan's blocks and the
production instance file. The live proof with real workers is tests/pipeline/test_celery_live.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
import yaml
from pipeline_helpers import write_universe

from pipeline.scaleout import executor as ex
from pipeline.scaleout import settings as st
from pipeline.universe import REPO_ROOT

SECRET = "s3cr3t-pw"
REDIS = f"redis://:{SECRET}@broker.example:6379/0"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in (st.EXECUTOR_ENV, st.BROKER_ENV, st.BACKEND_ENV, st.IO_DIR_ENV):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_default_profile_keeps_each_jobs_executor(clean_env) -> None:
    assert st.executor_mode() == "in_process"
    assert ex.executor_for("ingest", dg.in_process_executor) is dg.in_process_executor
    assert ex.executor_for("research") is None
    assert ex.run_policy_tags() == {} and ex.io_manager_resources() == {}


def test_unknown_executor_is_refused_with_the_choices(clean_env) -> None:
    clean_env.setenv(st.EXECUTOR_ENV, "dask")
    with pytest.raises(st.ScaleOutConfigError, match=r"CRYPTO4H_EXECUTOR='dask' is not one of \['in_process', 'celery'\]"):
        st.executor_mode()


def test_celery_profile_needs_a_broker(clean_env) -> None:
    clean_env.setenv(st.EXECUTOR_ENV, "celery")
    with pytest.raises(st.ScaleOutConfigError, match="needs \\$CRYPTO4H_CELERY_BROKER_URL"):
        ex.executor_for("research")
    clean_env.setenv(st.BROKER_ENV, f"http://u:{SECRET}@x/")
    with pytest.raises(st.ScaleOutConfigError) as err:
        st.broker_url()
    assert SECRET not in str(err.value) and "'http'" in str(err.value)


def test_celery_executor_reads_urls_from_the_environment_only(clean_env) -> None:
    """The executor holds `{"env": ...}` references, resolved in the run process: the URL (and its
    password) is never part of a definition or of a run's stored configuration."""
    clean_env.setenv(st.EXECUTOR_ENV, "celery")
    clean_env.setenv(st.BROKER_ENV, REDIS)
    executor = ex.executor_for("ingest")
    assert executor is not None and executor.name == "celery_ingest"

    @dg.op
    def noop() -> None: ...

    @dg.job(executor_def=executor)
    def probe() -> None:
        noop()

    other = "redis://other:6379/3"
    clean_env.setenv(st.BROKER_ENV, other)  # read when a run starts, not when the code was loaded
    resolved = dg.validate_run_config(probe, {})["execution"]["celery_ingest"]
    assert resolved["broker"] == other and resolved["backend"] == other
    assert resolved["config_source"]["task_default_queue"] == "ingest"
    assert ex.run_policy_tags() == {"dagster/max_retries": "1", "dagster/retry_on_asset_or_op_failure": "false",
                                    "dagster/retry_strategy": "FROM_FAILURE"}  # fmt: skip


@pytest.mark.parametrize(
    ("broker", "backend", "env", "url"),
    [
        (REDIS, None, st.BROKER_ENV, REDIS),  # Redis keeps results in the broker's database
        ("pyamqp://guest:guest@rabbit:5672//", None, None, "rpc://"),  # RabbitMQ answers over AMQP
        (REDIS, "redis://cache:6379/1", st.BACKEND_ENV, "redis://cache:6379/1"),
    ],
)
def test_result_backend_defaults(clean_env, broker, backend, env, url) -> None:
    clean_env.setenv(st.BROKER_ENV, broker)
    if backend:
        clean_env.setenv(st.BACKEND_ENV, backend)
    assert st.backend_env() == env and st.backend_url() == url
    conf = st.worker_conf()
    assert conf["broker_url"] == broker and conf["result_backend"] == url
    assert conf["task_acks_late"] is True and conf["task_reject_on_worker_lost"] is False
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["broker_transport_options"]["visibility_timeout"] == st.VISIBILITY_TIMEOUT_S


def test_io_manager_on_the_shared_folder(clean_env, tmp_path: Path) -> None:
    clean_env.setenv(st.IO_DIR_ENV, str(tmp_path))
    manager = ex.io_manager_resources()["io_manager"]
    assert isinstance(manager, dg.FilesystemIOManager) and manager.base_dir == str(tmp_path)


def test_queue_names_are_checked() -> None:
    assert ex.queue_tags("ingest") == {"dagster-celery/queue": "ingest"}
    with pytest.raises(ValueError, match="unknown queue 'dagster'"):
        ex.queue_tags("dagster")


LOAD = """
import json, dagster as dg
from pipeline.definitions import defs
out = {}
for name in ("ingest_candles", "refresh_research", "adhoc_backtest", "configure_strategy"):
    job = defs.resolve_job_def(name)
    steps = {n.name: n.tags.get("dagster-celery/queue") for n in job.graph.node_defs}
    out[name] = {"executor": job.executor_def.name, "tags": dict(job.tags), "steps": steps}
    if name != "adhoc_backtest":
        assert dg.validate_run_config(job, {}) is not None
out["implicit"] = defs.resolve_implicit_global_asset_job_def().executor_def.name
print(json.dumps(out))
"""


def _load(env: dict[str, str], tmp_path: Path) -> dict:
    uni = write_universe(tmp_path / "u.yaml")
    env = {**os.environ, "CRYPTO4H_UNIVERSE": str(uni), "PYTHONWARNINGS": "ignore", **env}
    proc = subprocess.run([sys.executable, "-c", LOAD], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_code_location_in_both_profiles(tmp_path: Path) -> None:
    """Loaded as the code server and the workers load it: the executor follows the environment, the
    ingestion steps are routed to `ingest`, everything else to the job's default queue `research`."""
    base = {k: "" for k in (st.EXECUTOR_ENV, st.BROKER_ENV, st.BACKEND_ENV)}
    default = _load(base, tmp_path)
    assert default["ingest_candles"]["executor"] == "in_process"
    assert default["refresh_research"]["executor"] == "in_process"
    assert default["ingest_candles"]["tags"] == {"crypto4h/kind": "ingest"}

    celery = _load({**base, st.EXECUTOR_ENV: "celery", st.BROKER_ENV: REDIS}, tmp_path)
    assert celery["ingest_candles"]["executor"] == "celery_ingest"
    assert celery["refresh_research"]["executor"] == "celery_research"
    assert celery["adhoc_backtest"]["executor"] == "celery_research"
    assert celery["implicit"] == "celery_research"
    assert celery["configure_strategy"]["executor"] == "in_process"  # a registry edit: not worth a worker
    assert celery["ingest_candles"]["steps"] == {"candles": "ingest", "candle_checks": "ingest"}
    assert set(celery["refresh_research"]["steps"].values()) == {None}  # -> the executor's default: research
    assert celery["refresh_research"]["tags"]["dagster/max_retries"] == "1"
    assert SECRET not in json.dumps(celery)


# --- the worker command ----------------------------------------------------------------------------------


def _workers(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {**{k: v for k, v in os.environ.items() if not k.startswith("CRYPTO4H_")}, **env}
    return subprocess.run([sys.executable, "-m", "pipeline.scaleout.workers", *args], cwd=REPO_ROOT, env=full,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_worker_command_masks_the_password(tmp_path: Path) -> None:
    store = f"postgresql+psycopg2://app:{SECRET}@db:5432/crypto4h"
    proc = _workers(["--queue", "research", "--concurrency", "2", "--name", "r1", "--dry-run", "--", "--max-tasks-per-child",
                     "50"], {st.BROKER_ENV: REDIS, "CRYPTO4H_DB_URL": store})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    assert "queue 'research' x 2 process(es)" in proc.stderr and "redis://:***@broker.example:6379/0" in proc.stderr
    cmd = proc.stdout.split()
    assert cmd[1:4] == ["-A", "dagster_celery.app", "worker"]
    for flag, value in (("--queues", "research"), ("--concurrency", "2"), ("--hostname", "r1@%h"),
                        ("--prefetch-multiplier", "1"), ("--include", "pipeline.definitions")):  # fmt: skip
        assert cmd[cmd.index(flag) + 1] == value
    assert cmd[-2:] == ["--max-tasks-per-child", "50"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CRYPTO4H_DB_URL": "postgresql+psycopg2://db/x"}, "needs $CRYPTO4H_CELERY_BROKER_URL"),
        ({st.BROKER_ENV: REDIS}, "CRYPTO4H_DB_URL is not set"),
        ({st.BROKER_ENV: REDIS, "CRYPTO4H_DB_URL": "sqlite:////tmp/x.db"}, "other machines cannot reach it"),
    ],
)
def test_worker_refuses_an_unusable_setup(env, message) -> None:
    proc = _workers(["--queue", "ingest", "--dry-run"], env)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert _workers(["--queue", "ingest", "--dry-run", "--allow-sqlite"], env).returncode == (2 if st.BROKER_ENV not in env else 0)


def test_worker_config_module_reads_the_environment() -> None:
    """The module dagster-celery's worker app imports (`dagster_celery_config`) is found on the worker's
    PYTHONPATH and holds the settings from the environment."""
    from pipeline.scaleout.workers import worker_env

    env = worker_env({**os.environ, st.BROKER_ENV: REDIS, "PYTHONWARNINGS": "ignore"})
    code = "import dagster_celery_config as c, json; print(json.dumps([c.broker_url, c.result_backend, c.task_acks_late]))"
    proc = subprocess.run([sys.executable, "-c", code], cwd="/", env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [REDIS, REDIS, True]
    assert env[st.EXECUTOR_ENV] == "celery"


# --- backfill blocks ---------------------------------------------------------------------------------------


def test_backfill_plan_cuts_symbol_blocks_and_day_spans(tmp_path: Path) -> None:
    from pipeline.defs.market_data.backfill import plan
    from pipeline.universe import load_universe

    uni = load_universe(write_universe(tmp_path / "u.yaml", symbols=["A/X", "B/X", "C/X", "D/X", "E/X"]))
    runs = plan(uni, date(2024, 3, 1), date(2024, 3, 10), block_size=2, days_per_run=4)
    spans = [(r["dagster/asset_partition_range_start"], r["dagster/asset_partition_range_end"]) for r in runs]
    assert spans == [
        ("2024-03-01|A-X", "2024-03-04|B-X"), ("2024-03-01|C-X", "2024-03-04|D-X"), ("2024-03-01|E-X", "2024-03-04|E-X"),
        ("2024-03-05|A-X", "2024-03-08|B-X"), ("2024-03-05|C-X", "2024-03-08|D-X"), ("2024-03-05|E-X", "2024-03-08|E-X"),
        ("2024-03-09|A-X", "2024-03-10|B-X"), ("2024-03-09|C-X", "2024-03-10|D-X"), ("2024-03-09|E-X", "2024-03-10|E-X"),
    ]  # fmt: skip
    # blocks never join symbols that are not adjacent in the universe order
    runs = plan(uni, date(2024, 3, 1), date(2024, 3, 1), ["A/X", "B/X", "D/X"], block_size=5)
    assert [r["dagster/asset_partition_range_end"] for r in runs] == ["2024-03-01|B-X", "2024-03-01|D-X"]
    assert len(plan(uni, date(2024, 3, 1), date(2024, 3, 10))) == 1
    with pytest.raises(ValueError, match="must be positive"):
        plan(uni, date(2024, 3, 1), date(2024, 3, 2), block_size=-1)


def test_backfill_cli_prints_the_blocks_and_tags_backfill_runs(env, capsys) -> None:
    from pipeline.backfill import main

    assert main(["--start", "2024-03-01", "--end", "2024-03-02", "--block-size", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "in 2 runs" in out and "range 2024-03-01|CCC-USDT .. 2024-03-02|CCC-USDT" in out
    with dg.DagsterInstance.from_config(str(env["home"])) as instance:
        runs = [r.dagster_run for r in instance.get_run_records()]
    assert len(runs) == 2 and all(r.tags["crypto4h/kind"] == "backfill" for r in runs)
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)


# --- the production instance file --------------------------------------------------------------------------


def test_production_instance_file() -> None:
    """Shape of `dagster_home/dagster.production.yaml` (Dagster loading it for real, on PostgreSQL, is the
    live test's cluster)."""
    doc = yaml.safe_load((REPO_ROOT / "dagster_home" / "dagster.production.yaml").read_text())
    pg = doc["storage"]["postgres"]["postgres_db"]
    assert pg["scheme"] == "postgresql+psycopg2" and pg["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    queue = doc["run_queue"]
    limits = {lim.get("value", lim["key"]): lim["limit"] for lim in queue["tag_concurrency_limits"]}
    assert set(limits) == {"ingest", "backfill", "refresh", "adhoc", "sweep", "dagster/backfill"}
    assert sum(limits.values()) <= queue["max_concurrent_runs"]  # the hourly ingestion always has a slot
    assert doc["run_retries"] == {"enabled": True, "max_retries": 0}  # only runs tagged for it are retried
