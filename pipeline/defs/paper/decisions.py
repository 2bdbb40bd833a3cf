"""Recording paper decisions: which decision times a tick owes, whether the store holds their candles, and
one transaction per (strategy, decision time) with its picks and the ledger of what it read.

The picks come from `engine.paper.decide` (the engine's `rank_universe` on the information set); this
module only decides *when* and writes. Decision times are processed in time order and a tick stops at
the first one whose candles are not stored yet: the later ones cannot be ready either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipeline.defs.paper.config import PaperConfig, engine_config
from pipeline.defs.paper.timing import book_start, ceil_grid, due_times, mode, readiness
from pipeline.metadata import fmt_ts
from pipeline.results import active_strategies, load_candles
from pipeline.store.paper import PaperAlreadyRecorded
from pipeline.universe import Universe

#: ranking columns that are the decision itself, not its feature snapshot
DECISION_FIELDS = {"symbol", "decision_time", "eligible", "candidate", "selected", "rank", "score", "weight",
                   "reasons", "entry_price"}  # fmt: skip


@dataclass
class Recorded:
    """What a tick did about decisions: recorded rows, why it stopped, what a racing tick had done, and the
    strategies whose decision raised (left unrecorded: a later tick catches them up once fixed)."""

    recorded: list[dict[str, Any]] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    postponed: int = 0


def ms(ts: pd.Timestamp) -> int:
    return int(pd.Timestamp(ts).value // 1_000_000)


def trade_rows(ranking: pd.DataFrame) -> list[dict[str, Any]]:
    """The selected rows of a ranking as paper trades: pick, weight, score, entry price, feature snapshot."""
    if ranking.empty:
        return []
    chosen = ranking.loc[ranking["selected"].astype(bool)].sort_values("rank")
    snapshot = [c for c in chosen.columns if c not in DECISION_FIELDS]
    return [
        {"symbol": str(r["symbol"]), "rank": int(r["rank"]), "weight": float(r["weight"]), "score": float(r["score"]),
         "entry_price": float(r["entry_price"]), "features": {c: r[c] for c in snapshot}}
        for r in chosen.to_dict("records")
    ]  # fmt: skip


def _counts(ranking: pd.DataFrame) -> dict[str, int]:
    if ranking.empty:
        return {"n_eligible": 0, "n_candidates": 0, "n_selected": 0}
    return {"n_eligible": int(ranking["eligible"].astype(bool).sum()),
            "n_candidates": int(ranking["candidate"].astype(bool).sum()),
            "n_selected": int(ranking["selected"].astype(bool).sum())}  # fmt: skip


def record_due(db: Any, uni: Universe, config: PaperConfig, as_of: pd.Timestamp, *, simulated: bool,
               run_id: str | None, log: Any) -> Recorded:  # fmt: skip
    """Record every due decision whose candles are stored, oldest first (at most `max_decisions_per_run`)."""
    from engine.paper import candle_fingerprint, check_history, decide, history_start, prepare
    from engine.strategies import get_strategy
    from engine.timeframes import to_utc

    cfg = engine_config(config)
    check_history(config.history_days, cfg)
    now, shift = ms(as_of), cfg.shift_ms
    rows = {r["name"]: r for r in active_strategies(db)}
    strategies = {name: get_strategy(name, r["parameters"]) for name, r in rows.items()}
    recorded = db.paper.recorded_times()
    configured = ceil_grid(ms(to_utc(config.start, "PaperConfig.start")), shift) if config.start else None
    due: dict[int, list[str]] = {}
    for name in strategies:
        done = recorded.get(name, [])
        for t in due_times(done, book_start(done, configured, now, shift), now, shift):
            due.setdefault(t, []).append(name)
    times = sorted(due)
    out = Recorded()
    latest = db.paper.latest_closed(uni.exchange, uni.symbols, as_of) if times else {}
    seen_at = as_of.to_pydatetime()
    budget = config.max_decisions_per_run
    for i, t in enumerate(times):
        names = [n for n in due[t] if n not in out.failed]  # a strategy that raised sits out the rest of the tick
        if not names:
            continue
        if budget == 0:
            out.postponed = len(times) - i
            break
        budget -= 1
        when = pd.Timestamp(t, unit="ms", tz="UTC")
        ready = readiness(latest, t, now, config.max_wait_minutes * 60_000, f"decision at {fmt_ts(when)}")
        if not ready.ready:
            out.waiting.append(ready.why)
            log.info(f"nothing recorded for {fmt_ts(when)} and later: {ready.why}")
            break
        if ready.why:
            log.warning(ready.why)
        anchor = history_start(t, config.history_days)
        candles = load_candles(db, uni, start=pd.Timestamp(anchor, unit="ms", tz="UTC"), end=when)
        known = prepare(candles, when, cfg)  # the information set's features, once for every strategy
        inputs = {s: candle_fingerprint(df) for s, df in sorted(candles.items())}
        for name in names:
            try:
                ranking = decide(known, {name: strategies[name]}, when, cfg)[name]
            except Exception as exc:  # noqa: BLE001 - one strategy's bug must not stop the others' books
                out.failed.setdefault(name, f"{fmt_ts(when)}: {type(exc).__name__}: {exc}")
                log.error(f"{name} @ {fmt_ts(when)}: decision failed, not recorded: {exc}")
                continue
            label, why = mode(t, now, shift, config.late_after_minutes * 60_000)
            notes = [why, ready.why, f"simulated clock (as_of {fmt_ts(as_of)})" if simulated else ""]
            row = {
                "strategy": name, "decision_time": t, "params": dict(strategies[name].params),
                "config": cfg.to_dict(), "exchange": uni.exchange, "history_start": anchor, "inputs": inputs,
                **_counts(ranking), "mode": label, "recorded_at": seen_at, "note": "; ".join(filter(None, notes)),
                "run_id": run_id,
            }  # fmt: skip
            trades = trade_rows(ranking)
            try:
                decision_id = db.paper.record_decision(row, trades, candles, seen_at)
            except PaperAlreadyRecorded as exc:  # a concurrent tick recorded it first: exactly once
                out.already.append(str(exc))
                log.info(str(exc))
                continue
            picks = ", ".join(tr["symbol"] for tr in trades) or "(none)"
            log.info(f"{name} @ {fmt_ts(when)}: {label}, picks {picks}")
            out.recorded.append({"id": decision_id, "strategy": name, "decision_time": when, "mode": label,
                                 "n_eligible": row["n_eligible"], "n_selected": row["n_selected"], "picks": picks,
                                 "note": row["note"]})  # fmt: skip
    if out.postponed:
        log.warning(f"{out.postponed} more due decision times are left for the next ticks (max_decisions_per_run)")
    return out
