"""`python -m pipeline.strategies`: the strategy registry from a terminal (same rules as the
`configure_strategy` job).

    python -m pipeline.strategies list
    python -m pipeline.strategies set momentum_rank --inactive
    python -m pipeline.strategies set macd_rsi_confluence --active --param rsi_low=35 --param rsi_high=60
    python -m pipeline.strategies set macd_rsi_confluence --reset-params

Exit codes: 0 done, 2 bad arguments, an invalid parameter or an unusable store (one line, no traceback).
"""

from __future__ import annotations

import argparse
import sys

import yaml


def _param(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw)  # 35 -> int, 0.04 -> float, true -> bool


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.strategies", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="registered strategies, active flag, parameters, latest verdict")
    s = sub.add_parser("set", help="switch a strategy on/off and set its parameters")
    s.add_argument("name")
    onoff = s.add_mutually_exclusive_group()
    onoff.add_argument("--active", dest="active", action="store_const", const=True, default=None)
    onoff.add_argument("--inactive", dest="active", action="store_const", const=False)
    s.add_argument("--param", action="append", type=_param, default=[], metavar="NAME=VALUE")
    s.add_argument("--reset-params", action="store_true", help="start from the defaults")
    args = parser.parse_args(argv)

    from pipeline.defs.registry.assets import verdict_line
    from pipeline.defs.registry.changes import configure_strategy
    from pipeline.results import strategy_rows
    from pipeline.store import StoreOpenError, open_store

    try:
        db = open_store()
    except StoreOpenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "set":
            try:
                row = configure_strategy(db, args.name, active=args.active, params=dict(args.param),
                                         reset_params=args.reset_params)  # fmt: skip
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(f"{row['name']}: {'active' if row['active'] else 'inactive'}, parameters {row['parameters']}")
            return 0
        db.sync_strategies(strategy_rows())
        for row in db.all_strategies():
            verdict = verdict_line(db, row["name"])["latest verdict"]
            state = "active  " if row["active"] else "inactive"
            params = ", ".join(f"{k}={v}" for k, v in row["parameters"].items())
            print(f"{row['name']:<22} {state} {params}\n{'':<31}latest verdict: {verdict}")
        return 0
    finally:
        db.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
