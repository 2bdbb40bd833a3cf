"""A child process for the crash and concurrency tests: one job executed in this process against the
instance in `$DAGSTER_HOME` and the store in `$CRYPTO4H_DB_URL` (what `python -m pipeline.backfill`
does by default).

    python reliability_child.py ingest 2024-03-13 2024-03-19
    python reliability_child.py backtest momentum_rank 2024-03-13

`$CRYPTO4H_TEST_GO`: write `ready-<pid>` beside that file, then wait for it (several children start together).
`$CRYPTO4H_TEST_HOLD_WRITE`: after the first symbol's rows are sent inside the write transaction, write
that file and wait to be killed. Prints one JSON line: run id, status, start and end (epoch seconds).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from datetime import date
from pathlib import Path

warnings.simplefilter("ignore")


def _hold_mid_write(marker: Path) -> None:
    from pipeline.store import candles

    real, calls = candles.write, []

    def held(*args, **kwargs):
        n = real(*args, **kwargs)
        calls.append(n)
        if len(calls) == 1:
            marker.write_text(str(os.getpid()))
            time.sleep(600)
        return n

    candles.write = held


def main(argv: list[str]) -> int:
    import dagster as dg

    from pipeline.definitions import build_defs
    from pipeline.defs.backtests.config import BacktestRequest
    from pipeline.defs.market_data.partitions import range_tags
    from pipeline.universe import load_universe

    uni = load_universe()
    defs = build_defs(uni)
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    if hold := os.environ.get("CRYPTO4H_TEST_HOLD_WRITE"):
        _hold_mid_write(Path(hold))
    if go := os.environ.get("CRYPTO4H_TEST_GO"):
        Path(go).with_name(f"ready-{os.getpid()}").write_text("")
        while not Path(go).exists():
            time.sleep(0.05)
    start = time.time()
    with dg.DagsterInstance.get() as instance:
        if argv[0] == "ingest":
            tags = range_tags(uni, date.fromisoformat(argv[1]), date.fromisoformat(argv[2]))
            result = defs.resolve_job_def("ingest_candles").execute_in_process(
                instance=instance, tags=tags, run_config=quiet, raise_on_error=False
            )
        else:
            req = BacktestRequest(strategy=argv[1], end=argv[2], warmup_bars=48)
            config = dg.RunConfig(ops={"run_backtest": req}).to_config_dict()
            result = defs.resolve_job_def("adhoc_backtest").execute_in_process(
                instance=instance, run_config={**config, **quiet}, raise_on_error=False
            )
        status = instance.get_run_by_id(result.run_id).status.value
    print(json.dumps({"run_id": result.run_id, "status": status, "start": start, "end": time.time()}))
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
