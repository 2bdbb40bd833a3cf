"""Settling paper trades: once `t + window` has closed and the window's candles are stored, each open trade
gets its exit, net return and drawdown from `engine.paper.settle` (the walk-forward's own outcome rules);
a decision whose trades are all settled gets its window return (`engine.paper.window_return`).

With `resettle`, trades whose window candles were revised since they were settled are settled again
from the stored (new) values; the earlier settlement is kept in the trade's `previous` column.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipeline.defs.paper.config import PaperConfig
from pipeline.defs.paper.timing import readiness
from pipeline.metadata import fmt_ts
from pipeline.results import stored_walk_forward_config
from pipeline.universe import Universe

PREVIOUS_FIELDS = ("status", "exit_time", "exit_price", "return_pct", "max_drawdown", "n_candles", "window_inputs",
                   "settled_at")  # fmt: skip


def combined_return(trades: pd.DataFrame) -> float:
    """A decision's window return from its trades (void ones count 0), added in symbol order like the
    walk-forward does."""
    from engine.paper import window_return

    if trades.empty:
        return 0.0
    ordered = trades.iloc[sorted(range(len(trades)), key=lambda i: str(trades["symbol"].iloc[i]))]
    return window_return(ordered["weight"].to_numpy(float), ordered["return_pct"].fillna(0.0).to_numpy(float),
                         (ordered["status"] == "void").to_numpy())  # fmt: skip


def settlement_values(window: pd.DataFrame, entry_price: float, t: pd.Timestamp, cfg: Any,
                      settled_at: pd.Timestamp) -> dict[str, Any]:  # fmt: skip
    """The columns a settlement writes (the engine's outcome, plus the fingerprint of what it read)."""
    from engine.paper import candle_fingerprint, settle

    s = settle(window, entry_price, t, cfg)
    return {
        "status": "void" if s.void else "settled",
        "exit_time": None if s.exit_time is None else int(s.exit_time.value // 1_000_000),
        "exit_price": s.exit_price,
        "return_pct": s.return_pct,
        "gross_return_pct": s.gross_return_pct,
        "max_drawdown": s.max_drawdown,
        "n_candles": s.n_candles,
        "window_inputs": candle_fingerprint(window),
        "settled_at": settled_at.to_pydatetime(),
    }


def settle_due(db: Any, uni: Universe, config: PaperConfig, as_of: pd.Timestamp, log: Any) -> dict[str, Any]:
    """Settle every open trade whose window has closed by `as_of` and whose candles are stored.

    Returns `{"settled": [rows], "waiting": [why]}`.
    """
    now = int(as_of.value // 1_000_000)
    pending = db.paper.unsettled_decisions(as_of)
    if pending.empty:
        return {"settled": [], "waiting": []}
    open_trades = db.paper.trades(status=["open"])
    latest = db.paper.latest_closed(uni.exchange, uni.symbols, as_of)
    wait_ms = config.max_wait_minutes * 60_000
    settled, waiting = [], []
    for d in pending.itertuples(index=False):
        cfg = stored_walk_forward_config(d.config)
        t = pd.Timestamp(d.decision_time)
        t_ms = int(t.value // 1_000_000)
        end = t_ms + cfg.window_ms
        if end > now:
            continue
        values, read = {}, {}
        for trade in open_trades.loc[open_trades["decision_id"] == d.id].itertuples(index=False):
            ready = readiness({trade.symbol: latest.get(trade.symbol)}, end, now, wait_ms,
                              f"settling {d.strategy} {trade.symbol} @ {fmt_ts(t)}")  # fmt: skip
            if not ready.ready and now < end + wait_ms:
                waiting.append(ready.why)
                continue
            window = db.read_candles(d.exchange, trade.symbol, start=t, end=pd.Timestamp(end, unit="ms", tz="UTC"))
            values[trade.symbol] = settlement_values(window, trade.entry_price, t, cfg, as_of)
            read[trade.symbol] = window
        has_open = (open_trades["decision_id"] == d.id).any()
        if has_open and not values:
            continue
        written = db.paper.settle_decision(int(d.id), d.exchange, values, read, as_of.to_pydatetime(), combined_return)
        for symbol in written:
            v = values[symbol]
            settled.append({"strategy": d.strategy, "decision_time": t, "symbol": symbol, "status": v["status"],
                            "return_pct": v["return_pct"], "max_drawdown": v["max_drawdown"]})  # fmt: skip
            log.info(f"settled {d.strategy} {symbol} @ {fmt_ts(t)}: {v['status']}, return {v['return_pct']}")
    return {"settled": settled, "waiting": waiting}


def resettle_revised(db: Any, uni: Universe, as_of: pd.Timestamp, log: Any) -> list[dict[str, Any]]:
    """Settle again the settled trades whose window candles differ from what their settlement read."""
    from engine.paper import candle_fingerprint

    revised = db.paper.revisions(uni.exchange)
    if revised.empty:
        return []
    done = db.paper.trades(status=["settled", "void"])
    out = []
    for (decision_id, exchange), group in done.groupby(["decision_id", "exchange"], sort=True):
        values, read, previous = {}, {}, {}
        for trade in group.itertuples(index=False):
            cfg = stored_walk_forward_config(trade.config)
            t = pd.Timestamp(trade.decision_time)
            end = t + pd.Timedelta(milliseconds=cfg.window_ms)
            hits = revised.loc[(revised["symbol"] == trade.symbol) & (revised["open_time"] >= t)
                               & (revised["open_time"] < end)]  # fmt: skip
            if hits.empty:
                continue
            window = db.read_candles(exchange, trade.symbol, start=t, end=end)
            if candle_fingerprint(window) == trade.window_inputs:
                continue  # already settled on these values
            before = {k: _plain(getattr(trade, k)) for k in PREVIOUS_FIELDS}
            previous[trade.symbol] = [*(trade.previous or []), before]
            values[trade.symbol] = settlement_values(window, trade.entry_price, t, cfg, as_of)
            read[trade.symbol] = window
            out.append({"strategy": trade.strategy, "decision_time": t, "symbol": trade.symbol,
                        "old_return_pct": trade.return_pct, "new_return_pct": values[trade.symbol]["return_pct"]})
            log.warning(f"re-settled {trade.strategy} {trade.symbol} @ {fmt_ts(t)}: window candles were revised")
        if values:
            db.paper.settle_decision(int(decision_id), exchange, values, read, as_of.to_pydatetime(), combined_return,
                                     previous=previous)  # fmt: skip
    return out


def _plain(value: Any) -> Any:
    """JSON-friendly copy of a settlement field for the `previous` audit list."""
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, float) and pd.isna(value):
        return None
    return value
