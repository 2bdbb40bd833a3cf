"""The decision panel: one row per (decision time, symbol) with the information known at `t` and the
trade outcome over `[t, t + window)`.

Everything a strategy may read (features, bar counts, the entry price) is taken from data closed at `t`;
the outcome columns (exit, drawdown) are computed separately and only ever read after selection.
Features are computed once per symbol over the whole history and gathered at decision times, never
recomputed per window.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.bars import aggregate_arrays, closed_bar_count
from engine.features import (
    compute_feature_arrays,
    cross_sectional_arrays,
    feature_names,
    get_feature_computers,
)
from engine.features.base import FeatureComputer
from engine.schemas import BASE_MS, candles_look_valid, coerce_candles, timestamps_ms, validate_candles
from engine.timeframes import ms_index, timeframe_ms

log = logging.getLogger(__name__)


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
    if len(ts) > 10 and np.median(np.diff(ts)) > BASE_MS:
        log.warning("%s: median candle spacing is %d min; the engine expects 5m candles", symbol,
                    int(np.median(np.diff(ts)) // 60_000))
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


class PreparedHistories(Mapping[str, SymbolHistory]):
    """Every symbol's validated candles and whole-history features on one feature timeframe.

    Build it once with `prepare_histories` and pass it to `run_walk_forward` / `rank_universe` in place of
    the candle mapping: several strategies, a ranking and a sweep then share one feature computation.
    """

    def __init__(self, histories: Mapping[str, SymbolHistory], tf_ms: int, feature_cols: list[str]) -> None:
        self._histories = dict(histories)
        self.tf_ms = tf_ms
        self.feature_cols = list(feature_cols)

    def __getitem__(self, symbol: str) -> SymbolHistory:
        return self._histories[symbol]

    def __iter__(self) -> Iterator[str]:
        return iter(self._histories)

    def __len__(self) -> int:
        return len(self._histories)

    def __repr__(self) -> str:
        return f"PreparedHistories({len(self)} symbols, timeframe {self.tf_ms // 60_000} min)"


def prepare_histories(
    candles_by_symbol: Mapping[str, pd.DataFrame] | PreparedHistories,
    feature_timeframe: str = "1h",
    computers: list[FeatureComputer] | None = None,
) -> PreparedHistories:
    """Validate every symbol's 5m candles and compute its features once (`feature_timeframe` bars).

    Passing an existing `PreparedHistories` returns it unchanged when its timeframe matches, and raises
    otherwise (features of one timeframe cannot serve another).
    """
    tf_ms = timeframe_ms(feature_timeframe)
    if isinstance(candles_by_symbol, PreparedHistories):
        if candles_by_symbol.tf_ms != tf_ms:
            raise ValueError(
                f"prepared histories hold {candles_by_symbol.tf_ms // 60_000}-minute features, but the config "
                f"asks for feature_timeframe={feature_timeframe!r}; prepare them with that timeframe"
            )
        return candles_by_symbol
    if not isinstance(candles_by_symbol, Mapping) or not candles_by_symbol:
        raise ValueError("candles_by_symbol must be a non-empty mapping of symbol -> 5m candle DataFrame")
    computers = computers or get_feature_computers()
    histories = {str(s): prepare_history(str(s), df, tf_ms, computers) for s, df in candles_by_symbol.items()}
    return PreparedHistories(histories, tf_ms, feature_names(computers))


def symbol_panel(
    hist: SymbolHistory, decision_ms: np.ndarray, window_ms: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(information set, outcome) for one symbol at every decision time where it has a closed bar.

    The two are returned apart so that no strategy code ever receives an outcome column.
    """
    n_closed = closed_bar_count(hist.bar_open_ms, hist.tf_ms, decision_ms)
    keep = n_closed > 0
    t = decision_ms[keep]
    bar_idx = n_closed[keep] - 1
    ts, close = hist.ts, hist.close
    last_row = max(len(ts) - 1, 0)

    # entry: close of the 5m candle stamped t - 5m (the last price known at t)
    pos = np.minimum(np.searchsorted(ts, t - BASE_MS, side="left"), last_row)
    has_entry = ts[pos] == t - BASE_MS if len(ts) else np.zeros(len(t), dtype=bool)
    entry_price = np.where(has_entry, close[pos], np.nan) if len(ts) else np.full(len(t), np.nan)

    info: dict[str, np.ndarray] = {
        "decision_ms": t,
        "bars_seen": bar_idx + 1,
        "close": hist.bar_close[bar_idx],
        "has_entry": has_entry,
        "entry_price": entry_price,
    }
    info.update({name: values[bar_idx] for name, values in hist.features.items()})
    # outcome: candles with open time in [t, t + window), computed apart from the information set
    return info, window_outcome(ts, close, hist.low, t, window_ms, entry_price)


def window_outcome(
    ts: np.ndarray, close: np.ndarray, low: np.ndarray, t: np.ndarray, window_ms: int, entry_price: np.ndarray
) -> dict[str, np.ndarray]:
    """The trade outcome of long entries at `t` (SPEC section 3), from one symbol's sorted 5m candles.

    Exit = close of the last candle with open time in `[t, t + window)`; void when there is none;
    drawdown = min(low in the window) / entry - 1, clipped at 0; `gross_ratio` = exit / entry (costs are
    applied by the caller with `engine.stats.net_return`). Backtests and paper settlement both use it.
    """
    i0 = np.searchsorted(ts, t, side="left")
    i1 = np.searchsorted(ts, t + window_ms, side="left")
    void = i1 == i0
    last = np.maximum(i1 - 1, 0)
    exit_price = np.where(void, np.nan, close[last]) if len(ts) else np.full(len(t), np.nan)
    exit_ms = np.where(void, -1, ts[last] + BASE_MS) if len(ts) else np.full(len(t), -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        max_dd = np.minimum(_range_min(low, i0, i1) / entry_price - 1.0, 0.0)
        gross_ratio = exit_price / entry_price
    return {
        "exit_price": exit_price,
        "exit_ms": exit_ms,
        "max_drawdown": np.where(void, np.nan, max_dd),
        "n_window_candles": i1 - i0,
        "void": void,
        "gross_ratio": gross_ratio,
    }


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
    histories: Mapping[str, SymbolHistory],
    decision_ms: np.ndarray,
    window_ms: int,
    *,
    feature_cols: list[str],
    warmup_bars: int,
    eligible_only: bool,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Stack every symbol's rows into the decision panel, with eligibility and cross-sectional columns.

    Returns the information panel (what strategies see) and the aligned outcome arrays. Built from
    concatenated arrays into one DataFrame, because 400k-row frames grown column by column cost seconds.
    """
    symbols = sorted(histories)
    infos, outcomes, codes = [], [], []
    for code, symbol in enumerate(symbols):
        info, outcome = symbol_panel(histories[symbol], decision_ms, window_ms)
        infos.append(info)
        outcomes.append(outcome)
        codes.append(np.full(len(info["decision_ms"]), code, dtype=np.int32))
    info_cols = ["decision_ms", "bars_seen", "close", "has_entry", "entry_price", *feature_cols]
    if infos:
        cols = {c: np.concatenate([i[c] for i in infos]) for c in info_cols}
        outs = {c: np.concatenate([o[c] for o in outcomes]) for c in outcomes[0]}
        sym_codes = np.concatenate(codes)
    else:
        cols = {c: np.array([], dtype=np.float64) for c in info_cols}
        cols["decision_ms"] = np.array([], dtype=np.int64)
        outs, sym_codes = {}, np.array([], dtype=np.int32)
    eligible = eligible_mask(cols, feature_cols, warmup_bars)
    if eligible_only:
        cols = {c: v[eligible] for c, v in cols.items()}
        outs = {c: v[eligible] for c, v in outs.items()}
        sym_codes, eligible = sym_codes[eligible], eligible[eligible]
    order = np.lexsort((sym_codes, cols["decision_ms"]))  # time-major, then symbol: stable, readable
    cols = {c: v[order] for c, v in cols.items()}
    outs = {c: v[order] for c, v in outs.items()}
    sym_codes, eligible = sym_codes[order], eligible[order]
    cross = cross_sectional_arrays({f: cols[f] for f in feature_cols}, cols["decision_ms"], eligible, sym_codes)
    panel = pd.DataFrame(
        {
            "decision_time": ms_index(cols["decision_ms"]),
            "symbol": pd.Categorical.from_codes(sym_codes, categories=symbols),
            **cols,
            "eligible": eligible,
            **cross,
        }
    )
    return panel, outs


def eligible_mask(cols: dict[str, np.ndarray], feature_cols: list[str], warmup_bars: int) -> np.ndarray:
    """A symbol is eligible at `t` when warm, its entry candle exists and every feature is defined."""
    finite = np.ones(len(cols["decision_ms"]), dtype=bool)
    for f in feature_cols:
        finite &= np.isfinite(cols[f])
    return cols["has_entry"].astype(bool) & (cols["bars_seen"] >= warmup_bars) & finite
