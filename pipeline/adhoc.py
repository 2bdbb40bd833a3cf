"""`adhoc_backtest`: a walk-forward run with the user's own settings.

The typed `BacktestRequest` config makes the Launchpad form the "run backtest" page; the requests sensor
fills the same config from a YAML file. Results go to the store (kind `adhoc`, or `request` with the
request key for exactly-once bookkeeping) and to the run's step metadata.
"""


import enum
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from pipeline.quality import fmt_ts
from pipeline.research import (
    SUMMARY_COLUMNS,
    TRADE_PREVIEW,
    equity_plot_markdown,
    frame_table,
    load_candles,
    md_table,
    record_result,
    summary_row,
)
from pipeline.resources import StoreResource, UniverseResource
from pipeline.universe import Universe

OP_NAME = "run_backtest"
JOB_NAME = "adhoc_backtest"


def _strategy_enum() -> type[enum.Enum]:
    """The engine's registered strategies as a config enum: the Launchpad offers them as a list and
    `validate_run_config` (the daemon) rejects any other name before a run starts."""
    from engine.strategies import list_strategies

    names = [info.name for info in list_strategies()]
    return enum.Enum("StrategyName", {n: n for n in names}, type=str)


StrategyName = _strategy_enum()
DEFAULT_STRATEGY = "macd_rsi_confluence" if "macd_rsi_confluence" in StrategyName.__members__ else next(
    iter(StrategyName.__members__)
)


def strategy_name(value: Any) -> str:
    """The plain strategy name of a config value (an enum member, or a string)."""
    return str(value.value if isinstance(value, enum.Enum) else value)


class BacktestRequest(dg.Config):
    """A walk-forward backtest request (Launchpad form, or a YAML file in the requests folder)."""

    strategy: StrategyName = Field(  # type: ignore[valid-type]
        default=StrategyName[DEFAULT_STRATEGY], description="Strategy (the engine's registry)."
    )
    params: dict[str, Any] = Field(default={}, description="Strategy parameters; omitted ones keep defaults.")
    universe: list[str] = Field(default=[], description="Symbols like ETH/BTC; empty = the configured universe.")
    start: str = Field(default="", description="First decision time (ISO date/time, UTC); empty = after warm-up.")
    end: str = Field(default="", description="No trade reads data past this time (ISO, UTC); empty = data end.")
    window_hours: float = Field(default=4, description="Holding window per decision, hours.")
    shift_hours: float = Field(default=2, description="Hours between decision times.")
    fee_bps: float = Field(default=10, description="Fee per side, basis points.")
    slippage_bps: float = Field(default=0, description="Slippage per side, basis points.")
    max_positions: int = Field(default=3, description="Symbols held per window (equal weights).")
    feature_timeframe: str = Field(default="1h", description="Bar size of the features.")
    warmup_bars: int = Field(default=0, description="Closed feature bars needed; 0 = engine default.")
    request_key: str = Field(default="", description="Set by the requests sensor: recorded once per key.")


def build_engine_objects(req: BacktestRequest, uni: Universe) -> tuple[Any, Any, list[str]]:
    """Validate a request against the engine and the universe: (strategy, WalkForwardConfig, symbols).

    Raises ValueError with a message for the user; the requests sensor calls this before launching.
    """
    from engine.backtest import WalkForwardConfig
    from engine.strategies import get_strategy

    strategy = get_strategy(strategy_name(req.strategy), dict(req.params))
    cfg = WalkForwardConfig(
        start=req.start or None,
        end=req.end or None,
        window_hours=req.window_hours,
        shift_hours=req.shift_hours,
        fee_bps=req.fee_bps,
        slippage_bps=req.slippage_bps,
        feature_timeframe=req.feature_timeframe,
        max_positions=req.max_positions,
        warmup_bars=req.warmup_bars or None,
    )
    symbols = list(req.universe) or list(uni.symbols)
    unknown = sorted(set(symbols) - set(uni.symbols))
    if unknown:
        raise ValueError(f"symbols {unknown} are not in universe {uni.name!r}; known: {list(uni.symbols)}")
    if len(set(symbols)) != len(symbols):
        raise ValueError(f"universe lists a symbol twice: {symbols}")
    return strategy, cfg, symbols


@dg.op(
    name=OP_NAME,
    description="Run one walk-forward backtest with the given settings and record it in the store.",
    out=dg.Out(int, description="The store's backtest run id."),
)
def run_backtest(
    context: dg.OpExecutionContext, config: BacktestRequest, store: StoreResource, universe: UniverseResource
) -> dg.Output[int]:
    from engine.backtest import run_walk_forward

    uni = universe.load()
    db = store.get()
    kind = "request" if config.request_key else "adhoc"
    key = config.request_key or None
    if key and db.has_request(key):
        context.log.info(f"request {key} was already recorded; nothing to do (exactly once)")
        return dg.Output(-1, metadata={"skipped": "request already recorded", "request_key": key})
    request = {**config.model_dump(), "strategy": strategy_name(config.strategy)}
    try:
        strategy, cfg, symbols = build_engine_objects(config, uni)
    except ValueError as exc:
        db.record_failed_backtest(
            strategy=request["strategy"], kind=kind, config=request, universe=list(config.universe),
            error=str(exc), request_key=key,
        )  # fmt: skip
        raise dg.Failure(description=f"invalid backtest request: {exc}") from exc
    # read enough history before `start` for the warm-up; `end` bounds what the engine may see
    end = pd.Timestamp(cfg.end) if cfg.end is not None else None
    candles = load_candles(db, uni, symbols=symbols, end=end)
    missing = sorted(set(symbols) - set(candles))
    if not candles:
        msg = f"no stored candles for {symbols} on {uni.exchange}: materialise `candles` first"
        db.record_failed_backtest(strategy=strategy.name, kind=kind, config=request, universe=symbols,
                                  error=msg, request_key=key)  # fmt: skip
        raise dg.Failure(description=msg)
    if missing:
        context.log.warning(f"no stored candles for {missing}; they are left out")
    try:
        result = run_walk_forward(candles, strategy, cfg)
        run_id = record_result(db, result, kind=kind, candles=candles, request_key=key,
                               extra_config={"request": request})  # fmt: skip
    except ValueError as exc:
        db.record_failed_backtest(strategy=strategy.name, kind=kind, config=request, universe=symbols,
                                  error=str(exc), request_key=key)  # fmt: skip
        raise dg.Failure(description=f"backtest failed: {exc}") from exc
    context.log.info(f"run {run_id}: {result.summary()}")
    row = summary_row(strategy.name, run_id, result.metrics)
    first = result.windows["decision_time"].iloc[0] if len(result.windows) else None
    last = result.windows["decision_time"].iloc[-1] if len(result.windows) else None
    metadata: dict[str, Any] = {
        "run_id": dg.MetadataValue.int(run_id),
        "kind": kind,
        "summary": dg.MetadataValue.md(md_table([row], ["strategy", "run_id", *SUMMARY_COLUMNS])),
        "decision_times": f"{fmt_ts(first)} .. {fmt_ts(last)} ({len(result.windows)})",
        "params": dg.MetadataValue.json(dict(result.params)),
        "config": dg.MetadataValue.json(cfg.to_dict()),
        "symbols": ", ".join(sorted(candles)),
        "trade_preview": dg.MetadataValue.md(frame_table(result.trades.tail(15), TRADE_PREVIEW)),
    }
    if key:
        metadata["request_key"] = key
    plot = equity_plot_markdown({strategy.name: result.windows}, f"{strategy.name}: equity and drawdown")
    if plot:
        metadata["equity_plot"] = dg.MetadataValue.md(plot)
    return dg.Output(run_id, metadata=metadata)


@dg.job(
    name=JOB_NAME,
    description="Ad-hoc walk-forward backtest: fill the Launchpad form (strategy, params, universe, dates, "
    "window, shift, fees, slippage) and launch.",
    tags={"crypto4h/kind": "adhoc"},
)
def adhoc_backtest() -> None:
    run_backtest()


def request_run_config(req: BacktestRequest) -> dg.RunConfig:
    """The run config that launches `adhoc_backtest` with `req`."""
    return dg.RunConfig(ops={OP_NAME: req})
