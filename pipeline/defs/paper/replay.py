"""The walk-forward backtest replayed over the paper period on the stored candles, and its comparison with
the paper book (the parity check), each difference traced to the data when the data explains it.

Decisions are replayed in groups that one walk-forward reproduces exactly: same strategy, parameters,
settings and feature history start (`engine.paper.history_start`). The replay reads the symbols the
group's decisions read, from that start to the last window's end, and runs `run_walk_forward` with the
decisions' own config. A difference is *explained* when what the paper decision or settlement read
(its stored fingerprint) is no longer what the store holds: a revised, added or removed candle.
Anything else (a strategy peeking ahead, a non-deterministic rule, a bug) is *unexplained*.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipeline.metadata import fmt_ts
from pipeline.results import stored_walk_forward_config
from pipeline.universe import Universe

DECISION_FIELDS = ("rank", "weight", "entry_price", "score")
SETTLEMENT_FIELDS = ("void", "exit_price", "return_pct", "max_drawdown", "exit_time")


@dataclass
class Replay:
    """One replayed group: its decisions, the walk-forward result (None when it could not run), the candles."""

    strategy: str
    decisions: pd.DataFrame
    result: Any
    candles: dict[str, pd.DataFrame]
    error: str | None = None


def _key(d: Any) -> tuple:
    return (d.strategy, json.dumps(d.params, sort_keys=True), json.dumps(d.config, sort_keys=True),
            int(pd.Timestamp(d.history_start).value // 1_000_000), d.exchange)  # fmt: skip


def replay(db: Any, uni: Universe, decisions: pd.DataFrame) -> list[Replay]:
    """One walk-forward per group of decisions (see the module docstring)."""
    from engine.backtest import run_walk_forward
    from engine.strategies import get_strategy

    out = []
    if decisions.empty:
        return out
    groups: dict[tuple, list[int]] = {}
    for i, d in enumerate(decisions.itertuples(index=False)):
        groups.setdefault(_key(d), []).append(i)
    for (strategy, params, config, start_ms, exchange), rows in groups.items():
        group = decisions.iloc[rows].sort_values("decision_time").reset_index(drop=True)
        cfg = stored_walk_forward_config(json.loads(config))
        first, last = group["decision_time"].iloc[0], group["decision_time"].iloc[-1]
        end = last + pd.Timedelta(milliseconds=cfg.window_ms)
        symbols = sorted({s for inputs in group["inputs"] for s in (inputs or {})})
        data = db.read_universe(exchange, symbols, start=pd.Timestamp(start_ms, unit="ms", tz="UTC"), end=end)
        candles = {s: df for s, df in data.items() if len(df)}
        try:
            wf_cfg = stored_walk_forward_config({**cfg.to_dict(), "start": first.isoformat(), "end": end.isoformat(),
                                                 "bootstrap_samples": 0})  # fmt: skip
            result = run_walk_forward(candles, get_strategy(strategy, json.loads(params)), wf_cfg)
            out.append(Replay(strategy, group, result, candles))
        except Exception as exc:  # noqa: BLE001 - reported as an unexplained difference of the whole group
            out.append(Replay(strategy, group, None, candles, f"{type(exc).__name__}: {exc}"))
    return out


def _same(a: Any, b: Any) -> bool:
    """Exact equality, NaN/None equal to each other (parity means bit-identical numbers)."""
    missing = [x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NaT for x in (a, b)]
    if all(missing):
        return True
    if any(missing):
        return False
    return bool(a == b)


def _inputs_changed(r: Replay, d: Any) -> list[str]:
    """Symbols whose candles in `[history_start, t)` differ from what the decision read."""
    from engine.paper import candle_fingerprint

    t = pd.Timestamp(d.decision_time)
    recorded = d.inputs or {}
    changed = []
    for symbol in sorted(set(recorded) | set(r.candles)):
        frame = r.candles.get(symbol)
        now = candle_fingerprint(frame.loc[frame["timestamp"] < t]) if frame is not None else {"n": 0, "sha": ""}
        before = recorded.get(symbol, {"n": 0, "sha": ""})
        if now["n"] != before["n"] or (now["n"] and now["sha"] != before["sha"]):
            changed.append(f"{symbol} ({before['n']} candles then, {now['n']} now)"
                           if now["n"] != before["n"] else f"{symbol} (values revised)")  # fmt: skip
    return changed


def _window_changed(r: Replay, symbol: str, t: pd.Timestamp, read: dict | None, window_ms: int) -> bool:
    """True when the symbol's candles of `[t, t + window)` differ from what the settlement read."""
    from engine.paper import candle_fingerprint

    frame = r.candles.get(symbol)
    if frame is None:
        return bool((read or {}).get("n"))
    part = frame.loc[(frame["timestamp"] >= t) & (frame["timestamp"] < t + pd.Timedelta(milliseconds=window_ms))]
    return candle_fingerprint(part) != read


def _decision_why(r: Replay, d: Any, cache: dict[int, str]) -> str:
    """Why a decision differs, computed once per decision: the changed inputs, or '' (unexplained)."""
    if d.id not in cache:
        changed = _inputs_changed(r, d)
        cache[d.id] = ("candles read by the decision changed since: " + ", ".join(changed)) if changed else ""
    return cache[d.id]


def _compare(r: Replay, d: Any, mine: pd.DataFrame, theirs: pd.DataFrame, counts: dict[str, int],
             cache: dict[int, str]) -> list[tuple[str, str, str, Any, Any, str]]:  # fmt: skip
    """(symbol, part, field, paper, replay, explanation) for every disagreement of one decision."""
    out = []
    for symbol in sorted(set(mine.index) ^ set(theirs.index)):
        out.append((symbol, "decision", "picked", symbol in mine.index, symbol in theirs.index,
                    _decision_why(r, d, cache)))  # fmt: skip
    window_ms = stored_walk_forward_config(d.config).window_ms
    for symbol in sorted(set(mine.index) & set(theirs.index)):
        p, q = mine.loc[symbol], theirs.loc[symbol]
        for fld in DECISION_FIELDS:
            if not _same(_value(p[fld]), _value(q[fld])):
                out.append((symbol, "decision", fld, p[fld], q[fld], _decision_why(r, d, cache)))
        if p["status"] == "open":
            continue
        counts["settled"] += 1
        paper = {"void": p["status"] == "void", "exit_price": p["exit_price"], "return_pct": p["return_pct"],
                 "max_drawdown": p["max_drawdown"], "exit_time": p["exit_time"]}  # fmt: skip
        for fld in SETTLEMENT_FIELDS:
            if not _same(_value(paper[fld]), _value(q[fld])):
                changed = _window_changed(r, symbol, pd.Timestamp(d.decision_time), p["window_inputs"], window_ms)
                why = "window candles changed since the settlement" if changed else _decision_why(r, d, cache)
                out.append((symbol, "settlement", fld, paper[fld], q[fld], why))
    return out


def differences(replays: list[Replay], paper_trades: pd.DataFrame) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Every field where the paper book and the replay disagree, with its explanation ('' = unexplained).

    Returns (rows, counts of compared decisions, trades and settled trades).
    """
    rows: list[dict[str, Any]] = []
    counts = {"decisions": 0, "trades": 0, "settled": 0}
    cache: dict[int, str] = {}
    for r in replays:
        for d in r.decisions.itertuples(index=False):
            counts["decisions"] += 1
            t = pd.Timestamp(d.decision_time)
            if r.result is None:
                found = [("-", "decision", "replay", "recorded", f"could not run: {r.error}", "")]
            else:
                mine = paper_trades.loc[paper_trades["decision_id"] == d.id].set_index("symbol")
                theirs = r.result.trades.loc[r.result.trades["decision_time"] == t].set_index("symbol")
                counts["trades"] += len(mine)
                found = _compare(r, d, mine, theirs, counts, cache)
            for symbol, part, fld, paper, replayed, why in found:
                rows.append({"strategy": d.strategy, "decision_time": t, "symbol": symbol, "part": part,
                             "field": fld, "paper": _text(paper), "replay": _text(replayed),
                             "explanation": why})  # fmt: skip
    return rows, counts


def _value(x: Any) -> Any:
    if isinstance(x, pd.Timestamp):
        return None if pd.isna(x) else int(x.value)
    if hasattr(x, "item"):
        return x.item()
    return x


def _text(x: Any) -> str:
    if isinstance(x, pd.Timestamp):
        return fmt_ts(x)
    if isinstance(x, float):  # numpy floats included: shown as plain Python floats, every digit
        return "-" if math.isnan(x) else repr(float(x))
    return str(x)
