"""Paper trading benchmark: ticks, the parity replay and the performance report at the synthetic live scale.

    .venv/bin/python benchmarks/bench_paper.py [--days 2] [--history-days 30]

Uses `config/universe.synthetic.yaml` (20 synthetic symbols, offline) and a temporary SQLite store: the
candles of `history-days` x 2 + `days` days are stored first, then hourly ticks run on a simulated clock
(candles landed 5 minutes before each), timed one by one; the first decision also fills the candle ledger.
Then the `paper_trading` job runs once in process (tick, parity check, revision check, performance).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
START = "2026-10-01 00:00"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2, help="days of hourly ticks (default 2)")
    parser.add_argument("--history-days", type=int, default=30, help="PaperConfig.history_days (default 30)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import dagster as dg
    import pandas as pd

    from pipeline.definitions import build_defs
    from pipeline.defs.paper.config import PaperConfig, run_config
    from pipeline.defs.paper.decisions import record_due
    from pipeline.defs.paper.settlement import settle_due
    from pipeline.resources import MarketDataResource
    from pipeline.store import Store
    from pipeline.universe import load_universe

    uni = load_universe(REPO / "config" / "universe.synthetic.yaml")
    provider = MarketDataResource().provider(uni)
    log = logging.getLogger("bench")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/store.db"
        os.environ.update(CRYPTO4H_DB_URL=url, CRYPTO4H_REPORTS_DIR=f"{tmp}/reports", DAGSTER_HOME=tmp)
        db = Store(url)
        db.migrate()
        first = pd.Timestamp(START, tz="UTC") + pd.Timedelta(minutes=15)
        t0 = time.monotonic()
        since = first - pd.Timedelta(days=2 * args.history_days)

        def land(until: pd.Timestamp, start: pd.Timestamp) -> None:
            frames = {s: provider.fetch_ohlcv(s, start, until, now=until) for s in uni.symbols}
            db.upsert_candles_many(frames, exchange=uni.exchange, source="synthetic:synthetic", synthetic=True)

        land(first - pd.Timedelta(minutes=5), since)
        print(f"stored {2 * args.history_days} days x {len(uni.symbols)} symbols in {time.monotonic() - t0:.1f}s")
        timings = []
        clock = first
        for _ in range(24 * args.days):
            land(clock - pd.Timedelta(minutes=5), clock - pd.Timedelta(hours=2))
            config = PaperConfig(as_of=clock.isoformat(), history_days=args.history_days, start=START)
            t1 = time.monotonic()
            done = record_due(db, uni, config, clock, simulated=True, run_id=None, log=log)
            settled = settle_due(db, uni, config, clock, log)
            timings.append((clock, len(done.recorded), len(settled["settled"]), time.monotonic() - t1))
            clock += pd.Timedelta(hours=1)
        head, rest = timings[0], timings[1:]
        print(f"first tick (fills the ledger): {head[3]:.2f}s ({head[1]} decisions)")
        deciding = [t[3] for t in rest if t[1]]
        other = [t[3] for t in rest if not t[1]]
        print(f"ticks with decisions: median {pd.Series(deciding).median():.2f}s, max {max(deciding):.2f}s "
              f"({len(deciding)} ticks)")  # fmt: skip
        print(f"ticks settling only: median {pd.Series(other).median():.2f}s ({len(other)} ticks)")
        defs = build_defs(uni, db_url=url)
        land(clock - pd.Timedelta(minutes=5), clock - pd.Timedelta(hours=2))
        with dg.instance_for_test() as instance:
            t2 = time.monotonic()
            result = defs.resolve_job_def("paper_trading").execute_in_process(
                instance=instance, raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}},
                            **run_config(as_of=clock.isoformat(), history_days=args.history_days, start=START)},
            )  # fmt: skip
            wall = time.monotonic() - t2
            steps = {}
            for event in instance.all_logs(result.run_id):
                de = event.dagster_event
                if de is not None and de.event_type_value in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE"):
                    steps.setdefault(de.step_key, []).append(event.timestamp)
        print(f"paper_trading job ({len(db.paper.decisions())} decisions in the book): {wall:.1f}s wall, "
              f"{'success' if result.success else 'FAILED'}")  # fmt: skip
        for step, stamps in steps.items():
            print(f"  {step}: {max(stamps) - min(stamps):.2f}s")
        db.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
