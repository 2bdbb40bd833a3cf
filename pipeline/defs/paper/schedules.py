"""`paper_tick`: every hour at :15 (UTC), ten minutes after the hourly ingestion at :05, one paper tick.

Why a schedule rather than a sensor on candle materialisations: the tick must run even when no ingestion
finished (it settles windows, catches up missed decision times, and says what it is waiting for), and a
fixed cadence makes "late" measurable. Why hourly although decisions are on the 2h grid: when the candles
of a decision time land after its first tick, the next hour's tick records it (marked late) instead of
the next decision time's tick (caught up). Whether the candles are there is decided against the store,
never assumed from the clock; the run's clock is the wall clock when it executes (`as_of` empty).
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from engine.timeframes import to_utc
from pipeline.defs.paper.jobs import paper_job
from pipeline.universe import Universe

CRON = "15 * * * *"
TICK_TAG = "crypto4h/tick"


def build_paper_schedule(universe: Universe) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="paper_tick",
        cron_schedule=CRON,
        execution_timezone="UTC",
        job=paper_job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every hour at :15, one paper tick: record the decision times whose candles are stored, settle "
        "the windows that have closed, check parity with the backtest replay.",
    )
    def paper_tick(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        at = to_utc(context.scheduled_execution_time or pd.Timestamp.now(tz="UTC"), "scheduled time")
        if universe.last_date is not None and at.date() > universe.last_date:
            return dg.SkipReason(
                f"universe {universe.name!r} is historical (ends {universe.end}): no live decision to paper trade. "
                "Use a live universe (e.g. CRYPTO4H_UNIVERSE=config/universe.synthetic.yaml), or launch "
                "paper_trading with ops.paper_trades.config.as_of to replay ticks."
            )
        return dg.RunRequest(run_key=f"paper-{at:%Y-%m-%dT%H}", tags={TICK_TAG: f"{at:%Y-%m-%dT%H:%M}Z"})

    return paper_tick
