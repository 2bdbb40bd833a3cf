"""A hand-checked walk-forward: four symbols, three decision times, every number derived below by hand.

The strategy is a fixed preference (A > B > C > D) so selection depends only on the eligibility rules;
prices are flat (100, tiny zigzag) except the candles the scenario sets explicitly.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from engine.backtest import WalkForwardConfig, run_walk_forward
from engine.strategies.base import RISK_PARAMS, TradingStrategy

DAY2 = pd.Timestamp("2024-01-02", tz="UTC")


class FixedPreference(TradingStrategy):
    name = "fixed_preference_test"
    description = "test strategy: A > B > C > D"
    param_specs = RISK_PARAMS
    order: ClassVar[dict[str, float]] = {"A": 4.0, "B": 3.0, "C": 2.0, "D": 1.0}

    def signal_gates(self, panel):
        return pd.DataFrame({"gate_any": np.ones(len(panel), dtype=bool)}, index=panel.index)

    def score(self, panel):
        return panel["symbol"].astype(str).map(self.order).astype(float)


def _base(symbol_end: pd.Timestamp) -> pd.DataFrame:
    ts = pd.date_range(pd.Timestamp("2024-01-01", tz="UTC"), symbol_end, freq="5min", inclusive="left")
    i = np.arange(len(ts))
    close = 100.0 + 0.1 * (i % 2)
    return pd.DataFrame({"timestamp": ts, "open": close, "high": 100.5, "low": 99.5, "close": close,
                         "volume": 10.0 + (i % 3)})


def _set(df: pd.DataFrame, hhmm: str, *, close: float, low: float | None = None, high: float | None = None) -> None:
    t = DAY2 + pd.Timedelta(hhmm + ":00")
    row = df.index[df["timestamp"] == t][0]
    df.loc[row, ["open", "close"]] = close
    df.loc[row, "high"] = max(close, high if high is not None else close + 0.5)
    df.loc[row, "low"] = min(close, low if low is not None else close - 0.5)


@pytest.fixture(scope="module")
def scenario():
    end = pd.Timestamp("2024-01-03", tz="UTC")
    a, b, c, d = _base(end), _base(end), _base(DAY2 + pd.Timedelta("20:00:00")), _base(end)
    # t1 = 16:00 (window [16:00, 20:00))
    for df in (a, b, c, d):
        _set(df, "15:55", close=100.0)
    _set(a, "17:00", close=100.0, low=95.0)          # A's lowest low in t1's window
    _set(a, "19:55", close=110.0)                     # A exits t1 at 110, enters t3 at 110
    _set(b, "19:55", close=90.0, low=89.0)            # B exits t1 at 90 with low 89
    _set(c, "19:55", close=100.0)                     # C's last candle ever
    # t2 = 18:00 (window [18:00, 22:00)): A's entry candle 17:55 is missing -> A ineligible
    for df in (b, c, d):
        _set(df, "17:55", close=100.0)
    _set(b, "21:55", close=105.0)
    _set(d, "21:55", close=100.0)
    # t3 = 20:00 (window [20:00, 24:00)): C has no candle -> void trade
    _set(a, "23:55", close=121.0)
    _set(b, "23:55", close=99.0)
    a = a.loc[a["timestamp"] != DAY2 + pd.Timedelta("17:55:00")].reset_index(drop=True)
    cfg = WalkForwardConfig(start=DAY2 + pd.Timedelta("14:00:00"), end=end, window_hours=4, shift_hours=2,
                            fee_bps=10, slippage_bps=5, warmup_bars=40, max_positions=3)
    result = run_walk_forward({"A": a, "B": b, "C": c, "D": d}, FixedPreference(), cfg)
    return result


C = (10 + 5) / 10_000  # cost per side


def net(entry: float, exit_: float) -> float:
    return exit_ * (1 - C) / (entry * (1 + C)) - 1


def at(hhmm: str) -> pd.Timestamp:
    return DAY2 + pd.Timedelta(hhmm + ":00")


def test_decision_times_and_warmup(scenario):
    w = scenario.windows
    assert list(w["decision_time"]) == [at("14:00"), at("16:00"), at("18:00"), at("20:00")]
    # at 14:00 only 38 one-hour bars have closed (< warmup 40): nobody is eligible
    assert w.loc[0, "n_eligible"] == 0 and w.loc[0, "window_return"] == 0.0


def test_selection_follows_eligibility(scenario):
    w = scenario.windows.set_index("decision_time")
    assert w.loc[at("16:00"), "selected"] == "A,B,C"
    assert w.loc[at("18:00"), "selected"] == "B,C,D"  # A has no 17:55 entry candle
    assert w.loc[at("20:00"), "selected"] == "A,B,C"
    assert list(w["n_eligible"]) == [0, 4, 3, 4]


def test_trade_prices_returns_drawdowns(scenario):
    t = scenario.trades.set_index(["decision_time", "symbol"])
    expected = {
        # (decision, symbol): entry, exit, exit_time, lowest low in window
        (at("16:00"), "A"): (100.0, 110.0, at("20:00"), 95.0),
        (at("16:00"), "B"): (100.0, 90.0, at("20:00"), 89.0),
        (at("16:00"), "C"): (100.0, 100.0, at("20:00"), 99.5),
        (at("18:00"), "B"): (100.0, 105.0, at("22:00"), 89.0),
        (at("18:00"), "C"): (100.0, 100.0, at("20:00"), 99.5),  # C's data ends 19:55: last candle in window
        (at("18:00"), "D"): (100.0, 100.0, at("22:00"), 99.5),
        (at("20:00"), "A"): (110.0, 121.0, pd.Timestamp("2024-01-03", tz="UTC"), 99.5),
        (at("20:00"), "B"): (90.0, 99.0, pd.Timestamp("2024-01-03", tz="UTC"), 99.5),
    }
    for key, (entry, exit_, exit_time, low) in expected.items():
        row = t.loc[key]
        assert row["entry_price"] == entry
        assert row["exit_price"] == exit_
        assert row["exit_time"] == exit_time
        assert row["entry_time"] == key[0]
        assert row["direction"] == "long"
        assert row["weight"] == pytest.approx(1 / 3)
        assert row["return_pct"] == pytest.approx(net(entry, exit_), rel=1e-12)
        assert row["max_drawdown"] == pytest.approx(min(low / entry - 1, 0.0), rel=1e-12)
        assert not row["void"]
    # B at 20:00 never traded below its entry of 90: drawdown is 0, not positive
    assert t.loc[(at("20:00"), "B"), "max_drawdown"] == 0.0
    assert t.loc[(at("16:00"), "A"), "rank"] == 1 and t.loc[(at("16:00"), "C"), "rank"] == 3


def test_void_trade_is_recorded(scenario):
    t = scenario.trades
    void = t.loc[t["void"]]
    assert len(void) == 1
    row = void.iloc[0]
    assert row["symbol"] == "C" and row["decision_time"] == at("20:00")
    assert math.isnan(row["exit_price"]) and math.isnan(row["return_pct"]) and pd.isna(row["exit_time"])
    assert scenario.metrics["void_trades"] == 1


def test_window_returns_and_aggregates(scenario):
    r1 = [net(100, 110), net(100, 90), net(100, 100)]
    r2 = [net(100, 105), net(100, 100), net(100, 100)]
    r3 = [net(110, 121), net(90, 99)]  # C void counts as 0 with its 1/3 weight
    w1, w2, w3 = sum(r1) / 3, sum(r2) / 3, sum(r3) / 3
    w = scenario.windows
    assert list(w["window_return"]) == pytest.approx([0.0, w1, w2, w3], rel=1e-12)
    # sleeves: window/shift = 2, each window moves the curve by half its return
    curve = np.cumsum([0.0, w1 / 2, w2 / 2, w3 / 2])
    assert list(w["equity"]) == pytest.approx(list(curve), rel=1e-12)
    peak, worst = 0.0, 0.0
    for value in curve:
        peak = max(peak, value)
        worst = min(worst, value - peak)
    m = scenario.metrics
    assert m["max_drawdown_aggregated"] == pytest.approx(worst, abs=1e-15)
    trades = r1 + r2 + r3
    assert m["trade_count"] == 8
    assert m["coverage"] == pytest.approx(3 / 4)
    assert m["win_rate"] == pytest.approx(sum(x > 0 for x in trades) / 8)
    assert m["avg_return"] == pytest.approx(sum(trades) / 8, rel=1e-12)
    assert m["median_return"] == pytest.approx(float(np.median(trades)), rel=1e-12)
    gains = sum(x for x in trades if x > 0)
    losses = -sum(x for x in trades if x < 0)
    assert m["profit_factor"] == pytest.approx(gains / losses, rel=1e-12)
    assert m["max_drawdown_trade"] == pytest.approx(89 / 100 - 1, rel=1e-12)
    assert m["total_return"] == pytest.approx(curve[-1], rel=1e-12)
    # exposure: invested share per decision time (0, 1, 1, 2/3 with C void)
    assert m["exposure"] == pytest.approx((0 + 1 + 1 + 2 / 3) / 4)
    # turnover per day: 2 sides * invested * sleeve share (1/2), averaged, times 12 decisions a day
    assert m["turnover"] == pytest.approx((2 * (0 + 1 + 1 + 2 / 3) * 0.5 / 4) * 12)


def test_break_even_fee_zeroes_the_mean_return(scenario):
    be = scenario.metrics["break_even_fee_bps"]
    cfg = scenario.config
    prices = [(100, 110), (100, 90), (100, 100), (100, 105), (100, 100), (100, 100), (110, 121), (90, 99)]
    c = (be + cfg.slippage_bps) / 10_000
    total = sum(x * (1 - c) / (e * (1 + c)) - 1 for e, x in prices)
    assert total == pytest.approx(0.0, abs=1e-12)


def test_profit_factor_is_none_without_losses():
    from engine.metrics import trade_metrics

    m = trade_metrics(np.array([0.01, 0.02]), np.array([-0.01, 0.0]))
    assert m["profit_factor"] is None and m["win_rate"] == 1.0
    empty = trade_metrics(np.array([]), np.array([]))
    assert empty["trade_count"] == 0 and empty["win_rate"] is None and empty["avg_return"] is None
