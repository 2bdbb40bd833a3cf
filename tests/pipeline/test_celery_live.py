"""Live scale-out on Celery workers, in the production profile (docs/deploy.md, "What was tested").

Real processes on this machine: a code server, the daemon (run queue, sensors, run retries) and one Celery
worker node per queue (`python -m pipeline.scaleout.workers`), with the Dagster instance on a fresh
PostgreSQL database (`dagster_home/dagster.production.yaml`), the store on another, Redis as broker and
result backend. The same jobs also run in process on a third database: the reference.

1. A backfill split by symbol blocks (`python -m pipeline.backfill --block-size 1 --queue`: three range
   runs through the run queue) and the research refresh: every step executes in a worker's pool process
   (pids of the step events), never in the run's own process; ingest steps on the ingest node, research
   steps on the research node; stored candles, trades, windows, metrics and rankings are byte-identical
   to the in-process runs; the HTML reports land in the shared reports folder.
2. A worker process killed in the middle of a step's write transaction (the step holds two symbols'
   rows, uncommitted, and waits on a lock the test holds for the third): the run fails naming
   WorkerLostError, no row of that run is in the store, and the daemon re-executes the run from the
   failure by itself (its retry tags); the retry completes and the candles match the reference.

Skipped locally when Redis or PostgreSQL is unreachable; REQUIRE_REDIS=1 / REQUIRE_POSTGRES=1 (CI) make
that a failure. Every process is stopped in the fixture's `finally`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from celery_cluster import Cluster, children, flush_redis, pg_databases, redis_problem, required, url_text
from pipeline_helpers import HIST_START, QUIET, ingest, make_defs, write_universe

pytestmark = [pytest.mark.live, pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

DAYS = 21  # phase 1 ingests the first 14 days, phase 2 the last 7
FIRST_DAYS = 14
PHASE2_START = HIST_START + timedelta(days=FIRST_DAYS)
PHASE2_START_MS = int(pd.Timestamp(PHASE2_START, tz="UTC").value // 1_000_000)
EXCHANGE = "synthetic"


def _unavailable(message: str, var: str) -> None:
    if required(var):
        pytest.fail(f"{var}=1 but {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def dbs() -> Iterator[dict[str, sa.URL]]:
    problem = redis_problem()
    if problem:
        _unavailable(problem, "REQUIRE_REDIS")
    try:
        with pg_databases("instance", "store", "reference") as urls:
            yield urls
    except sa.exc.OperationalError as exc:
        _unavailable(f"PostgreSQL unreachable: {exc.orig}", "REQUIRE_POSTGRES")


@pytest.fixture(scope="module")
def universe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    end = (HIST_START + timedelta(days=DAYS)).isoformat() + "T00:00:00Z"
    return write_universe(tmp_path_factory.mktemp("universe") / "universe.yaml", end=end)


@pytest.fixture(scope="module")
def reference(dbs, universe: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same jobs in process (the embedded default executor) on the reference database."""
    url = url_text(dbs["reference"])
    root = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRYPTO4H_REPORTS_DIR", str(root / "reports"))
        mp.setenv("CRYPTO4H_UNIVERSE", str(universe))
        mp.setenv("DAGSTER_HOME", str(root))
        defs = make_defs(universe, url)
        assert defs.resolve_job_def("ingest_candles").executor_def.name == "in_process"
        with dg.instance_for_test(temp_dir=str(root)) as instance:
            assert ingest(defs, universe, instance, days=FIRST_DAYS).success
            refresh = defs.resolve_job_def("refresh_research").execute_in_process(instance=instance, run_config=QUIET)
            assert refresh.success
            results = result_digest(url)
            assert ingest(defs, universe, instance, first=PHASE2_START, days=DAYS - FIRST_DAYS).success
    return {"url": url, "results": results}


@pytest.fixture(scope="module")
def cluster(dbs, universe: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    flush_redis()
    c = Cluster.create(tmp_path_factory.mktemp("cluster"), dbs["instance"], dbs["store"], universe)
    try:
        c.start_services()
        c.start_worker("ingest", 1, "ingest-a")
        c.start_worker("research", 1, "research-a")
        # the test launches the refresh itself: with the sensor on, a tick between two queued backfill
        # runs could refresh on a partial universe (in production the next tick refreshes again)
        stop = c.cli([str(Path(sys.executable).parent / "dagster"), "sensor", "stop", "refresh_after_candles",
                      "-w", str(c.workspace)])  # fmt: skip
        assert stop.returncode == 0, stop.stderr[-2000:]
        yield c
    finally:
        c.stop()
        flush_redis()


# --- helpers ------------------------------------------------------------------------------------------


def candle_digest(url: str, before_ms: int | None = None) -> dict[str, dict[str, bytes]]:
    """Every stored candle, per symbol, as raw bytes (open time, OHLCV float64 bits, source, synthetic)."""
    engine = sa.create_engine(url)
    query = ("SELECT s.symbol, c.open_time, c.open, c.high, c.low, c.close, c.volume, c.source, c.synthetic "
             "FROM candles c JOIN candle_series s ON s.id = c.series_id "
             + ("WHERE c.open_time < :before " if before_ms is not None else "")
             + "ORDER BY s.symbol, c.open_time")  # fmt: skip
    try:
        with engine.connect() as conn:
            df = pd.read_sql(sa.text(query), conn, params={"before": before_ms})
    finally:
        engine.dispose()
    out = {}
    for symbol, g in df.groupby("symbol"):
        out[symbol] = {
            "open_time": g["open_time"].to_numpy(np.int64).tobytes(),
            "ohlcv": g[["open", "high", "low", "close", "volume"]].to_numpy(np.float64).tobytes(),
            "meta": repr(list(zip(g["source"], g["synthetic"], strict=True))).encode(),
        }
    return out


def _frame_bytes(df: pd.DataFrame) -> dict[str, bytes]:
    """Each column's values as bytes: float64 bits for numbers, repr for the rest."""
    out = {}
    for c in df.columns:
        col = df[c]
        if pd.api.types.is_float_dtype(col) or pd.api.types.is_integer_dtype(col):
            out[c] = col.to_numpy(np.float64).tobytes()
        elif pd.api.types.is_datetime64_any_dtype(col):
            out[c] = col.astype("int64").to_numpy().tobytes()
        else:
            out[c] = repr(col.tolist()).encode()
    return out


def result_digest(url: str) -> dict[str, Any]:
    """Per strategy, the latest scheduled backtest (trades, windows, metrics, data fingerprint) and the
    latest ranking, in bytes: what must not depend on where the steps ran."""
    from pipeline.store import Store

    store = Store(url=url)
    try:
        runs = store.list_backtests(kind="scheduled", status="success")
        out: dict[str, Any] = {}
        for strategy, group in runs.groupby("strategy"):
            run = group.iloc[0]
            ranking = store.latest_ranking(str(strategy)).drop(columns=["snapshot_id"], errors="ignore")
            metrics = store.backtest_metrics(int(run["id"]))
            out[str(strategy)] = {
                "fingerprint": run["data_fingerprint"],
                "trades": _frame_bytes(store.backtest_trades(int(run["id"])).drop(columns=["run_id"], errors="ignore")),
                "windows": _frame_bytes(store.backtest_windows(int(run["id"])).drop(columns=["run_id"], errors="ignore")),
                "metrics": {k: np.float64(np.nan if v is None else v).tobytes() for k, v in metrics.items()},
                "ranking": _frame_bytes(ranking),
                "n_trades": len(store.backtest_trades(int(run["id"]))),
            }
        return out
    finally:
        store.dispose()


def pool(c: Cluster, name: str) -> set[int]:
    return children(c.procs[f"worker_{name}"].pid)


def assert_steps_ran_on(c: Cluster, run: Any, pool_pids: set[int]) -> dict[str, set[int]]:
    steps = c.step_pids(run.run_id)
    run_pid = c.run_pid(run.run_id)
    assert steps, f"no step events for run {run.run_id}"
    for step, pids in steps.items():
        assert pids <= pool_pids, f"{run.job_name}:{step} ran in {pids}, not in the worker pool {pool_pids}"
        assert run_pid not in pids, f"{step} ran in the run's own process {run_pid}"
    return steps


def launch(c: Cluster, job: str) -> None:
    proc = c.cli([str(Path(sys.executable).parent / "dagster"), "job", "launch", "-w", str(c.workspace), "-j", job])
    assert proc.returncode == 0, proc.stderr[-2000:]


# --- 1. backfill + refresh on the workers, identical to in process --------------------------------------


def test_backfill_and_refresh_run_on_workers_and_match_in_process(cluster: Cluster, reference) -> None:
    c = cluster
    last = (HIST_START + timedelta(days=FIRST_DAYS - 1)).isoformat()
    out = c.cli([sys.executable, "-m", "pipeline.backfill", "--start", HIST_START.isoformat(), "--end", last,
                 "--block-size", "1", "--queue", "--workspace", str(c.workspace)])  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "in 3 runs" in out.stdout
    runs = c.wait_runs("ingest_candles", 3, 300)
    assert [r.status.value for r in runs] == ["SUCCESS"] * 3, c.logs()
    ingest_pool, research_pool = pool(c, "ingest-a"), pool(c, "research-a")
    for run in runs:
        assert run.tags["crypto4h/kind"] == "backfill" and run.tags["dagster/max_retries"] == "1"
        steps = assert_steps_ran_on(c, run, ingest_pool)
        assert set(steps) == {"candles", "candle_checks"}

    launch(c, "refresh_research")
    [refresh] = c.wait_runs("refresh_research", 1, 300)
    assert refresh.status.value == "SUCCESS", c.logs()
    steps = assert_steps_ran_on(c, refresh, research_pool)
    assert "research_refresh" in steps

    store_url = c.env["CRYPTO4H_DB_URL"]
    got, want = candle_digest(store_url), candle_digest(reference["url"], before_ms=PHASE2_START_MS)
    assert sorted(got) == ["AAA/USDT", "BBB/USDT", "CCC/USDT"] and got == want
    results = result_digest(store_url)
    assert set(results) == {"macd_rsi_confluence", "momentum_rank"}
    assert all(r["n_trades"] > 0 for r in results.values())
    assert results == reference["results"]
    reports = list((c.root / "reports" / "runs").glob("*.html"))
    assert len(reports) == 2, "the worker writes the reports to the shared CRYPTO4H_REPORTS_DIR"


# --- 2. a worker process killed mid-transaction ----------------------------------------------------------


def _store_engine(c: Cluster) -> sa.Engine:
    return sa.create_engine(c.env["CRYPTO4H_DB_URL"], isolation_level="AUTOCOMMIT")


def _phase2_rows(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM candles WHERE open_time >= :t"),
                                {"t": PHASE2_START_MS}).scalar())  # fmt: skip


def test_worker_killed_mid_write_leaves_no_rows_and_the_run_is_retried(cluster: Cluster, reference) -> None:
    c = cluster
    engine = _store_engine(c)
    db_name = sa.make_url(c.env["CRYPTO4H_DB_URL"]).database
    try:
        with engine.connect() as conn:
            series = conn.execute(sa.text("SELECT id FROM candle_series WHERE symbol = 'CCC/USDT'")).scalar()
            assert series is not None, "phase 1 must have stored CCC/USDT (run the module's tests in order)"
            # a server-side check that the client is still there: a killed worker's transaction ends at once
            conn.exec_driver_sql(f"ALTER DATABASE \"{db_name}\" SET client_connection_check_interval = '250ms'")
        assert _phase2_rows(engine) == 0
        before = len(c.runs("ingest_candles"))

        locker = engine.connect().execution_options(isolation_level="READ COMMITTED")
        tx = locker.begin()
        locker.exec_driver_sql(f"LOCK TABLE candles_s{int(series)} IN SHARE MODE")  # blocks writes to CCC
        try:
            last = (HIST_START + timedelta(days=DAYS - 1)).isoformat()
            out = c.cli([sys.executable, "-m", "pipeline.backfill", "--start", PHASE2_START.isoformat(), "--end", last,
                         "--queue", "--workspace", str(c.workspace)])  # fmt: skip
            assert out.returncode == 0, out.stdout + out.stderr

            def blocked_writer() -> tuple[int, Any] | None:
                with engine.connect() as conn:
                    row = conn.execute(sa.text(
                        "SELECT pid, backend_xid FROM pg_stat_activity WHERE datname = :db AND "
                        "wait_event_type = 'Lock' AND backend_xid IS NOT NULL"), {"db": db_name}).first()  # fmt: skip
                return tuple(row) if row else None

            backend_pid, _ = c.wait_for(blocked_writer, 240, "the ingestion step to block on the CCC partition")
            run = c.runs("ingest_candles")[before]
            [step_pid] = c.step_pids(run.run_id)["candles"]
            assert step_pid in pool(c, "ingest-a")
            os.kill(step_pid, signal.SIGKILL)  # the worker's pool process, in the middle of its transaction
            killed_at = time.monotonic()

            def backend_gone() -> bool:
                with engine.connect() as conn:
                    return not conn.execute(sa.text("SELECT 1 FROM pg_stat_activity WHERE pid = :p"),
                                            {"p": backend_pid}).first()  # fmt: skip

            c.wait_for(backend_gone, 30, "PostgreSQL to end the killed worker's transaction", poll=0.2)
            aborted_s = time.monotonic() - killed_at
            assert _phase2_rows(engine) == 0, "rows of the killed step's transaction were committed"

            failed = c.wait_for(lambda: (r := c.runs("ingest_candles")[before]).status.value in ("FAILURE", "CANCELED")
                                and r, 120, "the run to fail")  # fmt: skip
            assert failed.status.value == "FAILURE"
            failed_s = time.monotonic() - killed_at
            text = "\n".join(str(e.dagster_event.event_specific_data) for e in c.events(failed.run_id)
                             if e.dagster_event is not None)  # fmt: skip
            assert "WorkerLostError" in text
        finally:
            tx.rollback()
            locker.close()

        def retry() -> Any:
            runs = [r for r in c.runs("ingest_candles") if r.tags.get("dagster/parent_run_id") == failed.run_id]
            return runs[0] if runs and runs[0].status.value in ("SUCCESS", "FAILURE", "CANCELED") else None

        again = c.wait_for(retry, 300, "the daemon's automatic re-execution of the failed run", poll=2)
        assert again.status.value == "SUCCESS", c.logs()
        print(f"\nfault: transaction aborted {aborted_s:.1f}s after the kill, run FAILURE after {failed_s:.1f}s, "
              f"retry SUCCESS after {time.monotonic() - killed_at:.1f}s (lock released at {failed_s:.1f}s)")
        assert again.tags.get("dagster/root_run_id") == failed.run_id
        steps = assert_steps_ran_on(c, again, pool(c, "ingest-a"))
        assert step_pid not in steps["candles"]
    finally:
        engine.dispose()
    assert candle_digest(c.env["CRYPTO4H_DB_URL"]) == candle_digest(reference["url"])


# --- 3. the sweep job: chunk steps on the research worker, identical to in process -------------------

SWEEP = {"strategy": "momentum_rank", "grid": {"max_positions": [1, 2, 3]}, "end": PHASE2_START.isoformat()}


def sweep_digest(url: str) -> dict[str, Any]:
    """The latest sweep's figures and every configuration's metrics, in bytes."""
    from pipeline.store import Store

    store = Store(url=url)
    try:
        sweep = store.sweeps.get(int(store.sweeps.list(limit=1)["id"].iloc[0]))
        with store._read() as conn:
            rows = conn.exec_driver_sql(
                f"SELECT config_id, metrics FROM sweep_configs WHERE sweep_id = {int(sweep['id'])} ORDER BY config_id"
            ).all()
        metrics = {int(i): json.dumps(m if isinstance(m, dict) else json.loads(m), sort_keys=True) for i, m in rows}
        return {"status": sweep["status"], "fingerprint": sweep["data_fingerprint"], "best": sweep["best_config_id"],
                "figures": [np.float64(np.nan if v is None else v).tobytes()
                            for v in (sweep["pbo"], sweep["deflated_sharpe"], sweep["spa_p_value"])],
                "configs": metrics}  # fmt: skip
    finally:
        store.dispose()


def test_sweep_chunks_run_on_research_workers_and_match_in_process(cluster: Cluster, reference, universe) -> None:
    """The sweep's plan, chunk and merge steps all run in the research worker's pool; the merged sweep
    (figures and every configuration's metrics) equals the same sweep executed in process."""
    from pipeline.defs.sweeps.config import SweepRequest
    from pipeline.defs.sweeps.jobs import sweep_run_config

    c = cluster
    config = sweep_run_config(SweepRequest(**SWEEP)).to_config_dict()
    before = len(c.runs("parameter_sweep"))
    proc = c.cli([str(Path(sys.executable).parent / "dagster"), "job", "launch", "-w", str(c.workspace), "-j",
                  "parameter_sweep", "--config-json", json.dumps(config)])  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    [run] = c.wait_runs("parameter_sweep", 1, 600, since=before)
    assert run.status.value == "SUCCESS", c.logs()
    steps = assert_steps_ran_on(c, run, pool(c, "research-a"))
    assert {"plan_sweep", "merge_sweep"} <= set(steps) and sum(k.startswith("sweep_chunk_") for k in steps) >= 2

    with pytest.MonkeyPatch.context() as mp:  # the same sweep in process on the reference database
        mp.setenv("CRYPTO4H_REPORTS_DIR", str(c.root / "reference-reports"))
        mp.setenv("CRYPTO4H_UNIVERSE", str(universe))
        defs = make_defs(universe, reference["url"])
        with dg.instance_for_test() as instance:
            local = defs.resolve_job_def("parameter_sweep").execute_in_process(
                instance=instance, run_config={**config, **QUIET})  # fmt: skip
        assert local.success
    assert sweep_digest(c.env["CRYPTO4H_DB_URL"]) == sweep_digest(reference["url"])
