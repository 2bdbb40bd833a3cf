"""`parameter_sweep`: plan -> chunks of configurations on separate steps -> merge.

- `plan_sweep` validates the request against the engine (strategy, grid names and values, settings,
  symbols), checks which symbols have stored candles (an index probe, no read) and records the sweep
  (status running) with its plan.
- `sweep_chunk_<i>` (CRYPTO4H_SWEEP_STEPS of them, default 4) each run a contiguous share of the plan on
  the stored candles and write the engine's `SweepChunk` to the store: a distributed executor spreads
  these steps over workers; nothing passes through a worker's disk. The first chunk to load the candles
  records their fingerprint; every other chunk must load the same data. A process that runs several
  chunks of one sweep loads and prepares the candles once (`PREPARED`).
- `merge_sweep` reads every chunk back, merges them with the store's count of configurations tried for
  the strategy and universe (the deflated Sharpe's `n_trials`), records every configuration and the
  sweep's PBO / deflated Sharpe / SPA, writes the HTML report and materialises the sweep's home in
  `sweep_runs`.
Steps hand nothing to each other but the store: ops are chained by `Nothing` dependencies.
"""

import os
import threading
import time
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from pipeline.defs.sweeps.assets import publish_sweep
from pipeline.defs.sweeps.config import SweepRequest, validate_request
from pipeline.resources import StoreResource, UniverseResource
from pipeline.results import code_version, load_candles, run_config, tried_configs
from pipeline.scaleout.executor import RESEARCH_QUEUE, executor_for, run_policy_tags

SWEEP_JOB = "parameter_sweep"
STEPS = max(1, int(os.environ.get("CRYPTO4H_SWEEP_STEPS", "4") or 4))
#: steps that run the engine: the Celery executor routes them to the research queue
RESEARCH_TAGS = {"dagster-celery/queue": RESEARCH_QUEUE}


def run_key(context: dg.OpExecutionContext) -> str:
    """The sweep's key: the root run id, so a re-execution of failed chunks finds the same sweep."""
    return context.run.root_run_id or context.run_id


def _fingerprint(candles: dict[str, pd.DataFrame]) -> str:
    from engine.fingerprint import data_fingerprint

    return data_fingerprint(candles)


@dg.op(out=dg.Out(dg.Nothing, is_required=False), description="Validate the request, plan the configurations, "
       "record the sweep.")  # fmt: skip
def plan_sweep(context: dg.OpExecutionContext, config: SweepRequest, store: StoreResource,
               universe: UniverseResource):  # fmt: skip
    from engine.strategies import get_strategy
    from engine.sweep import plan_sweep as plan

    db, uni = store.get(), universe.load()
    key = config.request_key or None
    if key and db.sweeps.find(request_key=key) is not None:
        context.log.info(f"sweep request {key} was already recorded; nothing to do (exactly once)")
        return  # no output: the chunk and merge steps are skipped
    try:
        name, grid, cfg, symbols = validate_request(config, uni)
        configs = plan(name, grid, sample=config.sample or None, seed=config.seed)
    except ValueError as exc:
        raise dg.Failure(description=f"invalid sweep request: {exc}", allow_retries=False) from exc
    end = pd.Timestamp(cfg.end) if cfg.end is not None else uni.reference_time()
    present = sorted(db.symbols_with_candles(uni.exchange, symbols, end=end))  # no read: the chunks load them
    if not present:
        raise dg.Failure(description=f"no stored candles for {symbols} on {uni.exchange!r}: materialise `candles` first")
    base = {**run_config(cfg, get_strategy(name)), "end": end.isoformat(), "sample": config.sample,
            "seed": config.seed, "objective": config.objective}  # fmt: skip
    # the data fingerprint is fixed by the first chunk that loads the candles (SweepBook.claim_fingerprint)
    sweep_id = db.sweeps.create(strategy=name, universe=present, grid=grid, config=base, plan=configs,
                                n_chunks=STEPS, run_key=run_key(context), request_key=key,
                                data_fingerprint=None, code_version=code_version())  # fmt: skip
    context.log.info(f"sweep {sweep_id}: {len(configs)} configurations of {name} on {len(present)} symbols, "
                     f"{STEPS} chunk steps")  # fmt: skip
    context.add_output_metadata({"sweep_id": sweep_id, "configurations": len(configs), "chunk_steps": STEPS})
    yield dg.Output(None)


def _sweep_of(context: dg.OpExecutionContext, db: Any) -> tuple[dict[str, Any], Any]:
    """The sweep of this run and its walk-forward config."""
    from engine.backtest import WalkForwardConfig

    sweep = db.sweeps.find(run_key=run_key(context))
    if sweep is None:
        raise dg.Failure(description=f"no sweep recorded for run {run_key(context)}: the plan step did not run")
    fields = set(WalkForwardConfig.__dataclass_fields__)
    return sweep, WalkForwardConfig.from_dict({k: v for k, v in sweep["config"].items() if k in fields})


class _Prepared:
    """The last sweep's prepared histories in this process. A Celery worker process often runs several
    chunks of one sweep in a row: it loads and prepares the candles once (the load is the part of a chunk
    that does not scale with workers: every worker reads the whole universe from one database). Dropped
    CACHE_SECONDS after its last use, so an idle worker does not hold a universe in memory."""

    CACHE_SECONDS = 120.0

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.histories: Any = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def get(self, key: tuple) -> Any:
        with self._lock:
            return self.histories if self.key == key else None

    def put(self, key: tuple, histories: Any) -> None:
        with self._lock:
            self.key, self.histories = key, histories
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.CACHE_SECONDS, self.clear)
            self._timer.daemon = True
            self._timer.start()

    def clear(self) -> None:
        with self._lock:
            self.key, self.histories = None, None


PREPARED = _Prepared()


def _histories(context: dg.OpExecutionContext, db: Any, uni: Any, sweep: dict[str, Any], cfg: Any) -> Any:
    """The sweep's prepared histories: this process's copy when it has one, else loaded from the store and
    checked against the fingerprint the sweep's first chunk recorded."""
    from engine.backtest import prepare_histories

    # a sweep id alone is not unique in a process that serves several stores (tests, a second deployment):
    # the store, the id and the sweep's creation time together are
    key = (db.url, int(sweep["id"]), str(sweep["created_at"]), cfg.feature_timeframe)
    cached = PREPARED.get(key)
    if cached is not None:
        context.log.info("candles and features reused from this process's previous chunk of the sweep")
        return cached
    candles = load_candles(db, uni, symbols=sweep["universe"], end=pd.Timestamp(sweep["config"]["end"]))
    fingerprint = _fingerprint(candles)
    if fingerprint != db.sweeps.claim_fingerprint(int(sweep["id"]), fingerprint):
        raise dg.Failure(description=f"the stored candles changed while sweep {sweep['id']} ran (an ingestion ran "
                         "in between): re-launch the sweep", allow_retries=False)  # fmt: skip
    histories = prepare_histories(candles, cfg.feature_timeframe)
    PREPARED.put(key, histories)
    return histories


def build_chunk_op(index: int) -> dg.OpDefinition:
    @dg.op(name=f"sweep_chunk_{index}", ins={"planned": dg.In(dg.Nothing)}, tags=RESEARCH_TAGS, pool="sweep",
           description=f"Run share {index + 1} of the planned configurations and store the chunk.")  # fmt: skip
    def sweep_chunk(context: dg.OpExecutionContext, store: StoreResource, universe: UniverseResource) -> None:
        from engine.sweep import run_sweep_chunk

        db = store.get()
        sweep, cfg = _sweep_of(context, db)
        share = np.array_split(np.arange(sweep["n_configs"]), sweep["n_chunks"])[index]
        configs = [sweep["plan"][i] for i in share]
        if not configs:
            context.log.info("no configuration in this share")
            return
        t0 = time.monotonic()
        try:
            histories = _histories(context, db, universe.load(), sweep, cfg)
            t1 = time.monotonic()
            chunk = run_sweep_chunk(histories, sweep["strategy"], configs, cfg,
                                    progress=lambda done, total: context.log.info(f"{done}/{total} configurations"))  # fmt: skip
        except ValueError as exc:
            db.sweeps.fail(sweep["id"], f"chunk {index}: {exc}")
            raise dg.Failure(description=f"sweep {sweep['id']} chunk {index} failed: {exc}") from exc
        t2 = time.monotonic()
        db.sweeps.save_chunk(sweep["id"], index, chunk)
        seconds = {"load_and_features_s": t1 - t0, "configurations_s": t2 - t1, "save_s": time.monotonic() - t2}
        context.log.info("chunk timings: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
        context.add_output_metadata({"configurations": len(configs), "pid": os.getpid(),
                                     **{k: round(v, 2) for k, v in seconds.items()}})  # fmt: skip

    return sweep_chunk


def _config_rows(result: Any) -> list[dict[str, Any]]:
    """Every configuration: its grid values, its full run config (a trial) and its numeric metrics."""
    from engine.sweep import sweep_parameters

    params = set(sweep_parameters(result.strategy))
    rows = []
    for rec in result.table.to_dict("records"):
        strategy, cfg = result.walk_forward_config(int(rec["config_id"]))
        rows.append({
            "config_id": int(rec["config_id"]),
            "params": {k: rec[k] for k in result.varied},
            "config": run_config(cfg, strategy),
            "metrics": {k: v for k, v in rec.items() if k not in params and k != "config_id"
                        and isinstance(v, int | float) and not isinstance(v, bool)},
        })  # fmt: skip
    return rows


@dg.op(ins={f"chunk_{i}": dg.In(dg.Nothing) for i in range(STEPS)}, tags=RESEARCH_TAGS,
       description="Merge the chunks; PBO, deflated Sharpe, SPA; record and publish the sweep.")  # fmt: skip
def merge_sweep(context: dg.OpExecutionContext, store: StoreResource) -> int:
    from engine.sweep import merge_chunks
    from pipeline.results import trial_key

    db = store.get()
    sweep = db.sweeps.find(run_key=run_key(context))
    if sweep is None:
        raise dg.Failure(description=f"no sweep recorded for run {run_key(context)}")
    chunks = db.sweeps.chunks(sweep["id"])
    done = sum(len(c.configs) for c in chunks)
    if done != sweep["n_configs"]:
        db.sweeps.fail(sweep["id"], f"only {done} of {sweep['n_configs']} configurations were stored")
        raise dg.Failure(description=f"sweep {sweep['id']}: only {done} of {sweep['n_configs']} configurations "
                         "were stored; re-execute the failed chunk steps")  # fmt: skip
    objective = sweep["config"].get("objective", "mean_window_return")
    rows = _config_rows(merge_chunks(chunks, objective=objective))  # the table only; no statistics computed yet
    tried = tried_configs(db, sweep["strategy"], sweep["universe"]) | {trial_key(r["config"]) for r in rows}
    result = merge_chunks(chunks, n_trials=len(tried), objective=objective)
    summary = result.summary()
    db.sweeps.finish(sweep["id"], configs=rows, n_trials=len(tried), best_config_id=summary["best_config_id"],
                     pbo=summary["pbo"], deflated_sharpe=summary["deflated_sharpe"],
                     spa_p_value=summary["spa_p_value"], summary=summary)  # fmt: skip
    metadata = publish_sweep(context, sweep["id"], result)
    context.log.info(f"sweep {sweep['id']}: best #{summary['best_config_id']} {summary['best_params']}, "
                     f"PBO {summary['pbo']}, deflated Sharpe {summary['deflated_sharpe']}, SPA p {summary['spa_p_value']}")
    context.add_output_metadata(metadata)
    return int(sweep["id"])


chunk_ops = [build_chunk_op(i) for i in range(STEPS)]


@dg.job(
    name=SWEEP_JOB,
    description="Parameter sweep: Launchpad ops.plan_sweep.config = {strategy, grid, sample, seed, objective, "
    "universe, start, end, window_hours, ...}. The configurations run in chunk steps a distributed executor "
    "can spread; the merge step records PBO, deflated Sharpe and SPA. The sweep's home is its partition of "
    "sweep_runs.",
    # the embedded default runs the chunk steps in parallel processes; the Celery profile on research workers
    executor_def=executor_for(
        RESEARCH_QUEUE, default=dg.multiprocess_executor.configured({"max_concurrent": max(1, os.cpu_count() or 1)})
    ),
    tags={"crypto4h/kind": "sweep", **run_policy_tags()},
)
def parameter_sweep() -> None:
    planned = plan_sweep()
    merge_sweep(**{f"chunk_{i}": op(planned) for i, op in enumerate(chunk_ops)})


def sweep_run_config(req: SweepRequest) -> dg.RunConfig:
    """The run config that launches `parameter_sweep` with `req`."""
    return dg.RunConfig(ops={"plan_sweep": req})
