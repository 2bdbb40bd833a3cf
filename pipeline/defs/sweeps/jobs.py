"""`parameter_sweep`: plan -> chunks of configurations on separate steps -> merge.

- `plan_sweep` validates the request against the engine (strategy, grid names and values, settings,
  symbols), fingerprints the candles it will use and records the sweep (status running) with its plan.
- `sweep_chunk_<i>` (CRYPTO4H_SWEEP_STEPS of them, default 4) each run a contiguous share of the plan on
  the stored candles (features computed once per step) and write the engine's `SweepChunk` to the store:
  a distributed executor spreads these steps over workers; nothing passes through a worker's disk.
- `merge_sweep` reads every chunk back, merges them with the store's count of configurations tried for
  the strategy and universe (the deflated Sharpe's `n_trials`), records every configuration and the
  sweep's PBO / deflated Sharpe / SPA, writes the HTML report and materialises the sweep's home in
  `sweep_runs`.
Steps hand nothing to each other but the store: ops are chained by `Nothing` dependencies.
"""

import os
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
    candles = load_candles(db, uni, symbols=symbols, end=end)
    if not candles:
        raise dg.Failure(description=f"no stored candles for {symbols} on {uni.exchange!r}: materialise `candles` first")
    base = {**run_config(cfg, get_strategy(name)), "end": end.isoformat(), "sample": config.sample,
            "seed": config.seed, "objective": config.objective}  # fmt: skip
    sweep_id = db.sweeps.create(strategy=name, universe=sorted(candles), grid=grid, config=base, plan=configs,
                                n_chunks=STEPS, run_key=run_key(context), request_key=key,
                                data_fingerprint=_fingerprint(candles), code_version=code_version())  # fmt: skip
    context.log.info(f"sweep {sweep_id}: {len(configs)} configurations of {name} on {len(candles)} symbols, "
                     f"{STEPS} chunk steps")  # fmt: skip
    context.add_output_metadata({"sweep_id": sweep_id, "configurations": len(configs), "chunk_steps": STEPS})
    yield dg.Output(None)


def _sweep_and_candles(context: dg.OpExecutionContext, db: Any, uni: Any) -> tuple[dict[str, Any], Any, dict]:
    """The sweep of this run, its walk-forward config and the candles it planned on (same fingerprint)."""
    from engine.backtest import WalkForwardConfig

    sweep = db.sweeps.find(run_key=run_key(context))
    if sweep is None:
        raise dg.Failure(description=f"no sweep recorded for run {run_key(context)}: the plan step did not run")
    fields = set(WalkForwardConfig.__dataclass_fields__)
    cfg = WalkForwardConfig.from_dict({k: v for k, v in sweep["config"].items() if k in fields})
    candles = load_candles(db, uni, symbols=sweep["universe"], end=pd.Timestamp(sweep["config"]["end"]))
    if _fingerprint(candles) != sweep["data_fingerprint"]:
        raise dg.Failure(description=f"the stored candles changed since sweep {sweep['id']} was planned (an "
                         "ingestion ran in between): re-launch the sweep", allow_retries=False)  # fmt: skip
    return sweep, cfg, candles


def build_chunk_op(index: int) -> dg.OpDefinition:
    @dg.op(name=f"sweep_chunk_{index}", ins={"planned": dg.In(dg.Nothing)}, tags=RESEARCH_TAGS, pool="sweep",
           description=f"Run share {index + 1} of the planned configurations and store the chunk.")  # fmt: skip
    def sweep_chunk(context: dg.OpExecutionContext, store: StoreResource, universe: UniverseResource) -> None:
        from engine.backtest import prepare_histories
        from engine.sweep import run_sweep_chunk

        db = store.get()
        sweep, cfg, candles = _sweep_and_candles(context, db, universe.load())
        share = np.array_split(np.arange(sweep["n_configs"]), sweep["n_chunks"])[index]
        configs = [sweep["plan"][i] for i in share]
        if not configs:
            context.log.info("no configuration in this share")
            return
        try:
            histories = prepare_histories(candles, cfg.feature_timeframe)
            chunk = run_sweep_chunk(histories, sweep["strategy"], configs, cfg,
                                    progress=lambda done, total: context.log.info(f"{done}/{total} configurations"))  # fmt: skip
        except ValueError as exc:
            db.sweeps.fail(sweep["id"], f"chunk {index}: {exc}")
            raise dg.Failure(description=f"sweep {sweep['id']} chunk {index} failed: {exc}") from exc
        db.sweeps.save_chunk(sweep["id"], index, chunk)
        context.add_output_metadata({"configurations": len(configs), "pid": os.getpid()})

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
