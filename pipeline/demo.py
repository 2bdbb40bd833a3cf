"""`python -m pipeline.demo` (`make demo`): the whole platform on the embedded default, offline.

1. migrate the SQL store (SQLite `data/crypto4h.db` unless `CRYPTO4H_DB_URL` says otherwise);
2. backfill the universe's candle history in ONE partition-range run (`ingest_candles` + checks);
3. materialise the research graph (`refresh_research`: features, rankings, backtests, performance,
   comparison);
4. print a summary table and how to open the UI.

Runs go to the Dagster instance in `$DAGSTER_HOME` (default `dagster_home/`), so `make ui` shows them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from datetime import timedelta
from pathlib import Path

from pipeline.universe import REPO_ROOT

SUMMARY = ("strategy", "run_id", "trade_count", "win_rate", "avg_return", "max_drawdown_aggregated", "total_return")


def _table(rows: list[dict], columns: tuple[str, ...]) -> str:
    from pipeline.research import fmt_value

    cells = [[c for c in columns]] + [[fmt_value(r.get(c), c) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--universe", help="universe YAML (default: $CRYPTO4H_UNIVERSE or config/universe.yaml)")
    parser.add_argument("--days", type=int, default=30, help="days to backfill for a live universe (default 30)")
    parser.add_argument("--quiet", action="store_true", help="only print the summary")
    args = parser.parse_args(argv)

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore")
    t0 = time.monotonic()

    import dagster as dg
    import pandas as pd

    from pipeline.definitions import build_defs
    from pipeline.partitions import range_tags
    from pipeline.sensors import requests_dir
    from pipeline.store import Store
    from pipeline.universe import load_universe

    universe = load_universe(args.universe)
    requests_dir().mkdir(parents=True, exist_ok=True)  # the request sensor's inbox, ready for YAML specs
    store = Store(url=None)
    store.migrate()
    print(f"store:    {store!r}")
    print(f"universe: {universe.name} ({len(universe.symbols)} symbols on {universe.exchange}, "
          f"provider {universe.provider_kind}) from {universe.source_path}")
    print(f"dagster:  DAGSTER_HOME={home}")
    defs = build_defs(universe)
    logs = {"loggers": {"console": {"config": {"log_level": "WARNING" if args.quiet else "INFO"}}}}
    instance = dg.DagsterInstance.get()

    last = universe.last_date or pd.Timestamp.now(tz="UTC").date()
    first = universe.start if universe.is_historical else max(universe.start, last - timedelta(days=args.days - 1))
    print(f"\n[1/2] backfilling {first} .. {last} x {len(universe.symbols)} symbols in one run ...")
    t1 = time.monotonic()
    ingest = defs.resolve_job_def("ingest_candles").execute_in_process(
        instance=instance, tags=range_tags(universe, first, last), run_config=logs, raise_on_error=False
    )
    rows = sum(store.candle_summary(universe.exchange, s)["rows"] for s in universe.symbols)
    print(f"      run {ingest.run_id[:8]}: {'success' if ingest.success else 'FAILED'} in "
          f"{time.monotonic() - t1:.1f}s; {rows} candles stored")
    for ev in ingest.get_asset_check_evaluations():
        if not ev.passed:
            print(f"      check {ev.check_name}: {ev.severity.value} - {ev.description or ''}")
    if not ingest.success:
        print("ingestion failed: open the run in the UI (make ui) for the error", file=sys.stderr)
        return 1

    print("[2/2] materialising features -> rankings, backtests -> performance -> comparison ...")
    t2 = time.monotonic()
    refresh = defs.resolve_job_def("refresh_research").execute_in_process(
        instance=instance, run_config=logs, raise_on_error=False
    )
    print(f"      run {refresh.run_id[:8]}: {'success' if refresh.success else 'FAILED'} in "
          f"{time.monotonic() - t2:.1f}s")
    if not refresh.success:
        print("research refresh failed: open the run in the UI (make ui) for the error", file=sys.stderr)
        return 1

    summary = []
    for row in store.active_strategies():
        runs = store.list_backtests(strategy=row["name"], limit=1)
        if runs.empty:
            continue
        run_id = int(runs["id"].iloc[0])
        summary.append({"strategy": row["name"], "run_id": run_id, **store.backtest_metrics(run_id)})
    print(f"\nWalk-forward backtests ({universe.name}, 4h windows every 2h, 10 bps fee per side):\n")
    print(_table(summary, SUMMARY))
    print("\nLatest rankings (next 4 hours):")
    for row in store.active_strategies():
        ranking = store.latest_ranking(row["name"])
        if len(ranking):
            picks = ranking.loc[ranking["selected"], "symbol"].tolist()
            when = ranking["decision_time"].iloc[0]
            print(f"  {row['name']:<22} at {when:%Y-%m-%d %H:%M} UTC -> {', '.join(picks) or '(nothing passes the gates)'}")
    store.dispose()
    print(f"\ndone in {time.monotonic() - t0:.1f}s. Open the UI (webserver + daemon on 127.0.0.1:3000):\n"
          "    make ui\n"
          "then browse Assets (lineage, metadata, plots), Jobs > adhoc_backtest > Launchpad to run your own\n"
          "backtest, and Automation for the hourly schedule and the sensors. Backtest requests dropped as\n"
          f"YAML into {requests_dir()} run once (example: config/requests.example/).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
