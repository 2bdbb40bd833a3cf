"""Warm-up and gaps, on the real sample.

Warm-up: features computed from different history start points agree once past the warm-up, and no
decision is taken before a symbol has `warmup_bars` closed bars. Gaps: a missing entry candle makes the
symbol ineligible at t, an empty window gives a recorded void trade, and a real gap in the data produces
no invented bars.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from engine_helpers import (
    SAMPLE_END,
    SAMPLE_START,
    SAMPLE_SYMBOLS,
    assert_same_rows,
    canonical,
    decision_columns,
    load_candles,
    load_universe,
    reference_bars,
    warm_time,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.backtest import WalkForwardConfig, run_walk_forward
from engine.bars import aggregate
from engine.features import compute_features
from engine.ranking import rank_universe
from engine.strategies import get_strategy

STRATEGIES = ("macd_rsi_confluence", "momentum_rank")
WARMUP = 260  # the default: 10x the longest period (26)
CFG = WalkForwardConfig(start=SAMPLE_START, end=SAMPLE_END)
WINDOW = pd.Timedelta(hours=4)
FIVE_MIN = pd.Timedelta("5min")

# Tolerance for "agree after the warm-up" (relative 1e-6, with an absolute floor of 1e-6 x the median
# magnitude of the series for features that cross zero).
# Why not exact: recursive indicators (EMA, Wilder RSI/ATR, MACD signal) carry their seed forever, only
# damped. After the 260-bar warm-up the seed's weight is (1 - 2/27)^(260-25) ~ 1.5e-8 for EMA(26) and
# (13/14)^(260-14) ~ 1.2e-8 for Wilder(14). The seeds of two runs that start days apart differ by at most
# the price move over those days (~20% of the price here), so EMA-based values agree to ~1e-9 of the price;
# macd_hist is a *difference* of EMAs of order 1e-3 of the price, so its relative residual can reach
# ~1e-6 (measured worst case on this sample: 1.5e-7, ADA with 3 days dropped). Windowed features (SMA, std,
# regression, 24h volume) agree to rounding (~1e-11: TA-Lib's running sums start at different bars).
# A real leak of the start point (e.g. a cumulative feature or a 10x too short warm-up) gives errors of
# order 1e-2 or more, so 1e-6 still separates "converged" from "depends on where history starts".
WARM_RTOL = 1e-6


def drop_days(candles: pd.DataFrame, days: int) -> pd.DataFrame:
    start = candles["timestamp"].iloc[0] + pd.Timedelta(days=days)
    return candles.loc[candles["timestamp"] >= start].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------------
# warm-up: convergence of features from different start points
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", SAMPLE_SYMBOLS)
def test_features_from_later_start_agree_after_warmup(symbol):
    candles = load_candles(symbol)
    full = compute_features(candles)
    for days in (1, 2, 3):
        part = compute_features(drop_days(candles, days))
        # a row is past the warm-up when it is at least the WARMUP-th bar of its own history
        warm = part.iloc[WARMUP - 1 :]
        assert len(warm) > 100, "not enough post-warm-up bars to compare"
        ref = full.loc[warm.index]
        for name in full.columns:
            a, b = warm[name].to_numpy(np.float64), ref[name].to_numpy(np.float64)
            assert np.isfinite(a).all() and np.isfinite(b).all(), f"{symbol} -{days}d {name}: NaN after warm-up"
            atol = WARM_RTOL * float(np.median(np.abs(b)))
            err = np.abs(a - b)
            assert (err <= atol + WARM_RTOL * np.abs(b)).all(), (
                f"{symbol} dropping {days} day(s): {name} still depends on the start point after {WARMUP} bars "
                f"(worst abs err {err.max():.3g}, atol {atol:.3g})"
            )
        # not vacuous: early on, the start point does matter for the recursive indicators
        early = part.iloc[40:60]
        assert not np.allclose(early["macd_hist"], full.loc[early.index, "macd_hist"], rtol=1e-3, atol=0)


# ---------------------------------------------------------------------------------------------------------
# warm-up: no decision before it
# ---------------------------------------------------------------------------------------------------------


def closed_bars_at(candles: pd.DataFrame, times: pd.Series) -> np.ndarray:
    """Reference count of 1h bars with open + 1h <= t."""
    closes = reference_bars(candles).index + pd.Timedelta("1h")
    return np.searchsorted(closes.to_numpy(), times.to_numpy(), side="right")


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("warmup", [None, 50])
def test_no_decision_before_warmup(name, warmup):
    universe = load_universe()
    cfg = WalkForwardConfig(start=SAMPLE_START, end=SAMPLE_END, warmup_bars=warmup)
    n_warm = warmup or WARMUP
    result = run_walk_forward(universe, get_strategy(name), cfg)
    panel, trades = canonical(result.panel), result.trades
    assert len(trades) > 0
    for symbol, candles in universe.items():
        warm = warm_time(candles, n_warm)
        rows = panel.loc[panel["symbol"] == symbol]
        assert len(rows) > 0, f"{symbol} never eligible"
        assert (rows["decision_time"] >= warm).all(), f"{symbol}: eligible before its warm-up ends at {warm}"
        sym_trades = trades.loc[trades["symbol"] == symbol]
        assert (sym_trades["decision_time"] >= warm).all(), f"{symbol}: traded before warm-up"
        # bars_seen is the number of bars closed at t (reference count), and at least the warm-up
        np.testing.assert_array_equal(rows["bars_seen"].to_numpy(), closed_bars_at(candles, rows["decision_time"]))
        assert (rows["bars_seen"] >= n_warm).all()
        # ... and the symbol becomes eligible at the first decision time after its warm-up
        assert rows["decision_time"].min() == warm.ceil("2h"), f"{symbol}: first eligible time"
    first_warm_260 = min(warm_time(c, WARMUP) for c in universe.values())
    if warmup is None:
        assert trades["decision_time"].min() >= first_warm_260
    else:  # a shorter warm-up lets decisions start days earlier
        assert trades["decision_time"].min() < first_warm_260 - pd.Timedelta(days=5)


def test_rank_universe_before_warmup_selects_nothing():
    universe = load_universe()
    t = min(warm_time(c, WARMUP) for c in universe.values()).ceil("2h") - pd.Timedelta("2h")
    ranking = rank_universe(universe, get_strategy("macd_rsi_confluence"), at=t, cfg=CFG)
    assert len(ranking) == len(universe)
    assert not ranking["eligible"].astype(bool).any()
    assert not ranking["selected"].astype(bool).any()
    assert ranking["reasons"].str.contains("warm", case=False).all(), ranking["reasons"].tolist()


# ---------------------------------------------------------------------------------------------------------
# gaps: a missing entry candle
# ---------------------------------------------------------------------------------------------------------


def middle_pick(result) -> tuple[pd.Timestamp, str]:
    """A decision time in the middle of the run and its rank-1 symbol."""
    tr = result.trades.loc[result.trades["rank"] == 1].reset_index(drop=True)
    row = tr.iloc[len(tr) // 2]
    return row["decision_time"], str(row["symbol"])


def eligible_keys(result) -> set[tuple[pd.Timestamp, str]]:
    p = result.panel.loc[result.panel["eligible"].astype(bool)]
    return set(zip(p["decision_time"], p["symbol"].astype(str), strict=True))


@pytest.mark.parametrize("name", STRATEGIES)
def test_missing_entry_candle_makes_symbol_ineligible(name):
    universe = load_universe()
    full = run_walk_forward(universe, get_strategy(name), CFG)
    t, symbol = middle_pick(full)
    candles = universe[symbol]
    assert (candles["timestamp"] == t - FIVE_MIN).sum() == 1
    holed = {**universe, symbol: candles.loc[candles["timestamp"] != t - FIVE_MIN].reset_index(drop=True)}
    run = run_walk_forward(holed, get_strategy(name), CFG)

    # the symbol is not eligible and not selected at t; everyone else still is eligible at t
    keys_full, keys_run = eligible_keys(full), eligible_keys(run)
    assert (t, symbol) in keys_full and (t, symbol) not in keys_run
    assert keys_run == keys_full - {(t, symbol)}, "eligibility changed elsewhere"
    at_t = run.panel.loc[(run.panel["decision_time"] == t) & (run.panel["symbol"].astype(str) == symbol)]
    assert not at_t["selected"].astype(bool).any()
    selected_t = run.windows.set_index("decision_time").loc[t, "selected"].split(",")
    assert symbol not in selected_t and len([s for s in selected_t if s]) > 0
    assert not ((run.trades["decision_time"] == t) & (run.trades["symbol"] == symbol)).any()

    # every decision before t is exactly unaffected. (After t the symbol's features legitimately
    # change: the deleted candle belonged to the 1h bar [t-1h, t), whose close and volume it set.)
    before = full.panel.loc[full.panel["decision_time"] < t]
    assert_same_rows(before, run.panel.loc[run.panel["decision_time"] < t], decision_columns(full.panel),
                     f"{name}: decisions before the hole")

    ranking = rank_universe(holed, get_strategy(name), at=t, cfg=CFG)
    row = ranking.loc[ranking["symbol"] == symbol].iloc[0]
    assert not bool(row["eligible"]) and not bool(row["selected"])
    assert "entry" in row["reasons"].lower(), row["reasons"]


# ---------------------------------------------------------------------------------------------------------
# gaps: an empty window
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STRATEGIES)
def test_empty_window_gives_void_trade(name):
    universe = load_universe()
    full = run_walk_forward(universe, get_strategy(name), CFG)
    t, symbol = middle_pick(full)
    candles = universe[symbol]
    in_window = (candles["timestamp"] >= t) & (candles["timestamp"] < t + WINDOW)
    assert in_window.sum() == 48
    emptied = {**universe, symbol: candles.loc[~in_window].reset_index(drop=True)}
    run = run_walk_forward(emptied, get_strategy(name), CFG)

    # the decision at t cannot see the window, so it is identical ...
    assert_same_rows(full.panel.loc[full.panel["decision_time"] <= t], run.panel.loc[run.panel["decision_time"] <= t],
                     decision_columns(full.panel), f"{name}: decisions up to t")
    # ... and the trade is recorded as void, not dropped
    trades_t = run.trades.loc[run.trades["decision_time"] == t]
    full_t = full.trades.loc[full.trades["decision_time"] == t]
    assert list(trades_t["symbol"]) == list(full_t["symbol"])
    void = trades_t.loc[trades_t["symbol"] == symbol].iloc[0]
    assert bool(void["void"]) is True
    assert np.isnan(void["exit_price"]) and np.isnan(void["return_pct"])
    assert pd.isna(void["exit_time"])
    assert not trades_t.loc[trades_t["symbol"] != symbol, "void"].any()

    # the window return treats the void trade as 0 (its capital comes back untouched)
    w = run.windows.set_index("decision_time").loc[t]
    live = trades_t.loc[~trades_t["void"]]
    assert w["window_return"] == pytest.approx((live["weight"] * live["return_pct"]).sum(), rel=1e-12, abs=1e-15)
    wf = full.windows.set_index("decision_time").loc[t]
    lost = full_t.loc[full_t["symbol"] == symbol].iloc[0]
    assert w["window_return"] == pytest.approx(wf["window_return"] - lost["weight"] * lost["return_pct"], abs=1e-15)
    assert np.isfinite(w["window_return"]) and np.isfinite(run.windows["equity"]).all()
    assert w["n_void"] == 1
    assert run.metrics["void_trades"] == full.metrics["void_trades"] + 1

    # the emptied hours also remove the entry candles of t+2h and t+4h: ineligible there
    keys = eligible_keys(run)
    assert (t + pd.Timedelta("2h"), symbol) not in keys and (t + WINDOW, symbol) not in keys


# ---------------------------------------------------------------------------------------------------------
# gaps: ADA's real 2h50 gap (2018-01-15 11:55 -> 14:45)
# ---------------------------------------------------------------------------------------------------------


def test_ada_real_gap_produces_no_invented_bars():
    candles = load_candles("ADA/BTC")
    ts = candles["timestamp"]
    before = ts.loc[ts < pd.Timestamp("2018-01-15 12:00", tz="UTC")].iloc[-1]
    after = ts.loc[ts >= pd.Timestamp("2018-01-15 12:00", tz="UTC")].iloc[0]
    assert (before, after) == (pd.Timestamp("2018-01-15 11:55", tz="UTC"), pd.Timestamp("2018-01-15 14:45", tz="UTC"))

    bars = aggregate(candles, "1h")
    for hour in ("2018-01-15 12:00", "2018-01-15 13:00"):
        assert pd.Timestamp(hour, tz="UTC") not in bars.index, f"invented bar at {hour}"
    assert bars.loc[pd.Timestamp("2018-01-15 14:00", tz="UTC"), "n_candles"] == 3  # 14:45, 14:50, 14:55
    assert len(bars) == len(reference_bars(candles))
    assert (bars["n_candles"] >= 1).all() and bars["n_candles"].sum() == len(candles)
    step = bars.index.to_series().diff()
    assert step.max() == pd.Timedelta("3h")  # 11:00 -> 14:00

    bars4 = aggregate(candles, "4h")
    assert bars4.loc[pd.Timestamp("2018-01-15 12:00", tz="UTC"), "n_candles"] == 15  # 14:45 .. 15:55
    assert bars4.index.to_series().diff().max() == pd.Timedelta("4h")  # the 4h bar still has candles


@pytest.mark.parametrize("name", STRATEGIES)
def test_ada_real_gap_in_backtest(name):
    """With a short warm-up the gap falls inside the trading period: at 14:00 the entry candle (13:55) is
    missing, so ADA is ineligible; at 16:00 it is back with two bars fewer than a gap-free symbol."""
    universe = load_universe()
    cfg = WalkForwardConfig(start=SAMPLE_START, end=SAMPLE_END, warmup_bars=50)
    result = run_walk_forward(universe, get_strategy(name), cfg)
    keys = eligible_keys(result)
    day = "2018-01-15 "
    assert (pd.Timestamp(day + "12:00", tz="UTC"), "ADA/BTC") in keys  # entry 11:55 exists
    assert (pd.Timestamp(day + "14:00", tz="UTC"), "ADA/BTC") not in keys  # entry 13:55 missing
    assert (pd.Timestamp(day + "14:00", tz="UTC"), "ETH/BTC") in keys
    p = canonical(result.panel).set_index(["decision_time", "symbol"])
    t16 = pd.Timestamp(day + "16:00", tz="UTC")
    assert p.loc[(t16, "ADA/BTC"), "bars_seen"] == p.loc[(t16, "ETH/BTC"), "bars_seen"] - 2


# ---------------------------------------------------------------------------------------------------------
# property: aggregation invariants on random candle frames with random gaps
# ---------------------------------------------------------------------------------------------------------


@st.composite
def candle_frames(draw):
    n_slots = draw(st.integers(1, 3 * 288))
    offset = draw(st.integers(0, 287))  # start anywhere on the 5m grid, usually not on an hour
    keep = draw(st.lists(st.integers(0, n_slots - 1), min_size=1, max_size=n_slots, unique=True))
    seed = draw(st.integers(0, 2**32 - 1))
    slots = np.sort(np.array(keep))
    rng = np.random.default_rng(seed)
    n = len(slots)
    close = np.exp(rng.normal(-9, 1, n))
    open_ = close * np.exp(rng.normal(0, 0.01, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    volume = np.where(rng.uniform(size=n) < 0.1, 0.0, rng.lognormal(5, 2, n))
    ts = pd.Timestamp("2020-02-28 00:00", tz="UTC") + pd.to_timedelta((slots + offset) * 5, unit="min")
    return pd.DataFrame({"timestamp": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume})


@settings(max_examples=40, deadline=None, derandomize=True)
@given(candles=candle_frames(), timeframe=st.sampled_from(["1h", "4h"]))
def test_aggregation_invariants(candles, timeframe):
    bars = aggregate(candles, timeframe)
    bucket = candles["timestamp"].dt.floor(timeframe)
    # bars exactly for the occupied buckets, stamped with the bucket's open time
    assert list(bars.index) == sorted(bucket.unique())
    for h, members in candles.groupby(bucket):
        bar = bars.loc[h]
        assert bar["high"] == members["high"].max()
        assert bar["low"] == members["low"].min()
        assert bar["open"] == members["open"].iloc[0]
        assert bar["close"] == members["close"].iloc[-1]
        assert bar["n_candles"] == len(members)
        assert bar["volume"] == pytest.approx(members["volume"].sum(), rel=1e-12, abs=0)
    # totals preserved, OHLC sane
    assert bars["n_candles"].sum() == len(candles)
    assert bars["volume"].sum() == pytest.approx(candles["volume"].sum(), rel=1e-12, abs=0)
    assert bars["quote_volume"].sum() == pytest.approx((candles["close"] * candles["volume"]).sum(), rel=1e-12, abs=0)
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    max_per_bar = pd.Timedelta(timeframe) // pd.Timedelta("5min")
    assert (bars["n_candles"] <= max_per_bar).all()


# ---------------------------------------------------------------------------------------------------------
# entry / exit / drawdown follow the candle rules on the real sample, gaps included
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STRATEGIES)
def test_trade_outcomes_follow_candle_rules(name):
    """Every trade, recomputed from the raw candles: entry = close of the candle stamped t-5m; exit = close
    of the last candle with open time in [t, t+4h) and exit_time = its close time; drawdown = min(low over
    the window)/entry - 1 capped at 0; net return with 10 bps per side. Uses a short warm-up so ADA's and
    DASH's real gaps fall inside the traded period."""
    universe = load_universe()
    cfg = WalkForwardConfig(start=SAMPLE_START, end=SAMPLE_END, warmup_bars=50)
    trades = run_walk_forward(universe, get_strategy(name), cfg).trades
    assert len(trades) > 300
    c = (cfg.fee_bps + cfg.slippage_bps) / 10_000
    short_windows = 0
    for symbol, sym_trades in trades.groupby("symbol"):
        candles = universe[symbol].set_index("timestamp")
        for tr in sym_trades.itertuples(index=False):
            t = tr.decision_time
            entry = candles.loc[t - FIVE_MIN, "close"]
            window = candles.loc[(candles.index >= t) & (candles.index < t + WINDOW)]
            assert tr.entry_price == entry and tr.entry_time == t
            assert len(window) > 0 and not tr.void  # (real data: no empty window)
            short_windows += len(window) < 48
            assert tr.exit_price == window["close"].iloc[-1]
            assert tr.exit_time == window.index[-1] + FIVE_MIN
            assert tr.max_drawdown == pytest.approx(min(window["low"].min() / entry - 1.0, 0.0), rel=1e-12, abs=1e-15)
            expected = window["close"].iloc[-1] * (1 - c) / (entry * (1 + c)) - 1.0
            assert tr.return_pct == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert short_windows > 0, "no trade window crossed a real gap: the gap handling was not exercised"
