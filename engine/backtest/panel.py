"""The decision panel: one row per (decision time, symbol) with the information known at `t` and the
trade outcome over `[t, t + window)`.

Everything a strategy may read (features, bar counts, the entry price) is taken from data closed at `t`;
the outcome columns (exit, drawdown) are computed separately and only ever read after selection.
Features are computed once per symbol over the whole history and gathered at decision times, never
recomputed per window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.bars import aggregate_arrays, closed_bar_count
from engine.features import compute_feature_arrays
from engine.features.base import FeatureComputer
from engine.schemas import BASE_MS, candles_look_valid, coerce_candles, timestamps_ms, validate_candles
from engine.timeframes import ms_index

#: columns a strategy must never read: they describe the future
OUTCOME_COLUMNS = ("exit_price", "exit_ms", "max_drawdown", "n_window_candles", "void", "gross_ratio")


@dataclass(frozen=True)
class SymbolHistory:
    """One symbol's validated candles and whole-history features, as arrays."""

    symbol: str
    ts: np.ndarray
    close: np.ndarray
    low: np.ndarray
    bar_open_ms: np.ndarray
    bar_close: np.ndarray
    features: dict[str, np.ndarray]
    tf_ms: int

    def warm_time_ms(self, warmup_bars: int) -> int | None:
        """The first time at which `warmup_bars` bars have closed, or None if never."""
        if len(self.bar_open_ms) < warmup_bars:
            return None
        return int(self.bar_open_ms[warmup_bars - 1]) + self.tf_ms


def prepare_history(
    symbol: str, candles: pd.DataFrame, tf_ms: int, computers: list[FeatureComputer] | None = None
) -> SymbolHistory:
    """Validate one symbol's candles (clear error naming the symbol) and compute its features once."""
    candles = coerce_candles(candles, symbol)
    if not candles_look_valid(candles):
        validate_candles(candles, symbol, coerce=False)  # raises with the rule and the offending rows
    ts = timestamps_ms(candles)
    o, h, low, c, v = (candles[k].to_numpy(np.float64) for k in ("open", "high", "low", "close", "volume"))
    bars = aggregate_arrays(ts, o, h, low, c, v, tf_ms)
    return SymbolHistory(
        symbol=symbol,
        ts=ts,
        close=c,
        low=low,
        bar_open_ms=bars.open_ms,
        bar_close=bars.close,
        features=compute_feature_arrays(bars, computers),
        tf_ms=tf_ms,
    )


def symbol_panel(hist: SymbolHistory, decision_ms: np.ndarray, window_ms: int) -> dict[str, np.ndarray]:
    """Information set and outcome for one symbol at every decision time where it has a closed bar."""
    n_closed = closed_bar_count(hist.bar_open_ms, hist.tf_ms, decision_ms)
    keep = n_closed > 0
    t = decision_ms[keep]
    bar_idx = n_closed[keep] - 1
    ts, close = hist.ts, hist.close

    # entry: close of the 5m candle stamped t - 5m (the last price known at t)
    pos = np.searchsorted(ts, t - BASE_MS, side="left")
    in_range = pos < len(ts)
    has_entry = in_range & (ts[np.minimum(pos, len(ts) - 1)] == t - BASE_MS)
    entry_price = np.where(has_entry, close[np.minimum(pos, len(ts) - 1)], np.nan)

    # outcome: candles with open time in [t, t + window)
    i0 = np.searchsorted(ts, t, side="left")
    i1 = np.searchsorted(ts, t + window_ms, side="left")
    n_window = i1 - i0
    void = n_window == 0
    last = np.maximum(i1 - 1, 0)
    exit_price = np.where(void, np.nan, close[last] if len(ts) else np.nan)
    exit_ms = np.where(void, -1, ts[last] + BASE_MS if len(ts) else -1)
    min_low = _range_min(hist.low, i0, i1)
    with np.errstate(invalid="ignore", divide="ignore"):
        max_dd = np.minimum(min_low / entry_price - 1.0, 0.0)
        gross_ratio = exit_price / entry_price

    out: dict[str, np.ndarray] = {
        "decision_ms": t,
        "bars_seen": bar_idx + 1,
        "close": hist.bar_close[bar_idx],
        "has_entry": has_entry,
        "entry_price": entry_price,
    }
    out.update({name: values[bar_idx] for name, values in hist.features.items()})
    out.update(
        {
            "exit_price": exit_price,
            "exit_ms": exit_ms,
            "max_drawdown": np.where(void, np.nan, max_dd),
            "n_window_candles": n_window,
            "void": void,
            "gross_ratio": gross_ratio,
        }
    )
    return out


def _range_min(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """min(values[s:e]) for many possibly overlapping ranges in one vectorised pass (NaN if empty)."""
    if len(starts) == 0:
        return np.array([], dtype=np.float64)
    padded = np.r_[values, np.inf]  # reduceat needs indices < len; the sentinel never wins a min
    idx = np.empty(2 * len(starts), dtype=np.int64)
    idx[0::2] = starts
    idx[1::2] = ends
    mins = np.minimum.reduceat(padded, idx)[0::2]
    return np.where(ends > starts, mins, np.nan)


def build_panel(
    histories: dict[str, SymbolHistory], decision_ms: np.ndarray, window_ms: int
) -> pd.DataFrame:
    """Stack every symbol's panel rows; `symbol` is categorical to keep 100k-row groupbys cheap."""
    parts = []
    for symbol, hist in histories.items():
        cols = symbol_panel(hist, decision_ms, window_ms)
        frame = pd.DataFrame(cols)
        frame.insert(1, "symbol", symbol)
        parts.append(frame)
    if not parts:
        return pd.DataFrame(columns=["decision_time", "decision_ms", "symbol"])
    panel = pd.concat(parts, ignore_index=True)
    panel["symbol"] = pd.Categorical(panel["symbol"], categories=sorted(histories))
    panel.insert(0, "decision_time", ms_index(panel["decision_ms"].to_numpy()))
    return panel


def mark_eligible(panel: pd.DataFrame, feature_cols: list[str], warmup_bars: int) -> pd.Series:
    """A symbol is eligible at `t` when warm, its entry candle exists and every feature is defined."""
    finite = np.isfinite(panel[feature_cols].to_numpy(np.float64)).all(axis=1)
    return pd.Series(
        panel["has_entry"].to_numpy() & (panel["bars_seen"].to_numpy() >= warmup_bars) & finite,
        index=panel.index,
    )
