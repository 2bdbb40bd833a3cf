"""Distributed benchmark: what Celery costs per step, how the fan-out scales with workers, and the capacity
figures of docs/deploy.md. Runs the production profile on this machine (tests/pipeline/celery_cluster.py:
PostgreSQL instance and store, Redis broker, code server, daemon, Celery workers).

    .venv/bin/python benchmarks/bench_distributed.py [--parts overhead,scaling,capacity,sweep]
        [--repeat 3] [--blocks 4] [--block-symbols 10] [--days 60] [--adhoc-runs 4] [--json out.json]

- overhead: the same runs (ingest_candles: 2 steps, refresh_research: 2 steps) in process and on Celery
  workers; per-step overhead = (Celery run time - in-process run time) / steps, medians of --repeat, plus
  the queue latency (step submitted -> step started in a worker);
- scaling: a backfill of --blocks symbol blocks (one queued run each) executed by 1, then 2 ingest worker
  processes, timed from the moment the workers are ready with every block already waiting in the queue;
  prints the speed-up ratio, the peak memory of a worker process and the machine's load average;
- research: the same with --adhoc-runs ad-hoc walk-forward backtests on the research queue (CPU-bound
  engine work: the stand-in for the sweep until it lands);
- capacity: bytes per stored candle on PostgreSQL and SQLite, and read throughput, on the scaling data;
- sweep: the 200-configuration sweep on 100 symbols x 365 days with 1 and 2 research worker processes
  (the candles are written straight into the store first), with each step's timeline; then the ceiling:
  one chunk's work (load the universe from PostgreSQL, run a quarter of the configurations) in 1 and in 2
  plain processes at once, no Dagster, no Celery: how far this machine lets each phase scale.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "pipeline")]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
START = date(2024, 1, 1)
DAGSTER = str(Path(sys.executable).parent / "dagster")

from distributed_passes import ceiling, sweep, timed_pass  # noqa: E402 - benchmarks/ is on sys.path


def run_seconds(c: Any, run_id: str) -> float:
    with c.instance() as inst:
        stats = inst.get_run_stats(run_id)
    return float(stats.end_time - stats.start_time)


def queue_latencies(c: Any, run_id: str) -> list[float]:
    """Per step: seconds from 'Submitting celery task' (run process) to STEP_START (worker)."""
    submitted, started = {}, {}
    for e in c.events(run_id):
        ev = e.dagster_event
        if ev is None or not ev.step_key:
            continue
        if ev.event_type_value == "ENGINE_EVENT" and (e.user_message or "").startswith("Submitting celery task"):
            submitted[ev.step_key] = e.timestamp
        elif ev.event_type_value == "STEP_START":
            started[ev.step_key] = e.timestamp
    return [started[k] - submitted[k] for k in submitted if k in started]


def launch(c: Any, job: str, tags: dict[str, str] | None = None) -> None:
    args = [DAGSTER, "job", "launch", "-w", str(c.workspace), "-j", job]
    proc = c.cli([*args, "--tags", json.dumps(tags)] if tags else args)
    if proc.returncode != 0:
        raise RuntimeError(f"dagster job launch failed: {proc.stderr[-2000:]}")


def overhead(c: Any, defs: Any, uni: Any, repeat: int) -> dict[str, Any]:
    """In-process vs Celery for the same two jobs; the store work is identical (idempotent upserts)."""
    import dagster as dg

    from pipeline.defs.market_data.partitions import range_tags

    tags = range_tags(uni, START, START + timedelta(days=13), uni.symbols[:3])
    jobs = {"ingest_candles": tags, "refresh_research": {}}
    out: dict[str, Any] = {}
    for job, job_tags in jobs.items():
        local, remote, waits, steps = [], [], [], 0
        for i in range(repeat + 1):  # the first round warms caches and the store, and is not counted
            with c.instance() as inst:
                res = defs.resolve_job_def(job).execute_in_process(instance=inst, tags=job_tags, run_config=QUIET)
            assert res.success, f"in-process {job} failed"
            before = len(c.runs(job))
            launch(c, job, job_tags)
            [run] = c.wait_runs(job, 1, 600, since=before)
            assert run.status == dg.DagsterRunStatus.SUCCESS, f"celery {job} failed\n{c.logs()}"
            if i:
                local.append(run_seconds(c, res.run_id))
                remote.append(run_seconds(c, run.run_id))
                waits += queue_latencies(c, run.run_id)
            steps = len(c.step_pids(run.run_id))
        lo, hi = statistics.median(local), statistics.median(remote)
        out[job] = {"steps": steps, "in_process_s": round(lo, 2), "celery_s": round(hi, 2),
                    "overhead_per_step_s": round((hi - lo) / steps, 2),
                    "queue_latency_median_s": round(statistics.median(waits), 2)}  # fmt: skip
        print(f"overhead {job}: {out[job]}", flush=True)
    return out


def scaling(c: Any, uni: Any, blocks: int, block_symbols: int, days: int) -> dict[str, Any]:
    """The same-sized backfill (fresh days each pass, appends to existing series) with 1, then 2 ingest
    worker processes."""
    symbols = list(uni.symbols[3:3 + blocks * block_symbols])
    out: dict[str, Any] = {"candles_per_pass": len(symbols) * days * 288, "blocks": blocks}
    first = START + timedelta(days=14)
    proc = c.cli([sys.executable, "-m", "pipeline.backfill", "--start", first.isoformat(), "--end", first.isoformat(),
                  "--symbols", *symbols, "--quiet"])  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    start = first + timedelta(days=1)
    for n in (1, 2):
        end = start + timedelta(days=days - 1)
        args = [sys.executable, "-m", "pipeline.backfill", "--start", start.isoformat(), "--end", end.isoformat(),
                "--symbols", *symbols, "--block-size", str(block_symbols), "--queue", "--workspace", str(c.workspace)]

        def submit(args: list[str] = args) -> None:
            done = c.cli(args)
            assert done.returncode == 0, done.stdout + done.stderr

        res = timed_pass(c, "ingest", n, "ingest_candles", blocks, submit)
        res["candles_per_s"] = round(out["candles_per_pass"] / res["seconds"])
        out[f"{n}_worker"] = res
        print(f"ingest scaling, {n} worker process(es): {res}", flush=True)
        start = end + timedelta(days=1)
    out["speedup"] = round(out["1_worker"]["seconds"] / out["2_worker"]["seconds"], 2)
    print(f"ingest scaling speed-up 2 vs 1 worker processes: {out['speedup']}x", flush=True)
    return out


def research_scaling(c: Any, runs: int) -> dict[str, Any]:
    """Stand-in for the sweep until it lands: `runs` ad-hoc walk-forward backtests over the whole stored
    universe (CPU-bound engine work, one step each), executed by 1, then 2 research worker processes.
    Every run has its own fee, so none is reused from the store."""
    out: dict[str, Any] = {"runs": runs}
    for n in (1, 2):
        configs = [{"ops": {"run_backtest": {"config": {
            "strategy": ("macd_rsi_confluence", "momentum_rank")[i % 2], "fee_bps": 10.0 + 10 * n + i}}}}
            for i in range(runs)]  # fmt: skip

        def submit(configs: list[dict] = configs) -> None:
            for cfg in configs:
                done = c.cli([DAGSTER, "job", "launch", "-w", str(c.workspace), "-j", "adhoc_backtest",
                              "--config-json", json.dumps(cfg)])  # fmt: skip
                assert done.returncode == 0, done.stderr[-2000:]

        out[f"{n}_worker"] = timed_pass(c, "research", n, "adhoc_backtest", runs, submit)
        print(f"research scaling, {n} worker process(es): {out[f'{n}_worker']}", flush=True)
    out["speedup"] = round(out["1_worker"]["seconds"] / out["2_worker"]["seconds"], 2)
    print(f"research scaling speed-up 2 vs 1 worker processes: {out['speedup']}x", flush=True)
    return out


def capacity(c: Any, uni: Any, root: Path) -> dict[str, Any]:
    """Bytes per candle (PostgreSQL partitions with their index; SQLite file), universe read speed, and the
    Dagster instance's size per candle partition materialised (its event log grows with every partition)."""
    import dagster as dg
    import sqlalchemy as sa

    from pipeline.store import Store

    pg = Store(url=c.env["CRYPTO4H_DB_URL"])
    sqlite = Store(url=f"sqlite:///{root / 'capacity.db'}")
    sqlite.migrate()
    try:
        with pg.engine.connect() as conn:
            total = int(conn.execute(sa.text("SELECT count(*) FROM candles")).scalar())
            pg_bytes = int(conn.execute(sa.text(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c WHERE c.relname LIKE 'candles_s%' "
                "AND c.relkind = 'r'")).scalar())  # fmt: skip
        t0 = time.monotonic()
        frames = pg.read_universe(uni.exchange, list(uni.symbols))
        pg_read = total / (time.monotonic() - t0)
        sqlite.upsert_candles_many({s: f for s, f in frames.items() if len(f)}, exchange=uni.exchange,
                                   source="synthetic:synthetic", synthetic=True)  # fmt: skip
        with sqlite.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        t0 = time.monotonic()
        sqlite.read_universe(uni.exchange, list(uni.symbols))
        sqlite_read = total / (time.monotonic() - t0)
        sqlite_bytes = (root / "capacity.db").stat().st_size
    finally:
        pg.dispose()
        sqlite.dispose()
    materialized, cursor = 0, None
    with c.instance() as inst:
        while True:
            page = inst.fetch_materializations(dg.AssetKey("candles"), limit=10_000, cursor=cursor)
            materialized += len(page.records)
            if not page.has_more:
                break
            cursor = page.cursor
    admin = sa.create_engine(sa.make_url(c.env["CRYPTO4H_DB_URL"]).set(database=c.env["DAGSTER_PG_DB"]))
    try:
        with admin.connect() as conn:
            instance_bytes = int(conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar())
    finally:
        admin.dispose()
    out = {"candles": total, "pg_bytes_per_candle": round(pg_bytes / total, 1),
           "instance_bytes_per_partition": round(instance_bytes / max(1, materialized)),
           "sqlite_bytes_per_candle": round(sqlite_bytes / total, 1), "pg_read_per_s": round(pg_read),
           "sqlite_read_per_s": round(sqlite_read)}  # fmt: skip
    print(f"capacity: {out}", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="overhead,scaling,research,capacity,sweep",
                        help="research needs the data of scaling (run both)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--blocks", type=int, default=4, help="symbol blocks (runs) in the scaling backfill")
    parser.add_argument("--block-symbols", type=int, default=10)
    parser.add_argument("--days", type=int, default=60, help="days per scaling pass")
    parser.add_argument("--adhoc-runs", type=int, default=4, help="ad-hoc backtests per research pass")
    parser.add_argument("--sweep-configs", type=int, default=200, help="configurations of the sweep")
    parser.add_argument("--sweep-symbols", type=int, default=100)
    parser.add_argument("--sweep-days", type=int, default=365)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    warnings.filterwarnings("ignore")

    import yaml
    from celery_cluster import Cluster, flush_redis, pg_databases, redis_problem, url_text

    problem = redis_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="crypto4h-bench-dist-"))
    n_symbols = max(3 + args.blocks * args.block_symbols, args.sweep_symbols if "sweep" in parts else 0)
    scaling_days = 14 + 1 + 2 * args.days
    total_days = scaling_days + (args.sweep_days if "sweep" in parts else 0)
    universe = root / "universe.yaml"
    universe.write_text(yaml.safe_dump({
        "name": "bench-distributed", "exchange": "synthetic", "provider": {"kind": "synthetic", "options": {"seed": 5}},
        "symbols": [f"S{i:03d}/USDT" for i in range(n_symbols)], "start": START.isoformat(),
        "end": (START + timedelta(days=total_days)).isoformat() + "T00:00:00Z"}, sort_keys=False))  # fmt: skip
    results: dict[str, Any] = {}
    flush_redis()
    with pg_databases("instance", "store") as dbs:
        c = Cluster.create(root, dbs["instance"], dbs["store"], universe)
        instance_file = c.home / "dagster.yaml"  # let every block run at once (production: backfill limit 3)
        doc = yaml.safe_load(instance_file.read_text())
        for limit in doc["run_queue"]["tag_concurrency_limits"]:
            limit["limit"] = max(limit["limit"], args.blocks, args.adhoc_runs)
        doc["run_queue"]["max_concurrent_runs"] = max(doc["run_queue"]["max_concurrent_runs"],
                                                      args.blocks + args.adhoc_runs + 2)
        instance_file.write_text(yaml.safe_dump(doc))
        os.environ.update({"CRYPTO4H_DB_URL": url_text(dbs["store"]), "CRYPTO4H_UNIVERSE": str(universe),
                           "CRYPTO4H_REPORTS_DIR": str(root / "reports")})  # fmt: skip
        from pipeline.definitions import build_defs
        from pipeline.universe import load_universe

        uni = load_universe(universe)
        defs = build_defs(uni)
        try:
            c.start_services()
            c.start_worker("ingest", 1, "ingest-a")
            c.start_worker("research", 1, "research-a")
            c.cli([DAGSTER, "sensor", "stop", "refresh_after_candles", "-w", str(c.workspace)])
            print(f"cluster up in {root}", flush=True)
            if "overhead" in parts:
                results["overhead"] = overhead(c, defs, uni, args.repeat)
            if "scaling" in parts:
                results["scaling"] = scaling(c, uni, args.blocks, args.block_symbols, args.days)
            if "research" in parts:
                results["research"] = research_scaling(c, args.adhoc_runs)
            if "capacity" in parts:
                results["capacity"] = capacity(c, uni, root)
            if "sweep" in parts:
                results["sweep"] = sweep(c, uni, args.sweep_configs, args.sweep_symbols, args.sweep_days,
                                         START + timedelta(days=scaling_days))  # fmt: skip
                last = START + timedelta(days=scaling_days + args.sweep_days - 1)
                results["ceiling"] = ceiling(c, uni, args.sweep_configs, args.sweep_symbols, last)
        finally:
            c.stop()
            flush_redis()
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
