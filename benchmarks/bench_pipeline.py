"""Pipeline benchmark: the hourly tick, a 30-day backfill and the demo, against the issue's targets.

    .venv/bin/python benchmarks/bench_pipeline.py [--days 30] [--skip-demo]

Uses `config/universe.synthetic.yaml` (20 synthetic symbols, offline), a temporary SQLite store and a
temporary DAGSTER_HOME (a copy of `dagster_home/dagster.yaml`), so nothing in the repo is touched.
Durations are the Dagster run's own RUN_START -> RUN_SUCCESS times (what the UI shows); the wall time of
the whole call is printed next to it. A daemon-launched run adds the start of a run process (a few
seconds for imports) on top.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TARGETS = {"hourly tick": 30.0, "hourly tick (daemon)": 30.0, "backfill": 180.0, "demo": 120.0}
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_seconds(instance, run_id: str) -> float:
    stats = instance.get_run_stats(run_id)
    return float(stats.end_time - stats.start_time)


def live_tick(tmp: Path, home: Path, tags: dict) -> dict:
    """Submit the tick's run through GraphQL to a real webserver + daemon; time queue -> success."""
    import signal
    import socket

    import dagster as dg
    import requests
    from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    bin_dir = Path(sys.executable).parent
    cmds = [[str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            [str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"]]  # fmt: skip
    procs = [subprocess.Popen(c, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True) for c in cmds]  # fmt: skip
    try:
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        deadline = time.monotonic() + 120
        run_id = None
        while run_id is None and time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                    run_id = client.submit_job_execution("ingest_candles", tags=tags)
            except (requests.RequestException, DagsterGraphQLClientError):
                time.sleep(1)
        assert run_id, "webserver did not accept the run"
        t0 = time.monotonic()
        while (status := client.get_run_status(run_id).value) not in ("SUCCESS", "FAILURE", "CANCELED"):
            assert time.monotonic() < deadline + 120, "run did not finish"
            time.sleep(0.5)
        wall = time.monotonic() - t0
        assert status == "SUCCESS", f"daemon-launched tick ended {status}"
        with dg.DagsterInstance.from_config(str(home)) as instance:
            seconds = run_seconds(instance, run_id)
        return {"seconds": seconds, "wall": wall,
                "detail": "same tick via GraphQL -> queue -> daemon -> run process (wall = submit to success)"}
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="backfill length in days (default 30)")
    parser.add_argument("--universe", default=str(REPO / "config" / "universe.synthetic.yaml"))
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--skip-live", action="store_true", help="skip the daemon-launched tick")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    tmp = Path(tempfile.mkdtemp(prefix="crypto4h-bench-"))
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    os.environ.update(
        DAGSTER_HOME=str(home),
        CRYPTO4H_DB_URL=f"sqlite:///{tmp / 'store.db'}",
        CRYPTO4H_UNIVERSE=args.universe,
        CRYPTO4H_REQUESTS_DIR=str(tmp / "requests"),
    )
    results: dict[str, dict] = {}
    try:
        import dagster as dg
        import pandas as pd

        from pipeline.definitions import build_defs
        from pipeline.defs.market_data.partitions import range_tags
        from pipeline.universe import load_universe

        uni = load_universe(args.universe)
        defs = build_defs(uni)
        ingest = defs.resolve_job_def("ingest_candles")
        n = len(uni.symbols)
        print(f"universe {uni.name}: {n} symbols ({uni.provider_kind}); store {os.environ['CRYPTO4H_DB_URL']}")

        with dg.DagsterInstance.get() as instance:
            # 1) backfill: days x all symbols in ONE partition-range run
            today = pd.Timestamp.now(tz="UTC").normalize()
            last = (today - pd.Timedelta(days=1)).date()
            first = last - timedelta(days=args.days - 1)
            t0 = time.monotonic()
            res = ingest.execute_in_process(instance=instance, tags=range_tags(uni, first, last), run_config=QUIET)
            wall = time.monotonic() - t0
            assert res.success, "backfill failed"
            parts = len(res.get_asset_materialization_events())
            results["backfill"] = {"seconds": run_seconds(instance, res.run_id), "wall": wall,
                                   "detail": f"{args.days} days x {n} symbols = {parts} partitions, 1 run"}  # fmt: skip

            # 2) the hourly tick: the schedule's RunRequest for yesterday 23:05 (a nearly full day)
            tick_at = today - pd.Timedelta(days=1) + pd.Timedelta(hours=23, minutes=5)
            ctx = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick_at.to_pydatetime(),
                                            repository_def=defs.get_repository_def())  # fmt: skip
            [req] = defs.resolve_schedule_def("hourly_ingest").evaluate_tick(ctx).run_requests
            t0 = time.monotonic()
            res = ingest.execute_in_process(instance=instance, tags=req.tags, run_config=QUIET)
            wall = time.monotonic() - t0
            assert res.success, "hourly tick failed"
            results["hourly tick"] = {"seconds": run_seconds(instance, res.run_id), "wall": wall,
                                      "detail": f"{len(res.get_asset_materialization_events())} partitions "
                                                f"({req.run_key}), checks included"}  # fmt: skip

            # 3) the research refresh the sensor launches after it (not a target, reported for context)
            t0 = time.monotonic()
            res = defs.resolve_job_def("refresh_research").execute_in_process(instance=instance, run_config=QUIET)
            wall = time.monotonic() - t0
            assert res.success, "refresh failed"
            results["research refresh"] = {"seconds": run_seconds(instance, res.run_id), "wall": wall,
                                           "detail": f"features, rankings, 2 backtests over {args.days} days"}

        # 3b) the same tick launched like the daemon does: webserver + daemon, GraphQL submit, run process
        if not args.skip_live:
            results["hourly tick (daemon)"] = live_tick(tmp, home, req.tags)

        # 4) the demo, from an existing environment, as `make demo` runs it (fresh store + instance)
        if not args.skip_demo:
            demo_home = tmp / "demo_home"
            demo_home.mkdir()
            shutil.copy(REPO / "dagster_home" / "dagster.yaml", demo_home / "dagster.yaml")
            env = {**os.environ, "DAGSTER_HOME": str(demo_home), "CRYPTO4H_DB_URL": f"sqlite:///{tmp / 'demo.db'}",
                   "PYTHONWARNINGS": "ignore"}  # fmt: skip
            env.pop("CRYPTO4H_UNIVERSE")
            t0 = time.monotonic()
            proc = subprocess.run([sys.executable, "-m", "pipeline.demo", "--quiet"], cwd=REPO, env=env,
                                  capture_output=True, text=True, timeout=600)  # fmt: skip
            wall = time.monotonic() - t0
            if proc.returncode:
                print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
                raise SystemExit("demo failed")
            results["demo"] = {"seconds": wall, "wall": wall, "detail": "python -m pipeline.demo (default universe)"}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n{'measure':<22} {'run s':>7} {'wall s':>7} {'target':>7}  verdict  detail")
    ok = True
    for name, r in results.items():
        target = TARGETS.get(name)
        verdict = "-" if target is None else ("PASS" if max(r["seconds"], r["wall"]) < target else "FAIL")
        ok &= verdict != "FAIL"
        tgt = f"< {target:.0f}" if target else ""
        print(f"{name:<22} {r['seconds']:>7.1f} {r['wall']:>7.1f} {tgt:>7}  {verdict:<7}  {r['detail']}")
    out = REPO / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "bench_pipeline.json").write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
