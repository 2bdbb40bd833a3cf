"""Issue 9, item 3: the refresh sensor never waits on a dead run.

A run executed in a process of its own (the CLI backfill's default) that is killed with SIGKILL has
nobody left to mark it: it stays STARTED in the instance. The sensor waits on it while it could still be
alive (younger than `$CRYPTO4H_STALE_RUN_SECONDS`), then presumes it dead and refreshes from the
successful re-run, saying why in the tick. Queued runs are never presumed dead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest
from pipeline_helpers import ingest, make_defs

from pipeline.defs.research import sensors

HERE = Path(__file__).resolve().parent

CHILD = textwrap.dedent(
    """
    import sys, warnings
    warnings.simplefilter("ignore")
    sys.path.insert(0, {here!r})
    import dagster as dg
    from datetime import date
    from reliability_location import defs
    from pipeline.defs.market_data.partitions import range_tags
    from pipeline.universe import load_universe
    tags = range_tags(load_universe(), date(2024, 3, 1), date(2024, 3, 2))
    with dg.DagsterInstance.get() as instance:
        defs.resolve_job_def("ingest_candles").execute_in_process(instance=instance, tags=tags)
    """
)


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None = None):
    sensor = defs.resolve_sensor_def("refresh_after_candles")
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, repository_def=defs.get_repository_def())
    return sensor.evaluate_tick(ctx)


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def _killed_run(env: dict, instance: dg.DagsterInstance, tmp_path: Path) -> str:
    """An ingestion run whose own process was killed with SIGKILL mid-fetch: left STARTED."""
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "hold").write_text("")
    child_env = {**os.environ, "CRYPTO4H_TEST_GATE": str(gate), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(here=str(HERE))], env=child_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        _wait(lambda: next(gate.glob("pid-*"), None) or proc.poll() is not None, 90, "the run to reach the fetch")
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    [record] = instance.get_run_records(dg.RunsFilter(job_name="ingest_candles"))
    assert record.dagster_run.status == dg.DagsterRunStatus.STARTED  # nobody left to mark it
    return record.dagster_run.run_id


def test_sensor_does_not_wait_forever_on_a_killed_ingestion_run(env, instance, tmp_path, monkeypatch) -> None:
    defs = make_defs(env["universe"], env["db_url"])
    dead = _killed_run(env, instance, tmp_path)
    good = ingest(defs, env["universe"], instance, days=2)
    assert good.success
    # while the killed run could still be alive, the sensor waits for it (cursor unchanged)
    young = _tick(defs, instance)
    assert not young.run_requests and young.cursor is None
    assert f"waiting: candle run {dead[:8]} is STARTED" in young.skip_message
    # past the limit it is presumed dead: the successful re-run refreshes research, the tick says why
    monkeypatch.setenv(sensors.STALE_ENV, "1")
    time.sleep(1.1)
    old = _tick(defs, instance)
    [req] = old.run_requests
    assert req.run_key == f"refresh-after-{good.run_id}"
    assert not _tick(defs, instance, old.cursor).run_requests  # exactly once
    assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.STARTED  # the sensor changes no run


def test_presumed_dead_rules(instance) -> None:
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    now = time.time()
    started = instance.add_run(dg.DagsterRun(job_name="ingest_candles", status=dg.DagsterRunStatus.STARTED))
    starting = instance.add_run(dg.DagsterRun(job_name="refresh_research", status=dg.DagsterRunStatus.STARTING))
    other = instance.add_run(dg.DagsterRun(job_name="adhoc_backtest", status=dg.DagsterRunStatus.STARTED))

    def why(run, at):
        return sensors.presumed_dead(instance.get_run_record_by_id(run.run_id), at)

    assert why(started, now) is None and why(starting, now) is None
    hour_later = now + 3600
    assert "STARTED for 60 min (limit 30 min): presumed dead" in why(started, hour_later)
    assert "STARTING for 60 min (limit 10 min)" in why(starting, hour_later)
    # a sign of life (a materialisation a minute ago) keeps a long run alive
    record = instance.get_run_record_by_id(started.run_id)
    assert sensors.presumed_dead(record, hour_later, last_seen=hour_later - 60) is None
    assert "STARTED for 31 min" in sensors.presumed_dead(record, hour_later, last_seen=hour_later - 31 * 60)
    queued = SimpleNamespace(  # a run record as get_run_records returns it (queued runs need a code location)
        dagster_run=SimpleNamespace(job_name="ingest_candles", status=dg.DagsterRunStatus.QUEUED),
        start_time=None, create_timestamp=datetime.now(UTC) - timedelta(days=10),
    )  # fmt: skip
    assert sensors.presumed_dead(queued, now) is None  # waiting for a slot is not death
    assert sensors._busy(instance, now=now) == f"refresh run {starting.run_id[:8]} is STARTING"  # newest first
    notes: list[str] = []
    assert sensors._busy(instance, now=hour_later, dead=notes) is None
    assert sorted(n.split(":")[0] for n in notes) == sorted(
        [f"not waiting for candle run {started.run_id[:8]}", f"not waiting for refresh run {starting.run_id[:8]}"]
    )
    assert other.run_id[:8] not in " ".join(notes)  # other jobs never block the refresh


def test_stale_limit_from_the_environment(monkeypatch) -> None:
    for raw, expected in (("", 1800), ("600", 600), ("-5", 1800), ("soon", 1800), ("2.5", 2.5)):
        monkeypatch.setenv(sensors.STALE_ENV, raw)
        assert sensors.stale_after_seconds() == expected


def test_instance_settings_end_dead_runs(tmp_path) -> None:
    """Both instance files turn run monitoring on with a runtime limit (the only end for an orphaned run
    under the default run launcher, which can neither check a worker's health nor resume a run)."""
    import shutil

    import yaml

    from pipeline.universe import REPO_ROOT

    settings = {}
    for name in ("dagster.yaml", "dagster.postgres.yaml"):
        doc = yaml.safe_load((REPO_ROOT / "dagster_home" / name).read_text())
        settings[name] = doc["run_monitoring"]
    assert settings["dagster.yaml"] == settings["dagster.postgres.yaml"]
    monitoring = settings["dagster.yaml"]
    assert monitoring["enabled"] is True and monitoring["max_resume_run_attempts"] == 0
    assert 3600 <= monitoring["max_runtime_seconds"] <= 24 * 3600
    assert monitoring["start_timeout_seconds"] < sensors.STARTING_LIMIT_SECONDS
    assert monitoring["poll_interval_seconds"] <= 60
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:  # the daemon accepts these settings
        assert instance.run_launcher is not None
