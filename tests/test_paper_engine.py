"""engine.paper: a decision at t made from the information set, and a settlement once the window has
closed, agree bit for bit with the walk-forward over the same history; the feature history is anchored
on a fixed grid; candles after t never reach a decision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.backtest import WalkForwardConfig, prepare_histories, run_walk_forward
from engine.data.synthetic import SyntheticProvider
from engine.paper import (
    candle_fingerprint,
    candle_hashes,
    check_history,
    decide,
    history_start,
    information_set,
    prepare,
    settle,
    window_return,
)
from engine.strategies import get_strategy

SYMBOLS = ("AAA/USDT", "BBB/USDT", "CCC/USDT", "DDD/USDT")
ANCHOR = pd.Timestamp("2024-03-01", tz="UTC")
END = pd.Timestamp("2024-03-08", tz="UTC")
CFG = WalkForwardConfig(start="2024-03-04", end=END, warmup_bars=48, bootstrap_samples=0)


@pytest.fixture(scope="module")
def candles() -> dict[str, pd.DataFrame]:
    market = SyntheticProvider(seed=11)
    return {s: market.fetch_ohlcv(s, ANCHOR, END, now=END) for s in SYMBOLS}


@pytest.fixture(scope="module", params=["macd_rsi_confluence", "momentum_rank"])
def replayed(request, candles):
    return request.param, run_walk_forward(candles, get_strategy(request.param), CFG)


def test_decisions_and_settlements_match_the_walk_forward_exactly(candles, replayed) -> None:
    name, result = replayed
    times = pd.date_range("2024-03-04", "2024-03-07 18:00", freq="2h", tz="UTC")
    picked = 0
    for t in times[::3]:
        ranking = decide(candles, {name: get_strategy(name)}, t, CFG)[name]
        mine = ranking.loc[ranking["selected"]].sort_values("rank").reset_index(drop=True)
        theirs = result.trades.loc[result.trades["decision_time"] == t].sort_values("rank").reset_index(drop=True)
        assert list(mine["symbol"]) == list(theirs["symbol"]), t
        for col in ("rank", "weight", "score", "entry_price"):
            np.testing.assert_array_equal(mine[col].to_numpy(float), theirs[col].to_numpy(float), err_msg=f"{t} {col}")
        returns, voids = [], []
        for row in theirs.itertuples(index=False):
            window = candles[row.symbol]
            s = settle(window, row.entry_price, t, CFG)  # a wider frame than the window: the rule slices it
            assert s.void == row.void
            if not s.void:
                assert (s.exit_price, s.return_pct, s.max_drawdown) == (row.exit_price, row.return_pct,
                                                                        row.max_drawdown)
                assert s.exit_time == row.exit_time and s.n_candles == row.n_candles
            returns.append(s.return_pct if s.return_pct is not None else np.nan)
            voids.append(s.void)
        order = np.argsort(theirs["symbol"].to_numpy())  # the walk-forward adds in symbol order
        got = window_return(theirs["weight"].to_numpy()[order], np.array(returns)[order], np.array(voids)[order])
        assert got == result.windows.loc[result.windows["decision_time"] == t, "window_return"].item()
        picked += len(theirs)
    assert picked > 0, "vacuous: no pick in the sampled decision times"


def test_decide_never_sees_candles_after_t(candles) -> None:
    t = pd.Timestamp("2024-03-05 10:00", tz="UTC")
    name = "momentum_rank"
    base = decide(candles, {name: get_strategy(name)}, t, CFG)[name]
    spiked = {s: df.copy() for s, df in candles.items()}
    for df in spiked.values():  # an absurd future: every candle from t on at 100x (the one stamped t included)
        future = df["timestamp"] >= t
        df.loc[future, ["open", "high", "low", "close"]] *= 100
    again = decide(spiked, {name: get_strategy(name)}, t, CFG)[name]
    pd.testing.assert_frame_equal(base, again)
    known = information_set(candles, t)
    assert all((df["timestamp"] + pd.Timedelta(minutes=5) <= t).all() for df in known.values())
    assert all(df["timestamp"].iloc[-1] == t - pd.Timedelta(minutes=5) for df in known.values())
    shared = prepare(candles, t, CFG)  # features once for several strategies: the same decision
    pd.testing.assert_frame_equal(decide(shared, {name: get_strategy(name)}, t, CFG)[name], base)
    with pytest.raises(ValueError, match="hold candles not closed by then"):
        decide(prepare_histories(candles, "1h"), {name: get_strategy(name)}, t, CFG)


def test_void_window_and_costs() -> None:
    t = pd.Timestamp("2024-03-05 10:00", tz="UTC")
    empty = pd.DataFrame({"timestamp": pd.to_datetime([], utc=True), **{c: [] for c in ("open", "high", "low",
                                                                                      "close", "volume")}})
    s = settle(empty, 100.0, t, CFG)
    assert s.void and s.return_pct is None and s.exit_time is None and s.n_candles == 0
    window = pd.DataFrame({
        "timestamp": [t, t + pd.Timedelta(minutes=5)], "open": [100.0, 101.0], "high": [102.0, 103.0],
        "low": [95.0, 99.0], "close": [101.0, 102.0], "volume": [1.0, 1.0],
    })  # fmt: skip
    s = settle(window, 100.0, t, CFG)
    c = 10 / 10_000
    assert s.exit_price == 102.0 and s.exit_time == t + pd.Timedelta(minutes=10)
    assert s.return_pct == pytest.approx(102.0 * (1 - c) / (100.0 * (1 + c)) - 1, abs=1e-15)
    assert s.max_drawdown == pytest.approx(95.0 / 100.0 - 1)
    assert window_return(np.array([0.5, 0.5]), np.array([np.nan, 0.02]), np.array([True, False])) == 0.01


def test_history_start_is_a_fixed_grid() -> None:
    day = 86_400_000
    t = pd.Timestamp("2024-03-05 10:00", tz="UTC")
    start = history_start(t, 3)
    assert start % (3 * day) == 0 and 3 * day <= t.value // 1_000_000 - start < 6 * day
    same_block = [history_start(t + pd.Timedelta(hours=h), 3) for h in range(0, 48, 2)]
    assert len(set(same_block)) <= 2  # decisions between two grid points share one start
    with pytest.raises(ValueError, match="history_days=1 is shorter than the warm-up"):
        check_history(1, CFG)
    check_history(3, CFG)


def test_fingerprints_follow_the_values(candles) -> None:
    frame = candles["AAA/USDT"].head(10).copy()
    before, hashes = candle_fingerprint(frame), candle_hashes(frame)
    frame.loc[3, "close"] = frame.loc[3, "close"] * (1 + 1e-12)
    after, again = candle_fingerprint(frame), candle_hashes(frame)
    assert before["n"] == after["n"] == 10 and before["sha"] != after["sha"]
    assert [i for i, (a, b) in enumerate(zip(hashes, again, strict=True)) if a != b] == [3]
