"""Paper jobs: one tick of the paper book (record, settle, checks, performance)."""

from __future__ import annotations

import dagster as dg

PAPER_JOB = "paper_trading"

paper_job = dg.define_asset_job(
    PAPER_JOB,
    selection=dg.AssetSelection.groups("paper"),
    # light and sequential: record -> checks -> performance in one process
    executor_def=dg.in_process_executor,
    description="One paper tick: record the due decisions whose candles are stored, settle the closed windows, "
    "check parity against the backtest replay and candle revisions, then the paper-vs-backtest report. "
    "To simulate a tick, set ops.paper_trades.config.as_of (ISO UTC) in the Launchpad.",
    tags={"crypto4h/kind": "paper"},
)
