"""Render example reports from the bundled 2018 Binance sample, offline:

    python -m engine.report OUT_DIR [--start 2018-01-22 --end 2018-01-30]

writes one report per registered strategy and their comparison into OUT_DIR.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.backtest import WalkForwardConfig, prepare_histories, run_walk_forward
from engine.data.sample import load_sample_candles
from engine.report import write_comparison, write_report
from engine.strategies import get_strategy, list_strategies


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(prog="python -m engine.report", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the HTML files (created if missing)")
    parser.add_argument("--start", default="2018-01-22", help="first decision time, UTC")
    parser.add_argument("--end", default="2018-01-30", help="no trade reads data past this time, UTC")
    args = parser.parse_args(argv)
    cfg = WalkForwardConfig(start=args.start, end=args.end)
    histories = prepare_histories(load_sample_candles(), cfg.feature_timeframe)
    results = [run_walk_forward(histories, get_strategy(info.name), cfg) for info in list_strategies()]
    paths = [write_report(r, args.out / f"{r.strategy}.html") for r in results]
    paths.append(write_comparison(results, args.out / "comparison.html"))
    for p in paths:
        print(f"{p}  ({p.stat().st_size / 1e3:,.0f} kB)")
    return paths


if __name__ == "__main__":
    main()
