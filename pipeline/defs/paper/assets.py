"""`paper_trades` (one tick: record the due decisions, settle the closed windows) and `paper_performance`
(the paper equity against the backtest replayed over the same period).

Both write to (or read from) the store and return `MaterializeResult`s; the book lives in the store's
`paper_*` tables, never in an IO manager. The checks on `paper_trades` (parity, revisions) are in
`checks.py`; `paper_performance` runs only when the blocking parity check did not fail with ERROR.
"""


import dagster as dg
import pandas as pd

from pipeline.defs.paper.config import PaperConfig, clock
from pipeline.defs.paper.decisions import record_due
from pipeline.defs.paper.performance import figure, strategy_curve, summary_row
from pipeline.defs.paper.replay import replay
from pipeline.defs.paper.report import (
    DECISION_COLUMNS,
    SUMMARY_COLUMNS,
    open_trades_table,
    save_plot,
    settled_trades_table,
    typed,
)
from pipeline.defs.paper.settlement import resettle_revised, settle_due
from pipeline.metadata import fmt_ts, md_table
from pipeline.resources import StoreResource, UniverseResource

GROUP = "paper"
PAPER_TRADES = "paper_trades"
PAPER_PERFORMANCE = "paper_performance"


@dg.asset(
    name=PAPER_TRADES,
    group_name=GROUP,
    deps=["candles"],
    kinds={"sql"},
    description=(
        "The paper book, one tick at a time: at each decision time t on the shift grid, once the store holds "
        "the candles closed by t, every active strategy's picks (weight, entry price = close of the candle "
        "stamped t - 5m, score, rank, feature snapshot) are recorded exactly once; missed decision times are "
        "caught up from the stored candles and marked so. Trades are settled by the SPEC's rules once t + window "
        "has closed and its candles are stored. Strategy parameters: the store's registry (as the scheduled "
        "backtests). See docs/paper.md."
    ),
)
def paper_trades(
    context: dg.AssetExecutionContext, config: PaperConfig, store: StoreResource, universe: UniverseResource
) -> dg.MaterializeResult:
    uni, db = universe.load(), store.get()
    as_of, simulated = clock(config)
    context.log.info(f"paper tick at {fmt_ts(as_of)}{' (simulated clock)' if simulated else ''} for {uni.name!r}")
    try:
        done = record_due(db, uni, config, as_of, simulated=simulated, run_id=context.run.run_id, log=context.log)
    except ValueError as exc:  # bad settings (history shorter than the warm-up, a strategy's parameters)
        raise dg.Failure(description=f"paper tick cannot decide: {exc}", allow_retries=False) from exc
    settled = settle_due(db, uni, config, as_of, context.log)
    resettled = resettle_revised(db, uni, as_of, context.log) if config.resettle else []
    trades = db.paper.trades()
    why_not = done.waiting[0] if done.waiting else ("no decision time due since the last tick" if not done.recorded
                                                    else "")  # fmt: skip
    summary = (f"{len(done.recorded)} decisions recorded, {len(settled['settled'])} trades settled"
               + (f", {len(resettled)} re-settled" if resettled else "")
               + (f"; nothing (more) recorded: {why_not}" if why_not else ""))  # fmt: skip
    context.log.info(summary)
    metadata = {
        "clock": fmt_ts(as_of),
        "simulated_clock": dg.MetadataValue.bool(simulated),
        "summary": dg.MetadataValue.md(summary),
        "recorded": dg.MetadataValue.int(len(done.recorded)),
        "settled": dg.MetadataValue.int(len(settled["settled"])),
        "open_trades_count": dg.MetadataValue.int(int((trades["status"] == "open").sum())),
        "decisions_this_tick": typed(done.recorded, DECISION_COLUMNS),
        "open_trades": open_trades_table(trades),
        "settled_trades": settled_trades_table(trades),
    }
    if why_not:
        metadata["why_nothing_recorded"] = dg.MetadataValue.text(why_not)
    if settled["waiting"]:
        metadata["settlements_waiting"] = dg.MetadataValue.md("\n".join(f"- {w}" for w in settled["waiting"][:20]))
    if done.already:
        metadata["already_recorded"] = dg.MetadataValue.md("\n".join(f"- {w}" for w in done.already))
    if resettled:
        metadata["resettled"] = typed(resettled, ["strategy", "decision_time", "symbol", "old_return_pct",
                                                  "new_return_pct"])  # fmt: skip
    if done.failed:  # the other strategies' decisions and every settlement are recorded; say who failed
        raise dg.Failure(
            description=f"decisions failed for {sorted(done.failed)} (not recorded; a later tick catches them up "
            "once fixed): " + "; ".join(f"{k}: {v}" for k, v in done.failed.items()),
            metadata={**metadata, "failed": dg.MetadataValue.json(done.failed)},
        )
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    name=PAPER_PERFORMANCE,
    group_name=GROUP,
    deps=[PAPER_TRADES],
    kinds={"sql", "pandas"},
    description=(
        "Paper equity against the walk-forward backtest replayed over the same decision times on the stored "
        "candles: the non-compounded sleeve curve and the compounded sleeves (portfolio mode), per strategy, "
        "with a plot (PNG under the reports folder)."
    ),
)
def paper_performance(
    context: dg.AssetExecutionContext, store: StoreResource, universe: UniverseResource
) -> dg.MaterializeResult:
    uni, db = universe.load(), store.get()
    decisions, trades = db.paper.decisions(), db.paper.trades()
    if decisions.empty:
        return dg.MaterializeResult(metadata={"summary": dg.MetadataValue.md("No paper decision recorded yet.")})
    replays = replay(db, uni, decisions)
    curves, rows = {}, []
    for strategy, mine in decisions.groupby("strategy", sort=True):
        its_trades = trades.loc[trades["strategy"] == strategy]
        curves[strategy] = strategy_curve(mine, its_trades, [r for r in replays if r.strategy == strategy])
        rows.append(summary_row(strategy, curves[strategy], mine, its_trades))
    # the plot is named after the book's latest event, so each state of the book keeps its own picture
    last = pd.Timestamp(pd.concat([decisions["recorded_at"], decisions["settled_at"]]).dropna().max())
    metadata = {
        "paper_vs_backtest": typed(rows, SUMMARY_COLUMNS),
        "period": f"{fmt_ts(decisions['decision_time'].min())} .. {fmt_ts(decisions['decision_time'].max())}",
        "summary": dg.MetadataValue.md(md_table(rows, ["strategy", "settled_windows", "paper_total_return",
                                                       "backtest_total_return"])),  # fmt: skip
    }
    fig = figure(curves, "paper book (line) vs backtest replay (band), same decision times")
    if fig is not None:
        metadata.update(save_plot(fig, last, "equity", "paper vs backtest equity"))
    for row in rows:
        context.log.info(f"{row['strategy']}: {row['settled_windows']} settled windows, paper "
                         f"{row['paper_total_return']}, backtest {row['backtest_total_return']}")  # fmt: skip
    return dg.MaterializeResult(metadata=metadata)
