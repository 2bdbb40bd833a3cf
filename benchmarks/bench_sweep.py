"""Sweep speed and memory: 100 configurations of `macd_rsi_confluence` on 100 symbols x 365 days of 5m
candles (10.5M, synthetic, in memory), against one `run_walk_forward` on the same data and against running
the 100 configurations one by one.

Targets (issue 10): the sweep takes at most 10x one run (stretch 5x), peak memory at most 2.5 GB, and it
is at least 10x faster than one-by-one runs. One-by-one is timed on `--one-by-one` configurations and
extrapolated to all of them (each run computes its features and panel again, as a loop over
`run_walk_forward` would). Times are CPU seconds of this process (the machine is shared), wall in brackets.
Run: `.venv/bin/python benchmarks/bench_sweep.py [--symbols 100 --days 365 --one-by-one 5]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_walk_forward import synthetic_universe  # noqa: E402

from engine.backtest import WalkForwardConfig, run_walk_forward  # noqa: E402
from engine.strategies import get_strategy  # noqa: E402
from engine.sweep import plan_sweep, run_sweep  # noqa: E402

STRATEGY = "macd_rsi_confluence"
#: 5 x 5 x 4 = 100 configurations
GRID = {"rsi_low": [30, 35, 40, 45, 50], "rsi_high": [60, 65, 70, 75, 80], "max_positions": [1, 2, 3, 5]}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timer:
    def __enter__(self) -> Timer:
        self.cpu, self.wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu, self.wall = time.process_time() - self.cpu, time.perf_counter() - self.wall

    def __str__(self) -> str:
        return f"{self.cpu:.2f} s [{self.wall:.2f} s wall]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--one-by-one", type=int, default=5, help="configurations timed one by one")
    args = parser.parse_args()

    # warm-up on a small universe: imports and first-call costs are not charged to any timed run
    small = synthetic_universe(5, 20, seed=1)
    warm = run_sweep(small, STRATEGY, {"max_positions": [1, 2]}, WalkForwardConfig())
    warm.pbo, warm.spa, warm.deflated_sharpe  # noqa: B018
    run_walk_forward(small, get_strategy(STRATEGY), WalkForwardConfig())
    del small, warm

    universe = synthetic_universe(args.symbols, args.days)
    print(f"data: {args.symbols} symbols x {args.days} days = {sum(len(d) for d in universe.values()):,} candles, "
          f"rss {peak_rss_mb():.0f} MB")
    cfg = WalkForwardConfig()
    plan = plan_sweep(STRATEGY, GRID)

    with Timer() as sweep_t:
        sweep = run_sweep(universe, STRATEGY, GRID, cfg)
    peak = peak_rss_mb()
    print(f"sweep: {len(sweep.table)} configurations x {len(sweep.returns)} decision times in {sweep_t} "
          f"(features and panel once); peak rss {peak:.0f} MB")
    with Timer() as stats_t:
        pbo, spa, dsr = sweep.pbo, sweep.spa, sweep.deflated_sharpe
    print(f"overfitting statistics once per sweep: {stats_t} (PBO {pbo:.3f} over {sweep.overfitting().n_splits:,} "
          f"splits; SPA p {spa.p_value:.3f}, block {spa.block}, {spa.reps} reps; DSR "
          f"{'n/a' if dsr is None else f'{dsr.probability:.3f}'})")

    timers = []
    for _ in range(2):  # the faster of two: the ratio below is then the less flattering one
        with Timer() as t:
            single = run_walk_forward(universe, get_strategy(STRATEGY), cfg)
        timers.append(t)
    single_t = min(timers, key=lambda t: t.cpu)
    print(f"one run_walk_forward (default parameters, best of 2): {single_t}, {single.metrics['trade_count']:,} trades")
    del single

    chosen = plan[:: max(1, len(plan) // args.one_by_one)][: args.one_by_one]
    with Timer() as loop_t:
        for config in chosen:
            params = {k: v for k, v in config.items() if k in ("rsi_low", "rsi_high")}
            run_walk_forward(universe, get_strategy(STRATEGY, params),
                             dataclasses.replace(cfg, max_positions=config["max_positions"]))
    per_config = loop_t.cpu / len(chosen)
    one_by_one = per_config * len(plan)

    ratio = sweep_t.cpu / single_t.cpu
    speedup = one_by_one / sweep_t.cpu
    print(f"sweep / one run: {ratio:.2f}x; target <= 10x (stretch 5x) -> "
          f"{'OK (stretch met)' if ratio <= 5 else 'OK' if ratio <= 10 else 'MISSED'}")
    print(f"one by one: {per_config:.2f} s per configuration ({len(chosen)} timed, {loop_t}), extrapolated "
          f"{one_by_one:.0f} s for {len(plan)} -> sweep is {speedup:.1f}x faster; target >= 10x -> "
          f"{'OK' if speedup >= 10 else 'MISSED'}")
    print(f"per configuration inside the sweep: {(sweep_t.cpu - single_t.cpu) / (len(plan) - 1):.3f} s "
          f"(sweep minus one run, over the other configurations)")
    print(f"peak memory (process max RSS, data included): {peak_rss_mb():.0f} MB; target <= 2560 MB -> "
          f"{'OK' if peak_rss_mb() <= 2560 else 'MISSED'}")


if __name__ == "__main__":
    main()
