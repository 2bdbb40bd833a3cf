"""Live ranking: what a strategy would pick at one decision time, and why each symbol passed or failed.

Uses exactly the backtest's evaluation step (`engine.backtest.evaluate`), so a ranking and the backtest
decision at the same time and data are identical.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from engine.backtest.config import WalkForwardConfig
from engine.backtest.evaluate import evaluate, gate_reasons, require_risk_objects
from engine.backtest.panel import PreparedHistories, SymbolHistory, build_panel, prepare_histories
from engine.features import default_warmup_bars
from engine.risk import Allocator
from engine.schemas import BASE_MS
from engine.strategies.base import TradingStrategy
from engine.timeframes import ms_to_timestamp, to_utc

RANKING_COLUMNS = ["symbol", "decision_time", "eligible", "candidate", "selected", "rank", "score", "weight", "reasons"]


def latest_decision_time(histories: Mapping[str, SymbolHistory], shift_ms: int) -> pd.Timestamp | None:
    """The last decision time on the shift grid at which the newest candle had closed."""
    ends = [int(h.ts[-1]) + BASE_MS for h in histories.values() if len(h.ts)]
    if not ends:
        return None
    last_close = max(ends)
    return ms_to_timestamp(last_close - last_close % shift_ms)


def rank_universe(
    candles_by_symbol: Mapping[str, pd.DataFrame] | PreparedHistories,
    strategy: TradingStrategy,
    *,
    at: object = None,
    cfg: WalkForwardConfig | None = None,
    allocator: Allocator | None = None,
) -> pd.DataFrame:
    """One row per symbol at decision time `at` (default: the latest one the data supports).

    Columns: symbol, decision_time, eligible, candidate, selected, rank (1 = best candidate), score,
    weight, reasons ('' when every gate passed) and the feature snapshot. Rows are ordered by rank, then
    score. `candles_by_symbol` may be `prepare_histories(...)` (features shared with backtests).
    `allocator` replaces the sizing rule, as in `run_walk_forward`.
    """
    cfg = cfg or WalkForwardConfig()
    warmup = cfg.warmup_bars or default_warmup_bars()
    risk, allocator = require_risk_objects(strategy, warmup, cfg.max_positions, cfg=cfg, allocator=allocator)
    histories = prepare_histories(candles_by_symbol, cfg.feature_timeframe)
    feats = histories.feature_cols
    when = latest_decision_time(histories, cfg.shift_ms) if at is None else to_utc(at, "rank_universe(at=)")
    if when is None:
        return pd.DataFrame(columns=RANKING_COLUMNS)
    t_ms = np.array([when.value // 1_000_000], dtype=np.int64)
    panel, _future = build_panel(histories, t_ms, cfg.window_ms, feature_cols=feats, warmup_bars=warmup,
                                 eligible_only=False)  # outcomes are discarded: no future at decision time
    ev = evaluate(panel, strategy, risk, allocator)
    ev["reasons"] = gate_reasons(ev, strategy)
    ev["symbol"] = ev["symbol"].astype(str)
    missing = sorted(set(histories) - set(ev["symbol"]))
    if missing:
        filler = pd.DataFrame({"symbol": missing, "decision_time": when, "eligible": False, "candidate": False,
                               "selected": False, "weight": 0.0, "reasons": "no closed bar before t"})
        ev = pd.concat([ev, filler], ignore_index=True)
    ev["decision_time"] = when
    ev = ev.sort_values(["rank", "score", "symbol"], ascending=[True, False, True], na_position="last")
    extra = [c for c in ["bars_seen", "close", "entry_price", *feats] if c in ev.columns]
    return ev[RANKING_COLUMNS + extra].reset_index(drop=True)
