"""Hourly ingestion: one run per tick covering the current UTC day x every symbol.

`build_schedule_from_partitioned_job` cannot do this (its run key is the partition, its cron the daily
one), so this is a plain `@schedule` that requests a partition *range* (today, first symbol) ..
(today, last symbol): with the single-run backfill policy that is one process for the whole universe.
The tick just after midnight also re-reads yesterday, whose last hour closed after the 23:05 tick.
"""


import dagster as dg
import pandas as pd

from engine.timeframes import to_utc
from pipeline.defs.market_data.jobs import ingest_job
from pipeline.defs.market_data.partitions import range_tags
from pipeline.universe import Universe

CRON = "5 * * * *"  # five minutes past the hour: the previous hour's candles have all closed


def tick_dates(universe: Universe, at: pd.Timestamp) -> tuple | None:
    """(first_day, last_day) a tick at `at` ingests, or None when the universe has nothing to fetch."""
    today = at.date()
    first = (at - pd.Timedelta(minutes=65)).date()  # 00:05 -> include yesterday's last hour
    first = max(first, universe.start)
    if universe.last_date is not None:
        today = min(today, universe.last_date)
    if today < first:
        return None
    return first, today


def build_hourly_schedule(universe: Universe) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="hourly_ingest",
        cron_schedule=CRON,
        execution_timezone="UTC",
        job=ingest_job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every hour at :05, ingest the current UTC day's closed 5m candles for the whole "
        "universe in one run.",
    )
    def hourly_ingest(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        at = to_utc(context.scheduled_execution_time or pd.Timestamp.now(tz="UTC"), "scheduled time")
        if universe.last_date is not None and at.date() > universe.last_date:
            return dg.SkipReason(
                f"universe {universe.name!r} is historical (ends {universe.end}); nothing new to ingest. "
                "Use a live universe (e.g. CRYPTO4H_UNIVERSE=config/universe.synthetic.yaml) for hourly data."
            )
        days = tick_dates(universe, at)
        if days is None:
            return dg.SkipReason(f"{at.date()} is before the universe start {universe.start}")
        first, last = days
        return dg.RunRequest(
            run_key=f"ingest-{at:%Y-%m-%dT%H}",
            tags={**range_tags(universe, first, last), "crypto4h/tick": f"{at:%Y-%m-%dT%H:%M}Z"},
        )

    return hourly_ingest
