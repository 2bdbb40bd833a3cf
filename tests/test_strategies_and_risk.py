"""Strategy registry, typed parameters, signal gates, risk gates and allocation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.backtest import WalkForwardConfig, run_walk_forward
from engine.risk import Allocator, RiskManager
from engine.strategies import TradingStrategy, get_strategy, list_strategies


def test_registry_lists_both_baselines_with_descriptions():
    infos = {i.name: i for i in list_strategies()}
    assert {"macd_rsi_confluence", "momentum_rank"} <= set(infos)
    for info in infos.values():
        assert info.description and info.parameters
        assert set(info.param_types) == set(info.parameters)
    assert infos["macd_rsi_confluence"].parameters["rsi_low"] == 40.0
    assert infos["macd_rsi_confluence"].parameters["rsi_high"] == 65.0


def test_unknown_strategy_lists_valid_names():
    with pytest.raises(ValueError, match="momentum_rank") as err:
        get_strategy("nope")
    assert "macd_rsi_confluence" in str(err.value)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        # the valid parameters are listed with their type, range and default
        ({"rsi_lo": 30}, "unknown parameters \\['rsi_lo'\\].*rsi_low: float in \\[0, 100\\], default 40.0"),
        ({"rsi_low": "abc"}, "rsi_low.*must be float"),
        ({"rsi_low": 70, "rsi_high": 60}, "rsi_low .* must be <= rsi_high"),
        ({"max_atr_pct": -1}, "max_atr_pct.*>= 0"),
        ({"rsi_high": 101}, "rsi_high.*<= 100"),
    ],
)
def test_invalid_parameters_are_explained(params, match):
    with pytest.raises(ValueError, match=match):
        get_strategy("macd_rsi_confluence", **params)


def test_parameters_are_coerced_to_their_types():
    s = get_strategy("macd_rsi_confluence", rsi_low="35", max_atr_pct=1)
    assert s.params["rsi_low"] == 35.0 and isinstance(s.params["max_atr_pct"], float)
    m = get_strategy("momentum_rank", require_positive_trend="true")
    assert m.params["require_positive_trend"] is True


def test_macd_rsi_gates_by_hand():
    s = get_strategy("macd_rsi_confluence")
    panel = pd.DataFrame({"rsi": [39.9, 40.0, 65.0, 65.1, 50.0], "macd_hist_slope": [1, 1, 1, 1, 0.0]})
    gates = s.signal_gates(panel)
    assert gates["gate_rsi_band"].tolist() == [False, True, True, False, True]
    assert gates["gate_macd_slope"].tolist() == [True, True, True, True, False]


def test_risk_manager_gates_and_reasons():
    risk = RiskManager(max_atr_pct=0.03, min_quote_volume_24h=100.0, warmup_bars=260)
    ok = risk.allow_symbol("ETH/BTC", {"bars_seen": 260, "atr_pct": 0.03, "quote_volume_24h": 100.0})
    assert ok.allowed and ok.reasons == ()
    bad = risk.allow_symbol("ETH/BTC", {"bars_seen": 259, "atr_pct": 0.031, "quote_volume_24h": 99.0})
    assert not bad.allowed and len(bad.reasons) == 3
    unknown = risk.allow_symbol("ETH/BTC", {"bars_seen": 300, "atr_pct": math.nan, "quote_volume_24h": 1e9})
    assert not unknown.allowed and "ATR" in unknown.reasons[0]
    with pytest.raises(ValueError, match="max_atr_pct"):
        RiskManager(max_atr_pct=0)


def test_allocator_equal_weights_at_most_max_positions():
    alloc = Allocator(max_positions=3)
    assert alloc.allocate(["a", "b", "c", "d"]) == {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}
    assert alloc.allocate(["a", "b"]) == {"a": 0.5, "b": 0.5}
    assert alloc.allocate([]) == {}
    with pytest.raises(ValueError):
        Allocator(max_positions=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8)), min_size=1, max_size=8), st.integers(1, 5))
def test_panel_allocation_weights_sum_to_one_per_time(sizes, max_positions):
    # per decision time: `cands` candidates ranked 1..cands, plus `others` non-candidates (NaN rank)
    groups, ranks = [], []
    for g, (cands, others) in enumerate(sizes):
        groups += [g] * (cands + others)
        ranks += list(range(1, cands + 1)) + [np.nan] * others
    w = Allocator(max_positions).allocate_panel(pd.Series(ranks, dtype=float), pd.Series(groups))
    for g, (cands, _) in enumerate(sizes):
        sub = w[np.array(groups) == g]
        chosen = sub[sub > 0]
        assert len(chosen) == min(cands, max_positions)
        if len(chosen):
            assert chosen.sum() == pytest.approx(1.0)
            assert np.allclose(chosen, 1 / len(chosen))


class NoRisk(TradingStrategy):
    name = "no_risk_test"
    description = "returns no risk manager"
    param_specs = ()

    def risk_manager(self, warmup_bars):  # type: ignore[override]
        return None

    def signal_gates(self, panel):
        return pd.DataFrame(index=panel.index)

    def score(self, panel):
        return pd.Series(0.0, index=panel.index)


def test_a_strategy_without_risk_gates_cannot_run():
    candles = {"A": pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=3, freq="5min", tz="UTC"),
                                  "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0})}
    with pytest.raises(TypeError, match="without risk gates"):
        run_walk_forward(candles, NoRisk(), WalkForwardConfig())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window_hours": 0}, "window_hours"),
        ({"shift_hours": 0.01}, "shift_hours"),
        ({"fee_bps": -1}, "fee_bps"),
        ({"max_positions": 0}, "max_positions"),
        ({"feature_timeframe": "7s"}, "timeframe"),
        ({"start": "2024-02-01", "end": "2024-01-01"}, "end .* must be after start"),
        ({"start": "not a date"}, "cannot parse"),
    ],
)
def test_config_validation_messages(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WalkForwardConfig(**kwargs)


def test_config_decision_grid_and_round_trip():
    cfg = WalkForwardConfig(start="2024-01-01 01:10", end="2024-01-01 12:00")
    t = cfg.decision_times(0, 0)
    hours = [pd.Timestamp(x, unit="ms", tz="UTC").hour for x in t]
    assert hours == [2, 4, 6, 8]  # on the 2h grid, t + 4h <= 12:00
    again = WalkForwardConfig.from_dict(cfg.to_dict())
    assert again == cfg
