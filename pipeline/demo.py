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
import sys
import time
import warnings
from datetime import timedelta

#: the summary table: the verdict's numbers, units in the headers
SUMMARY = ("strategy", "run_id", "trade_count", "mean_window_return", "95% interval", "null_p_value",
           "benchmark_mean_window_return", "break_even_fee_bps", "total_return")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--universe", help="universe YAML (default: $CRYPTO4H_UNIVERSE or config/universe.yaml)")
    parser.add_argument("--days", type=int, default=30, help="days to backfill for a live universe (default 30)")
    parser.add_argument("--quiet", action="store_true", help="only print the summary (and errors)")
    args = parser.parse_args(argv)

    def say(text: str = "") -> None:
        if not args.quiet:
            print(text, flush=True)

    from pipeline.defs.market_data.backfill import resolve_dagster_home, run_error, run_in_process
    from pipeline.universe import UniverseConfigError, load_universe

    try:
        universe = load_universe(args.universe)
    except UniverseConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    home = resolve_dagster_home()  # absolute, even when DAGSTER_HOME was given relative
    warnings.filterwarnings("ignore")
    t0 = time.monotonic()

    import dagster as dg
    import pandas as pd

    from pipeline.definitions import build_defs
    from pipeline.defs.backtests.assets import SCHEDULED_KIND
    from pipeline.defs.backtests.requests import requests_dir
    from pipeline.defs.market_data.partitions import range_tags
    from pipeline.defs.research.jobs import REFRESH_JOB
    from pipeline.metadata import fmt_ts, fmt_value, text_table
    from pipeline.reports import reports_url, run_files
    from pipeline.results import latest_run
    from pipeline.store import StoreOpenError, open_store

    try:
        store = open_store()
    except StoreOpenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    requests_dir().mkdir(parents=True, exist_ok=True)  # the request sensor's inbox, ready for YAML specs
    say(f"store:    {store!r}")
    say(f"universe: {universe.name} ({len(universe.symbols)} symbols on {universe.exchange}, "
        f"provider {universe.provider_kind}) from {universe.source_path}")  # fmt: skip
    say(f"dagster:  DAGSTER_HOME={home}")
    defs = build_defs(universe)
    level = "CRITICAL" if args.quiet else "WARNING"
    logs = {"loggers": {"console": {"config": {"log_level": level}}}}
    instance = dg.DagsterInstance.get()

    last = universe.last_date or pd.Timestamp.now(tz="UTC").date()
    first = universe.start if universe.is_historical else max(universe.start, last - timedelta(days=args.days - 1))
    say(f"\n[1/2] backfilling {first} .. {last} x {len(universe.symbols)} symbols in one run ...")
    t1 = time.monotonic()
    ingest = run_in_process(defs, instance, range_tags(universe, first, last), log_level=level)
    rows = sum(store.candle_summary(universe.exchange, s)["rows"] for s in universe.symbols)
    say(f"      run {ingest.run_id[:8]}: {'success' if ingest.success else 'FAILED'} in "
        f"{time.monotonic() - t1:.1f}s; {rows} candles stored")  # fmt: skip
    for ev in ingest.get_asset_check_evaluations():
        if not ev.passed:
            say(f"      check {ev.check_name}: {ev.severity.value} - {ev.description or ''}")
    if not ingest.success:
        print(f"ingestion failed (run {ingest.run_id}): {run_error(ingest) or 'see the run in the UI (make ui)'}",
              file=sys.stderr)  # fmt: skip
        return 1

    say("[2/2] materialising features -> rankings, backtests -> performance -> comparison ...")
    t2 = time.monotonic()
    refresh = defs.resolve_job_def(REFRESH_JOB).execute_in_process(
        instance=instance, run_config=logs, raise_on_error=False
    )
    say(f"      run {refresh.run_id[:8]}: {'success' if refresh.success else 'FAILED'} in "
        f"{time.monotonic() - t2:.1f}s")  # fmt: skip
    if not refresh.success:
        print(f"research refresh failed (run {refresh.run_id}): "
              f"{run_error(refresh) or 'see the run in the UI (make ui)'}", file=sys.stderr)  # fmt: skip
        return 1

    summary, reports, period = [], [], ""
    for row in store.active_strategies():
        run = latest_run(store, row["name"], SCHEDULED_KIND)
        if run is None:
            continue
        run_id = int(run["id"])
        m = store.backtest_metrics(run_id)
        key = "mean_window_return"
        summary.append({"strategy": row["name"], "run_id": run_id, **m,
                        "95% interval": f"{fmt_value(m.get(key + '_ci_low'), key)} .. "
                                        f"{fmt_value(m.get(key + '_ci_high'), key)}"})  # fmt: skip
        windows = store.backtest_windows(run_id)
        if len(windows) and not period:
            period = (f"{fmt_ts(windows['decision_time'].iloc[0])} .. {fmt_ts(windows['decision_time'].iloc[-1])}, "
                      f"{len(windows)} decision times")  # fmt: skip
        files = run_files(run_id, row["name"])
        if files.html.is_file():
            reports.append(f"  {row['name']:<22} {files.html}")
    cfg = run["config"] if summary else {}
    print(f"\nWalk-forward backtests ({universe.name}, {cfg.get('window_hours', 4):g}h windows every "
          f"{cfg.get('shift_hours', 2):g}h, {cfg.get('fee_bps', 10):g} bps fee + {cfg.get('slippage_bps', 0):g} bps "
          f"slippage per side; decisions {period or '-'}):\n")  # fmt: skip
    print(text_table(summary, SUMMARY))
    print("\nmean_window_return: net return per window, 95% block-bootstrap interval; null_p_value: one-sided\n"
          "p-value of 'no better than random picks of the same count' (block bootstrap); benchmark: equal-weight universe; break-even fee per side.")
    if reports:
        print("\nHTML reports (open them in a browser; the reports server serves them on " + reports_url() + "):")
        print("\n".join(reports))
    print("\nLatest rankings (next 4 hours):")
    for row in store.active_strategies():
        ranking = store.latest_ranking(row["name"])
        if len(ranking):
            picks = ranking.loc[ranking["selected"], "symbol"].tolist()
            when = ranking["decision_time"].iloc[0]
            print(f"  {row['name']:<22} at {when:%Y-%m-%d %H:%M} UTC -> {', '.join(picks) or '(nothing passes the gates)'}")
    store.dispose()
    say(f"\ndone in {time.monotonic() - t0:.1f}s. Open the UI (webserver + daemon on 127.0.0.1:3000):\n"
        "    make ui\n"
        "then browse Assets (lineage, metadata, plots), Jobs > adhoc_backtest > Launchpad to run your own\n"
        "backtest, and Automation for the hourly schedule and the sensors. Backtest requests dropped as\n"
        f"YAML into {requests_dir()} run once (example: config/requests.example/).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
