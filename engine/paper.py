"""Paper trading rules, framework-free: the decision a strategy makes at `t` from what is known at `t`, and
the settlement of one paper trade once its window has closed.

Both reuse the walk-forward's own code, so a paper book and a replayed backtest can only differ when
the data differs (or a strategy looks ahead, which is what the pipeline's parity check catches):
- the decision is `engine.ranking.rank_universe` at `t` on the information set (candles with
  `open_time + 5m <= t`), from a history that starts at `history_start(t, ...)`: recursive indicators
  (EMA, Wilder) depend on where the history starts, so the paper decision and its replay must start
  at the same candle to agree to the last bit;
- the settlement is `engine.backtest.panel.window_outcome` plus `engine.stats.net_return`.
The pipeline (`pipeline/defs/paper/`) decides when, records, and compares; nothing here touches a store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.backtest.config import WalkForwardConfig
from engine.backtest.panel import PreparedHistories, prepare_histories, window_outcome
from engine.features import default_warmup_bars
from engine.ranking import rank_universe
from engine.schemas import OHLCV_COLUMNS, timestamps_ms
from engine.stats import net_return
from engine.strategies.base import TradingStrategy
from engine.timeframes import BASE_MS, DAY_MS, ms_to_timestamp, to_utc


def to_ms(t: object) -> int:
    """A time (Timestamp, ISO text or epoch ms) as int64 epoch milliseconds, UTC."""
    if isinstance(t, int | np.integer):
        return int(t)
    return int(to_utc(t, "time").value // 1_000_000)


def history_start(t: object, history_days: int) -> int:
    """Where the feature history of the decision at `t` starts (epoch ms).

    Anchors lie on a fixed UTC grid of `history_days` days, at least `history_days` before `t`: every
    decision between two grid points starts from the same candle, so one walk-forward replays all of
    them bit for bit, and a decision reads between `history_days` and twice that of history.
    """
    if int(history_days) < 1:
        raise ValueError(f"history_days must be >= 1 (got {history_days!r})")
    span = int(history_days) * DAY_MS
    return (to_ms(t) - span) // span * span


def check_history(history_days: int, cfg: WalkForwardConfig) -> None:
    """Refuse a history too short for the warm-up: no symbol could ever become eligible."""
    warmup = cfg.warmup_bars or default_warmup_bars()
    needed_ms = warmup * cfg.timeframe_ms
    if int(history_days) * DAY_MS < needed_ms:
        raise ValueError(
            f"history_days={history_days} is shorter than the warm-up of {warmup} closed {cfg.feature_timeframe} "
            f"bars ({needed_ms / DAY_MS:.1f} days): raise history_days or lower warmup_bars"
        )


def information_set(candles_by_symbol: Mapping[str, pd.DataFrame], t: object) -> dict[str, pd.DataFrame]:
    """Only the candles closed by `t` (`open_time + 5m <= t`); symbols without any are left out."""
    t_ms = to_ms(t)
    out = {}
    for symbol, frame in candles_by_symbol.items():
        ts = timestamps_ms(frame) if len(frame) else np.array([], dtype=np.int64)
        keep = ts + BASE_MS <= t_ms
        if keep.any():
            out[symbol] = frame if keep.all() else frame.loc[keep].reset_index(drop=True)
    return out


def prepare(candles_by_symbol: Mapping[str, pd.DataFrame], t: object, cfg: WalkForwardConfig) -> PreparedHistories:
    """The information set at `t` with its features computed once (shared by every strategy's decision)."""
    known = information_set(candles_by_symbol, t)
    if not known:
        return PreparedHistories({}, cfg.timeframe_ms, [])
    return prepare_histories(known, cfg.feature_timeframe)


def decide(
    known: Mapping[str, pd.DataFrame] | PreparedHistories,
    strategies: Mapping[str, TradingStrategy],
    t: object,
    cfg: WalkForwardConfig,
) -> dict[str, pd.DataFrame]:
    """Each strategy's full ranking at `t` (`rank_universe` columns), computed from the information set.

    `known` is candles (anything after `t` is dropped first, so even a strategy that peeks ahead cannot
    see it here) or `prepare(candles, t, cfg)`; prepared histories holding a candle not closed by `t` are
    refused. A strategy with no symbol to rank gets an empty frame.
    """
    when = ms_to_timestamp(to_ms(t))
    if isinstance(known, PreparedHistories):
        late = sorted(s for s, h in known.items() if len(h.ts) and int(h.ts[-1]) + BASE_MS > to_ms(when))
        if late:
            raise ValueError(f"decide at {when}: the histories of {late} hold candles not closed by then; "
                             "build them with engine.paper.prepare(candles, t, cfg)")
        histories = known
    else:
        histories = prepare(known, when, cfg)
    if not len(histories):
        return {name: pd.DataFrame() for name in strategies}
    return {name: rank_universe(histories, strategy, at=when, cfg=cfg) for name, strategy in strategies.items()}


@dataclass(frozen=True)
class Settlement:
    """The outcome of one paper trade (fractions; times UTC). Void: the window held no candle."""

    void: bool
    exit_time: pd.Timestamp | None
    exit_price: float | None
    return_pct: float | None
    gross_return_pct: float | None
    max_drawdown: float | None
    n_candles: int


def settle(window_candles: pd.DataFrame, entry_price: float, t: object, cfg: WalkForwardConfig) -> Settlement:
    """Settle a long entry at `t` by the SPEC's rules, from the symbol's candles of `[t, t + window)`.

    Extra candles outside the window are ignored, so a caller may pass a wider frame.
    """
    t_ms = np.array([to_ms(t)], dtype=np.int64)
    ts = timestamps_ms(window_candles) if len(window_candles) else np.array([], dtype=np.int64)
    close = window_candles["close"].to_numpy(np.float64) if len(window_candles) else np.array([])
    low = window_candles["low"].to_numpy(np.float64) if len(window_candles) else np.array([])
    out = window_outcome(ts, close, low, t_ms, cfg.window_ms, np.array([float(entry_price)]))
    if bool(out["void"][0]):
        return Settlement(True, None, None, None, None, None, 0)
    gross = out["gross_ratio"]
    return Settlement(
        void=False,
        exit_time=ms_to_timestamp(int(out["exit_ms"][0])),
        exit_price=float(out["exit_price"][0]),
        return_pct=float(net_return(gross, cfg.cost_per_side)[0]),
        gross_return_pct=float(gross[0] - 1.0),
        max_drawdown=float(out["max_drawdown"][0]),
        n_candles=int(out["n_window_candles"][0]),
    )


def window_return(weights: np.ndarray, returns: np.ndarray, void: np.ndarray) -> float:
    """Sum of `weight * return_pct` over a decision's trades, void trades counting 0 (their capital is
    returned untouched). Pass the trades in symbol order: the walk-forward adds in that order too."""
    w = np.asarray(weights, dtype=np.float64)
    r = np.where(np.asarray(void, dtype=bool), 0.0, np.asarray(returns, dtype=np.float64))
    total = 0.0
    for x in w * r:
        total += float(x)
    return total


def candle_fingerprint(frame: pd.DataFrame) -> dict[str, object]:
    """`{"n": rows, "sha": 16 hex}` over open times and OHLCV: what a decision or settlement read, so a
    later difference can be traced to changed data (a revised, added or removed candle)."""
    digest = hashlib.sha256()
    if len(frame):
        digest.update(np.ascontiguousarray(timestamps_ms(frame)).tobytes())
        for col in OHLCV_COLUMNS:
            digest.update(np.ascontiguousarray(frame[col].to_numpy(np.float64)).tobytes())
    return {"n": int(len(frame)), "sha": digest.hexdigest()[:16]}


def candle_hashes(frame: pd.DataFrame) -> list[str]:
    """One 16-hex hash per candle over its five OHLCV values: the identity of the version first seen."""
    if not len(frame):
        return []
    values = np.ascontiguousarray(frame.loc[:, list(OHLCV_COLUMNS)].to_numpy(np.float64))
    return [hashlib.sha256(row.tobytes()).hexdigest()[:16] for row in values]
