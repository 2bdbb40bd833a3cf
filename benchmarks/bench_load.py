"""Load benchmark (issue 9): ingest many symbols x days through the pipeline, then many backtest requests
at once through the request sensor, the run queue and the daemon.

    .venv/bin/python benchmarks/bench_load.py [--symbols 100] [--days 90] [--block 10] [--requests 20]
                                              [--request-symbols 25] [--db-url URL]

1. Ingestion: a synthetic universe of `--symbols` symbols over `--days` days (offline, deterministic) is
   ingested with `ingest_candles` partition-range runs of `--block` symbols x all days each (what
   `python -m pipeline.backfill` does), in this process against a temporary DAGSTER_HOME holding a copy
   of `dagster_home/dagster.yaml`, into a temporary SQLite store (or `--db-url`).
2. Requests: `--requests` YAML request files (both strategies, rotating symbol subsets of
   `--request-symbols`, the last 30 days) are dropped at once into the requests folder of a real
   `dagster-webserver` + `dagster-daemon`: the `backtest_requests` sensor launches them, the run queue
   runs them (`max_concurrent_runs` of the instance), every run is a separate run worker process.

Prints candles/s, runs/min, failures (target 0) and peak memory (this process; the largest run worker
and the sum of the services' process trees, sampled every 0.5 s from /proc). Nothing in the repo is
touched.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from datetime import date, timedelta
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
START = date(2024, 1, 1)


def universe_file(path: Path, symbols: int, days: int) -> Path:
    doc = {
        "name": f"load-{symbols}x{days}",
        "exchange": "synthetic",
        "provider": {"kind": "synthetic", "options": {"seed": 11}},
        "symbols": [f"L{i:03d}/USDT" for i in range(symbols)],
        "start": START.isoformat(),
        "end": (START + timedelta(days=days)).isoformat() + "T00:00:00Z",
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(root: int) -> list[int]:
    """`root` and every process below it (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


class MemorySampler(threading.Thread):
    """Peak of the summed RSS of some process trees, and of the largest single process in them."""

    def __init__(self, roots: list[int]) -> None:
        super().__init__(daemon=True)
        self.roots, self.peak_total_kb, self.peak_single_kb = roots, 0, 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            sizes = [rss_kb(p) for root in self.roots for p in descendants(root)]
            self.peak_total_kb = max(self.peak_total_kb, sum(sizes))
            self.peak_single_kb = max([self.peak_single_kb, *sizes])


def ingest(uni_path: Path, block: int) -> dict:
    import dagster as dg

    from pipeline.definitions import build_defs
    from pipeline.defs.market_data.partitions import range_tags
    from pipeline.universe import load_universe

    uni = load_universe(uni_path)
    defs = build_defs(uni)
    job = defs.resolve_job_def("ingest_candles")
    first, last = uni.start, _last_day(uni)
    symbols = list(uni.symbols)
    rows = runs = failures = 0
    t0 = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        for i in range(0, len(symbols), block):
            tags = range_tags(uni, first, last, symbols=symbols[i : i + block])
            t = time.monotonic()
            result = job.execute_in_process(instance=instance, tags=tags, run_config=QUIET, raise_on_error=False)
            runs += 1
            n = sum(int(e.materialization.metadata["run_rows"].value) for e in
                    result.get_asset_materialization_events()[:1])  # fmt: skip
            rows += n
            failures += not result.success
            print(f"  run {runs}: {len(symbols[i:i + block])} symbols x {(last - first).days + 1} days, {n:,} candles "
                  f"in {time.monotonic() - t:.1f}s ({'ok' if result.success else 'FAILED'})", flush=True)  # fmt: skip
    return {"rows": rows, "runs": runs, "failures": failures, "seconds": time.monotonic() - t0}


def _last_day(uni) -> date:
    from pipeline.defs.market_data.partitions import build_partitions_def

    keys = build_partitions_def(uni).get_partition_keys()
    return max(date.fromisoformat(k.split("|")[0]) for k in keys)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def requests_load(tmp: Path, env: dict, uni_path: Path, n: int, per: int) -> dict:
    import requests as http

    from pipeline.universe import load_universe

    uni = load_universe(uni_path)
    symbols, last = list(uni.symbols), _last_day(uni)
    folder = Path(env["CRYPTO4H_REQUESTS_DIR"])
    port = free_port()
    bin_dir = Path(sys.executable).parent
    cmds = {"webserver": [str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            "daemon": [str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"]}  # fmt: skip
    procs = {name: subprocess.Popen(cmd, cwd=REPO, env=env, stdout=open(tmp / f"{name}.log", "wb"),  # noqa: SIM115
                                    stderr=subprocess.STDOUT, start_new_session=True) for name, cmd in cmds.items()}  # fmt: skip
    sampler = MemorySampler([p.pid for p in procs.values()])
    sampler.start()
    query = """query { runsOrError(filter: {pipelineName: "adhoc_backtest"}) { ... on Runs { results { runId status
               startTime endTime tags { key value } } } } }"""
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if http.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                    break
            except http.RequestException:
                pass
            time.sleep(1)
        strategies = ["momentum_rank", "macd_rsi_confluence"]
        t0 = time.monotonic()
        for i in range(n):
            subset = [symbols[(i * per + k) % len(symbols)] for k in range(per)]
            doc = {"strategy": strategies[i % 2], "universe": subset, "fee_bps": 5 + i % 5,
                   "start": (last - timedelta(days=29)).isoformat(), "end": (last + timedelta(days=1)).isoformat()}  # fmt: skip
            (folder / f"load_{i:02d}.yaml").write_text(yaml.safe_dump(doc))
        results: list[dict] = []
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            body = http.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=30).json()
            results = body["data"]["runsOrError"]["results"]
            done = [r for r in results if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
            if len(done) >= n:
                break
            time.sleep(2)
        wall = time.monotonic() - t0
    finally:
        sampler.stop.set()
        for p in procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    ok = [r for r in results if r["status"] == "SUCCESS"]
    starts = [r["startTime"] for r in results if r["startTime"]]
    ends = [r["endTime"] for r in results if r["endTime"]]
    return {"launched": len(results), "succeeded": len(ok), "failures": len(results) - len(ok) + max(0, n - len(results)),
            "wall": wall, "busy": (max(ends) - min(starts)) if starts and ends else float("nan"),
            "peak_total_mb": sampler.peak_total_kb / 1024, "peak_single_mb": sampler.peak_single_kb / 1024}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--block", type=int, default=10, help="symbols per ingestion run")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--request-symbols", type=int, default=25)
    parser.add_argument("--db-url", default="", help="store URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="crypto4h-load-"))
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    (tmp / "requests").mkdir()
    uni_path = universe_file(tmp / "universe.yaml", args.symbols, args.days)
    env = {**os.environ, "DAGSTER_HOME": str(home), "CRYPTO4H_UNIVERSE": str(uni_path),
           "CRYPTO4H_DB_URL": args.db_url or f"sqlite:///{tmp / 'store.db'}", "CRYPTO4H_REQUESTS_DIR": str(tmp / "requests"),
           "CRYPTO4H_REPORTS_DIR": str(tmp / "reports"), "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}  # fmt: skip
    os.environ.update(env)
    try:
        print(f"ingesting {args.symbols} symbols x {args.days} days in runs of {args.block} symbols ...", flush=True)
        ing = ingest(uni_path, args.block)
        self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\n{args.requests} backtest requests ({args.request_symbols} symbols, 30 days each) through the sensor "
              "and the daemon ...", flush=True)  # fmt: skip
        req = requests_load(tmp, env, uni_path, args.requests, args.request_symbols)
        print("\n| measure | value |\n|---|---|")
        print(f"| candles ingested | {ing['rows']:,} in {ing['runs']} runs, {ing['seconds']:.0f} s |")
        print(f"| ingestion throughput | {ing['rows'] / ing['seconds']:,.0f} candles/s |")
        print(f"| ingestion failures | {ing['failures']} |")
        print(f"| ingestion peak memory (this process) | {self_mb:,.0f} MB |")
        print(f"| backtest requests | {req['launched']} launched, {req['succeeded']} succeeded |")
        print(f"| request failures | {req['failures']} |")
        print(f"| files dropped -> all runs finished | {req['wall']:.0f} s ({args.requests / req['wall'] * 60:.1f} runs/min) |")
        print(f"| first run start -> last run end | {req['busy']:.0f} s ({args.requests / req['busy'] * 60:.1f} runs/min) |")
        print(f"| peak memory: largest process | {req['peak_single_mb']:,.0f} MB |")
        print(f"| peak memory: webserver + daemon + run workers | {req['peak_total_mb']:,.0f} MB |")
        return 0 if ing["failures"] == 0 and req["failures"] == 0 else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
