"""Crash and concurrency at run level (issue 9), on the embedded instance (the project's dagster.yaml in
a temporary DAGSTER_HOME, SQLite instance storage).

- A run killed with SIGKILL in the middle of its one write transaction (SQLite and PostgreSQL store)
  leaves the store exactly as it was; the orphaned run does not hold the refresh sensor back once
  presumed dead; a re-run completes the data and research refreshes from it.
- The hourly ingestion, a backfill and two backtests at once, each in its own process (as the daemon's
  run workers or CLI backfills would be), on the SQLite store and instance: all succeed, no
  "database is locked", no lost rows.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from pipeline_helpers import ingest, make_defs, open_store, write_universe

from pipeline.defs.research import sensors
from pipeline.universe import REPO_ROOT

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
SYMBOLS = ["AAA/USDT", "BBB/USDT", "CCC/USDT"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    monkeypatch.setenv("CRYPTO4H_DB_URL", url)
    return url


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME with the project's instance settings (SQLite storage, run queue, run monitoring)."""
    path = tmp_path / "dagster_home"
    path.mkdir()
    shutil.copy(REPO_ROOT / "dagster_home" / "dagster.yaml", path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(path))
    monkeypatch.setenv("CRYPTO4H_REPORTS_DIR", str(tmp_path / "reports"))
    with dg.DagsterInstance.get():  # create the storage once, before several processes open it
        pass
    return path


def _child(args: list[str], **env: str) -> subprocess.Popen:
    full = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONWARNINGS": "ignore", **env}
    return subprocess.Popen([sys.executable, str(HERE / "reliability_child.py"), *args], env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _frames(url: str) -> dict[str, pd.DataFrame]:
    store = open_store(url)
    try:
        return {s: store.read_candles("synthetic", s) for s in SYMBOLS}
    finally:
        store.dispose()


def _expected_rows(first: str, last_excl: str) -> int:
    from engine.data import make_provider

    provider = make_provider("synthetic", seed=3)
    lo, hi = pd.Timestamp(first, tz="UTC"), pd.Timestamp(last_excl, tz="UTC")
    return sum(len(provider.fetch_ohlcv(s, lo, hi)) for s in SYMBOLS)


def test_a_run_killed_mid_write_leaves_the_store_as_it_was(store_url, home, tmp_path, monkeypatch) -> None:
    uni_path = write_universe(tmp_path / "universe.yaml")
    monkeypatch.setenv("CRYPTO4H_UNIVERSE", str(uni_path))
    defs = make_defs(uni_path, store_url)
    with dg.DagsterInstance.get() as instance:
        assert ingest(defs, uni_path, instance, days=3).success
    before = _frames(store_url)

    marker = tmp_path / "mid-write"
    proc = _child(["ingest", "2024-03-01", "2024-03-06"], CRYPTO4H_TEST_HOLD_WRITE=str(marker))
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), proc.stderr.read()[-3000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()

    after = _frames(store_url)
    for s in SYMBOLS:  # the killed transaction left nothing: days 1-3 as before, days 4-6 absent
        pd.testing.assert_frame_equal(after[s], before[s])
    with dg.DagsterInstance.get() as instance:
        [killed] = [r for r in instance.get_run_records(dg.RunsFilter(job_name="ingest_candles"))
                    if r.dagster_run.status == dg.DagsterRunStatus.STARTED]  # fmt: skip
        rerun = ingest(defs, uni_path, instance, days=6)
        assert rerun.success
        assert sum(len(df) for df in _frames(store_url).values()) == _expected_rows("2024-03-01", "2024-03-07")
        monkeypatch.setenv(sensors.STALE_ENV, "0.5")
        time.sleep(0.6)
        sensor = defs.resolve_sensor_def("refresh_after_candles")
        ctx = dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def())
        tick = sensor.evaluate_tick(ctx)
        assert [r.run_key for r in tick.run_requests] == [f"refresh-after-{rerun.run_id}"]
        assert instance.get_run_by_id(killed.dagster_run.run_id).status == dg.DagsterRunStatus.STARTED


def test_hourly_ingestion_backfill_and_two_backtests_at_once_on_sqlite(home, tmp_path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("CRYPTO4H_DB_URL", url)
    uni_path = write_universe(tmp_path / "universe.yaml", end="2024-03-21T00:00:00Z")
    monkeypatch.setenv("CRYPTO4H_UNIVERSE", str(uni_path))
    defs = make_defs(uni_path, url)
    with dg.DagsterInstance.get() as instance:
        assert ingest(defs, uni_path, instance, days=12).success  # 2024-03-01 .. 12

    go = tmp_path / "go"
    jobs = {
        "hourly": ["ingest", "2024-03-20", "2024-03-20"],  # what the hourly tick requests: one day, all symbols
        "backfill": ["ingest", "2024-03-13", "2024-03-19"],
        "backtest_momentum": ["backtest", "momentum_rank", "2024-03-13"],
        "backtest_macd": ["backtest", "macd_rsi_confluence", "2024-03-13"],
    }
    procs = {name: _child(args, CRYPTO4H_TEST_GO=str(go)) for name, args in jobs.items()}
    deadline = time.monotonic() + 120  # every child imported and waiting at the start line
    while len(list(tmp_path.glob("ready-*"))) < len(procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    go.write_text("go")
    out: dict[str, dict] = {}
    logs = []
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        logs.append(f"--- {name}\n{stderr[-2000:]}")
        out[name] = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else {"status": "no output"}
    text = "\n".join(logs)
    assert all(o["status"] == "SUCCESS" for o in out.values()), f"{out}\n{text}"
    assert "database is locked" not in text.lower()
    assert max(o["start"] for o in out.values()) < min(o["end"] for o in out.values())  # they did overlap

    # no lost rows: every candle of the 20 days, once; both backtests recorded; no lock error anywhere
    assert sum(len(df) for df in _frames(url).values()) == _expected_rows("2024-03-01", "2024-03-21")
    store = open_store(url)
    try:
        runs = store.list_backtests(limit=10)
    finally:
        store.dispose()
    assert sorted(runs[runs["kind"] == "adhoc"]["strategy"]) == ["macd_rsi_confluence", "momentum_rank"]
    assert (runs["status"] == "success").all()
    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records()
        assert len(records) == 5 and all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
