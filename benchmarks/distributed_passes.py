"""The timed passes of bench_distributed.py: worker passes timed from a cold queue, each step's timeline,
and the sweep part (the sweep with 1 and 2 research worker processes, then the machine's ceiling: the same
work in plain processes, no Dagster, no Celery)."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

DAGSTER = str(Path(sys.executable).parent / "dagster")

#: the sweep job: plan, CRYPTO4H_SWEEP_STEPS chunk steps (research queue), merge
SWEEP_JOB: str | None = "parameter_sweep"


def sweep_run_config(configs: int, symbols: list[str], first: date, last: date) -> dict[str, Any]:
    """Run config of a sweep of about `configs` configurations of macd_rsi_confluence over `symbols` x
    [first, last]: rsi_low x rsi_high x max_positions (2 values), sized to `configs`."""
    side = max(1, round((configs / 2) ** 0.5))
    grid = {"rsi_low": [30.0 + i for i in range(side)], "rsi_high": [55.0 + i for i in range(side)],
            "max_positions": [2, 3]}  # fmt: skip
    return {"ops": {"plan_sweep": {"config": {"strategy": "macd_rsi_confluence", "grid": grid,
                                              "universe": symbols, "end": (last + timedelta(days=1)).isoformat()}}}}


def step_timeline(c: Any, run_id: str) -> dict[str, list[float]]:
    """Per step: [queued, started, finished] seconds since the run started (queued: handed to the broker)."""
    marks: dict[str, dict[str, float]] = {}
    t0 = None
    for e in c.events(run_id):
        ev = e.dagster_event
        if (e.user_message or "").startswith("chunk timings"):
            print(f"  {e.step_key}: {e.user_message}", flush=True)
        if ev is None:
            continue
        if ev.event_type_value == "PIPELINE_START":
            t0 = e.timestamp
        if not ev.step_key:
            continue
        mark = marks.setdefault(ev.step_key, {})
        if ev.event_type_value == "ENGINE_EVENT" and (e.user_message or "").startswith("Submitting celery task"):
            mark["queued"] = e.timestamp
        elif ev.event_type_value in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE"):
            mark[ev.event_type_value] = e.timestamp
    t0 = t0 or min(m.get("queued", 0) for m in marks.values())
    return {k: [round(m[n] - t0, 1) if n in m else None for n in ("queued", "STEP_START", "STEP_SUCCESS")]
            for k, m in sorted(marks.items(), key=lambda kv: kv[1].get("STEP_START", 0))}  # fmt: skip


def machine_cpu() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot (/proc/stat)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, sum(ticks)


def process_cpu_s(pids: set[int]) -> float:
    """User + system CPU seconds of live processes."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def timed_pass(c: Any, queue: str, processes: int, job: str, count: int, submit: Any) -> dict[str, Any]:
    """Stop the queue's worker, submit `count` runs of `job`, wait until each has handed a step to the broker,
    then start the worker with `processes` processes and time until every run has finished."""
    import dagster as dg
    from celery_cluster import children, peak_rss_mb

    name = f"{queue}-a"
    c.stop_process(f"worker_{name}")
    before = len(c.runs(job))
    submit()

    def all_waiting() -> bool:
        runs = c.runs(job)[before:]
        return len(runs) == count and all(
            any("Submitting celery task" in (e.user_message or "") for e in c.events(r.run_id)) for r in runs)

    c.wait_for(all_waiting, 900, f"{count} {job} runs waiting for a worker", poll=2)
    load = os.getloadavg()[0]
    worker = c.start_worker(queue, processes, name)
    t0, cpu0 = time.monotonic(), machine_cpu()
    runs = c.wait_runs(job, count, 3600, since=before)
    seconds, cpu1 = time.monotonic() - t0, machine_cpu()
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), c.logs()
    pool = children(worker.pid)
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(max(peak_rss_mb(p) for p in pool)),
            # cores the worker processes used on average, and how busy the whole machine was (1 = every core)
            "worker_cores": round(process_cpu_s(pool) / seconds, 2),
            "machine_busy": round((cpu1[0] - cpu0[0]) / max(1, cpu1[1] - cpu0[1]), 2),
            "load_avg_before": round(load, 1), "load_avg_after": round(os.getloadavg()[0], 1)}  # fmt: skip


def seed_store(c: Any, uni: Any, symbols: list[str], first: date, last: date) -> int:
    """Write the sweep's candles straight into the store (the sweep reads the store, not Dagster's partitions;
    ingesting 10M candles through the pipeline would take the benchmark most of an hour)."""
    import pandas as pd

    from engine.data import make_provider
    from pipeline.store import Store

    provider = make_provider(uni.provider_kind, **uni.provider_options)
    start, end = pd.Timestamp(first, tz="UTC"), pd.Timestamp(last + timedelta(days=1), tz="UTC")
    db, total = Store(url=c.env["CRYPTO4H_DB_URL"]), 0
    try:
        db.migrate()
        for i in range(0, len(symbols), 10):
            frames = {s: provider.fetch_ohlcv(s, start, end, now=end) for s in symbols[i:i + 10]}
            total += db.upsert_candles_many(frames, exchange=uni.exchange, source=f"{provider.kind}:{uni.exchange}",
                                            synthetic=provider.synthetic)  # fmt: skip
    finally:
        db.dispose()
    return total


def sweep(c: Any, uni: Any, configs: int, symbols: int, days: int, first: date) -> dict[str, Any]:
    """The sweep with 1, then 2 research worker processes, on `symbols` x `days` (from `first`) ingested once."""
    chosen = list(uni.symbols[:symbols])
    last = first + timedelta(days=days - 1)
    t0 = time.monotonic()
    seeded = seed_store(c, uni, chosen, first, last)
    print(f"sweep data: {seeded:,} candles stored in {time.monotonic() - t0:.0f} s", flush=True)
    config = sweep_run_config(configs, chosen, first, last)
    n_configs = 2 * len(config["ops"]["plan_sweep"]["config"]["grid"]["rsi_low"]) ** 2
    out: dict[str, Any] = {"configurations": n_configs, "symbols": symbols, "days": days}
    for n in (1, 2):

        def submit() -> None:
            done = c.cli([DAGSTER, "job", "launch", "-w", str(c.workspace), "-j", SWEEP_JOB,
                          "--config-json", json.dumps(config)])  # fmt: skip
            assert done.returncode == 0, done.stderr[-2000:]

        out[f"{n}_worker"] = timed_pass(c, "research", n, SWEEP_JOB, 1, submit)
        out[f"{n}_worker"]["steps"] = step_timeline(c, c.runs(SWEEP_JOB)[-1].run_id)
        print(f"sweep, {n} worker process(es): {out[f'{n}_worker']}", flush=True)
    out["speedup"] = round(out["1_worker"]["seconds"] / out["2_worker"]["seconds"], 2)
    print(f"sweep speed-up 2 vs 1 research worker processes: {out['speedup']}x (target >= 1.6x)", flush=True)
    return out


def _ceiling_worker(args: tuple[str, str, list[str], str, dict[str, Any], Any]) -> dict[str, float]:
    """One plain process: load the universe from the store, prepare it, run its configurations (timed apart;
    the barrier lines the processes up so their phases overlap as the chunk steps' do)."""
    import pandas as pd

    from engine.backtest import WalkForwardConfig, prepare_histories
    from engine.sweep import plan_sweep, run_sweep_chunk
    from pipeline.store import Store

    url, exchange, symbols, end, grid, barrier = args
    cfg = WalkForwardConfig(end=pd.Timestamp(end))
    plan = plan_sweep("macd_rsi_confluence", grid)
    configs = plan[: len(plan) // 4]
    db = Store(url=url)
    barrier.wait()
    t0 = time.monotonic()
    candles = db.read_universe(exchange, symbols, end=pd.Timestamp(end))
    t1 = time.monotonic()
    histories = prepare_histories(candles, cfg.feature_timeframe)
    barrier.wait()
    t2 = time.monotonic()
    run_sweep_chunk(histories, "macd_rsi_confluence", configs, cfg)
    db.dispose()
    return {"load_s": round(t1 - t0, 2), "configurations_s": round(time.monotonic() - t2, 2)}


def ceiling(c: Any, uni: Any, configs: int, symbols: int, last: date) -> dict[str, Any]:
    """What this machine allows without Dagster or Celery: a quarter of the sweep (one chunk's work) in 1,
    then 2 plain processes at once, each loading the whole universe from the same PostgreSQL store."""
    import multiprocessing as mp

    grid = sweep_run_config(configs, [], last, last)["ops"]["plan_sweep"]["config"]["grid"]
    end = (last + timedelta(days=1)).isoformat()
    out: dict[str, Any] = {}
    for n in (1, 2):
        with mp.Manager() as manager:
            barrier = manager.Barrier(n)
            args = (c.env["CRYPTO4H_DB_URL"], uni.exchange, list(uni.symbols[:symbols]), end, grid, barrier)
            with mp.get_context("fork").Pool(n) as pool:
                out[f"{n}_process"] = pool.map(_ceiling_worker, [args] * n)
        print(f"ceiling, {n} plain process(es) at once: {out[f'{n}_process']}", flush=True)
    for phase in ("load_s", "configurations_s"):
        out[f"{phase[:-2]}_scaling"] = round(
            2 * out["1_process"][0][phase] / max(r[phase] for r in out["2_process"]), 2)
    print(f"ceiling: 2 processes do {out['load_scaling']}x the loading and {out['configurations_scaling']}x the "
          "configuration work of one in the same time (2.0 = perfect)", flush=True)
    return out
