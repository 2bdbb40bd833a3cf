"""`adhoc_backtest`: a walk-forward run with the user's own settings (the "run backtest" page).

The typed `BacktestRequest` config makes the Launchpad form; the requests sensor fills the same config
from a YAML file. The run goes through `pipeline.results.run_and_record` like the scheduled backtests:
it is recorded in the store (kind `adhoc`, or `request` with the request key for exactly-once
bookkeeping), gets its home partition in `backtest_runs`, and its step output carries the same metadata.
"""

import dagster as dg

from pipeline.defs.backtests.config import BacktestRequest, strategy_name
from pipeline.defs.backtests.requests import build_engine_objects
from pipeline.defs.backtests.runs import publish_run
from pipeline.resources import StoreResource, UniverseResource
from pipeline.results import RunFailed, run_and_record
from pipeline.scaleout.executor import RESEARCH_QUEUE, executor_for, run_policy_tags
from pipeline.store import RequestAlreadyRecorded

OP_NAME = "run_backtest"
JOB_NAME = "adhoc_backtest"


@dg.op(
    name=OP_NAME,
    description="Run one walk-forward backtest with the given settings and record it in the store.",
    out=dg.Out(int, description="The store's backtest run id (-1 when the request was already recorded)."),
)
def run_backtest(
    context: dg.OpExecutionContext, config: BacktestRequest, store: StoreResource, universe: UniverseResource
) -> dg.Output[int]:
    uni = universe.load()
    db = store.get()
    kind = "request" if config.request_key else "adhoc"
    key = config.request_key or None
    if key and db.has_request(key):
        return _already_recorded(context, key)
    request = {**config.model_dump(), "strategy": strategy_name(config.strategy)}
    try:
        strategy, cfg, symbols = build_engine_objects(config, uni)
    except ValueError as exc:
        try:
            db.record_failed_backtest(strategy=request["strategy"], kind=kind, config=request,
                                      universe=list(config.universe), error=str(exc), request_key=key)  # fmt: skip
        except RequestAlreadyRecorded:
            return _already_recorded(context, key)
        raise dg.Failure(description=f"invalid backtest request: {exc}") from exc
    try:
        run = run_and_record(db, uni, strategy, cfg, kind=kind, symbols=symbols, request_key=key,
                             extra_config={"request": request})  # fmt: skip
    except RequestAlreadyRecorded:  # a concurrent run of the same request recorded it first
        return _already_recorded(context, key)
    except RunFailed as exc:
        raise dg.Failure(description=f"backtest failed: {exc}") from exc
    for note in run.notes:
        context.log.warning(note)
    context.log.info(f"run {run.run_id}: {strategy.name}, {run.period}")
    metadata = publish_run(context, run, f"{strategy.name}: equity and drawdown (run {run.run_id}, {kind})")
    if key:
        metadata["request_key"] = key
    return dg.Output(run.run_id, metadata=metadata)


def _already_recorded(context: dg.OpExecutionContext, key: str | None) -> dg.Output[int]:
    """A request the store already holds (a repeat, or a concurrent run that recorded it first): skip."""
    context.log.info(f"request {key} was already recorded; nothing to do (exactly once)")
    return dg.Output(-1, metadata={"skipped": "request already recorded", "request_key": key or ""})


@dg.job(
    name=JOB_NAME,
    description="Ad-hoc walk-forward backtest: fill the Launchpad form (strategy, params, universe, dates, "
    "window, shift, fees, slippage) and launch. The run's home is its partition of backtest_runs.",
    tags={"crypto4h/kind": "adhoc", **run_policy_tags()},
    # Celery profile: the backtest runs on a `research` worker; each ad-hoc run is one step, so many
    # requests spread over the research workers through the run queue
    executor_def=executor_for(RESEARCH_QUEUE),
)
def adhoc_backtest() -> None:
    run_backtest()


def request_run_config(req: BacktestRequest) -> dg.RunConfig:
    """The run config that launches `adhoc_backtest` with `req`."""
    return dg.RunConfig(ops={OP_NAME: req})
