"""`python -m pipeline.backfill`: backfill candle partitions as partition-range runs, from the CLI.

    python -m pipeline.backfill --start 2018-01-10 --end 2018-01-30 [--symbols ETH/BTC LTC/BTC]
                                [--universe FILE] [--block-size N] [--days-per-run D]
                                [--queue [--workspace FILE]] [--quiet]

`dagster asset materialize -m pipeline.definitions --select candles --partition-range 'D1|A...D2|Z'`
also makes one run for one rectangle of partitions. This command adds what that one does not: it plans
the corner keys for you (any symbol list; symbols not adjacent in the universe order become one run per
adjacent block), runs `ingest_candles` (candles AND its checks), prints progress and the stored candle
counts, and exits with a code scripts can test. (`dagster job backfill -j ingest_candles` ignores the
single-run backfill policy and makes one run per partition: avoid it for candles.)

- default: the run executes in this process against the instance in `$DAGSTER_HOME` (default
  `dagster_home/`), so it shows in the UI like any other run; progress (one line per symbol fetched,
  the write, the checks) is printed as it goes, and the exit code is 0 on success, 1 when the run failed
  (e.g. refused data), 2 for bad arguments, a bad universe file or a store that cannot be opened;
- `--queue`: the same run is submitted to the instance's run queue (`dagster job launch` with the range
  tags; the daemon of `make ui` executes it) and the command returns at once.

`--symbols` must name universe symbols; a range covers symbols that are adjacent in the universe order,
so symbols that are not adjacent become one run per adjacent block (the plan is printed first).

Scale-out (docs/deploy.md): `--block-size N` cuts the symbols into blocks of N and `--days-per-run D` the
dates into spans of D days, one run each; with `--queue` the run queue executes them concurrently (up to
its `backfill` limit) and, in the Celery profile, each run's steps execute on `ingest` workers. Every run
is the same `ingest_candles` job: one ingestion code path. Backfill runs are tagged `crypto4h/kind=backfill`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import warnings
from datetime import date

from pipeline.defs.market_data.backfill import (
    BACKFILL_TAGS,
    plan,
    queue_command,
    resolve_dagster_home,
    run_error,
    run_in_process,
)
from pipeline.universe import REPO_ROOT

__all__ = ["main", "plan", "resolve_dagster_home", "run_error", "run_in_process"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.backfill", description=__doc__.splitlines()[0])
    parser.add_argument("--start", required=True, type=date.fromisoformat, help="first day (YYYY-MM-DD, UTC)")
    parser.add_argument("--end", required=True, type=date.fromisoformat, help="last day, inclusive")
    parser.add_argument("--symbols", nargs="+", help="symbols like ETH/BTC (default: the whole universe)")
    parser.add_argument("--universe", help="universe YAML (default: $CRYPTO4H_UNIVERSE or config/universe.yaml)")
    parser.add_argument("--block-size", type=int, default=0, help="at most N symbols per run (default: no cut)")
    parser.add_argument("--days-per-run", type=int, default=0, help="at most D days per run (default: no cut)")
    parser.add_argument("--queue", action="store_true", help="queue the run for the daemon instead of running here")
    parser.add_argument("--workspace", help="workspace file for --queue (default workspace.yaml; in a deployment "
                        "one pointing at the code server, e.g. deploy/workspace.yaml)")
    parser.add_argument("--quiet", action="store_true", help="no run log, only the plan and the result")
    args = parser.parse_args(argv)
    symbols = [s.strip() for arg in args.symbols or [] for s in arg.split(",") if s.strip()] or None

    from pipeline.universe import UniverseConfigError, load_universe

    try:
        universe = load_universe(args.universe)
        runs = plan(universe, args.start, args.end, symbols, block_size=args.block_size,
                    days_per_run=args.days_per_run)
    except (UniverseConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    home = resolve_dagster_home()
    n_days = (args.end - args.start).days + 1
    n_symbols = len(symbols or universe.symbols)
    print(f"backfill {args.start}..{args.end} x {n_symbols} symbols = {n_days * n_symbols} partitions of "
          f"{universe.name!r} in {len(runs)} run{'s' if len(runs) > 1 else ''} (DAGSTER_HOME={home})")  # fmt: skip
    for tags in runs:
        print(f"  range {tags['dagster/asset_partition_range_start']} .. {tags['dagster/asset_partition_range_end']}")
    if not args.queue and _celery_profile():
        print("note: CRYPTO4H_EXECUTOR=celery, but without --queue the runs execute in this process, one after "
              "the other; add --queue to run them on the workers")  # fmt: skip

    if args.queue:
        env = {**os.environ}
        if args.universe:
            env["CRYPTO4H_UNIVERSE"] = str(universe.source_path)
        for tags in runs:
            workspace = os.path.abspath(args.workspace) if args.workspace else None  # the command runs in the repo
            command = queue_command({**tags, **BACKFILL_TAGS}, workspace)
            proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"error: dagster job launch failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                return 1
            print(f"  queued: {proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else 'ok'}")
        print("the daemon runs queued runs: start it with `make ui` and watch Runs in the UI")
        return 0

    warnings.filterwarnings("ignore")
    import dagster as dg

    from pipeline.definitions import build_defs
    from pipeline.store import StoreOpenError, open_store

    try:
        store = open_store()
    except StoreOpenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    defs = build_defs(universe)
    failed = 0
    with dg.DagsterInstance.get() as instance:
        for tags in runs:
            result = run_in_process(defs, instance, {**tags, **BACKFILL_TAGS},
                                    log_level="CRITICAL" if args.quiet else "INFO")
            status = "success" if result.success else "FAILED"
            print(f"run {result.run_id}: {status}")
            for ev in result.get_asset_check_evaluations():
                if not ev.passed:
                    print(f"  check {ev.check_name}: {ev.severity.value} - {ev.description or ''}")
            if not result.success:
                failed += 1
                print(f"  error: {run_error(result) or 'see the run in the UI'}", file=sys.stderr)
    for symbol in symbols or universe.symbols:
        summary = store.candle_summary(universe.exchange, symbol)
        print(f"  {symbol:<14} {summary['rows']:>8} candles stored")
    store.dispose()
    return 1 if failed else 0


def _celery_profile() -> bool:
    from pipeline.scaleout.settings import ScaleOutConfigError, celery_enabled

    try:
        return celery_enabled()
    except ScaleOutConfigError:
        return False  # reported when the code location loads


if __name__ == "__main__":
    raise SystemExit(main())
