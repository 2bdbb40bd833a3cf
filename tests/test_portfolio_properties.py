"""Portfolio mode: v1 stays exactly v1, the capital curve obeys its definitions, and bad settings fail."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from engine_helpers import SAMPLE_END, SAMPLE_START, load_universe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.backtest import WalkForwardConfig, prepare_histories, run_walk_forward
from engine.portfolio import EQUITY_METRICS
from engine.strategies import get_strategy

STRATEGIES = ("macd_rsi_confluence", "momentum_rank")
V1_FIELDS = ("window_hours", "shift_hours", "fee_bps", "slippage_bps", "max_positions")


@pytest.fixture(scope="module")
def prepared():
    return prepare_histories(load_universe(), "1h")


def _same_metric(a, b) -> bool:
    return a == b or (a is None and b is None) or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(STRATEGIES),
    periods=st.sampled_from([(4, 2), (6, 2), (2, 2), (8, 4)]),  # the window is a whole multiple of the shift
    fee=st.sampled_from([0.0, 10.0, 25.0]),
    slippage=st.sampled_from([0.0, 5.0]),
    max_positions=st.integers(1, 4),
    capital=st.sampled_from([1.0, 1000.0, 0.37]),
    cap=st.sampled_from([None, 1.0]),  # a cap of 1 never binds
)
def test_v1_numbers_unchanged_without_compounding(prepared, name, periods, fee, slippage, max_positions, capital, cap):
    """compounding=False with equal sizing: every trade, window and metric equals the default run's."""
    v1 = dict(zip(V1_FIELDS, (*periods, fee, slippage, max_positions), strict=True))
    base = WalkForwardConfig(start=SAMPLE_START, end=SAMPLE_END, **v1)
    explicit = WalkForwardConfig(start=SAMPLE_START, end=SAMPLE_END, sizing="equal", max_weight=cap,
                                 compounding=False, initial_capital=capital, **v1)
    ref = run_walk_forward(prepared, get_strategy(name), base)
    run = run_walk_forward(prepared, get_strategy(name), explicit)
    pd.testing.assert_frame_equal(ref.trades, run.trades, check_exact=True)
    pd.testing.assert_frame_equal(ref.windows, run.windows, check_exact=True)
    pd.testing.assert_frame_equal(ref.symbol_metrics, run.symbol_metrics, check_exact=True)
    pd.testing.assert_frame_equal(ref.cost_sensitivity, run.cost_sensitivity, check_exact=True)
    for key, value in ref.metrics.items():
        if key == "final_equity":
            assert run.metrics[key] == pytest.approx(capital * value, rel=1e-12)
        elif key in EQUITY_METRICS and value is not None:  # ratios of the curve: equal up to rounding
            assert run.metrics[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
        else:
            assert _same_metric(run.metrics[key], value), key
    # the capital curve is the v1 curve scaled by the capital (up to rounding), summed over the sleeves
    eq = run.equity
    m = max(1, periods[0] // periods[1])
    assert [c for c in eq.columns if c.startswith("sleeve_")] == [f"sleeve_{j}" for j in range(m)]
    np.testing.assert_allclose(eq["total_equity"], capital * (1 + run.windows["equity"]), rtol=1e-12)
    np.testing.assert_allclose(eq.filter(like="sleeve_").sum(axis=1), eq["total_equity"], rtol=1e-12)
    assert (eq.index == run.windows["decision_time"]).all()


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("sizing", [{}, {"sizing": "inverse_volatility", "max_weight": 0.4}])
def test_compounded_curve_follows_its_definition(prepared, name, sizing):
    cfg = WalkForwardConfig(start=SAMPLE_START, end=SAMPLE_END, compounding=True, initial_capital=10.0, **sizing)
    run = run_walk_forward(prepared, get_strategy(name), cfg)
    v1 = run_walk_forward(prepared, get_strategy(name), WalkForwardConfig(start=SAMPLE_START, end=SAMPLE_END, **sizing))
    pd.testing.assert_frame_equal(run.windows, v1.windows, check_exact=True)  # compounding changes no decision
    r = run.windows["window_return"].to_numpy()
    eq = run.equity
    for j in range(2):  # sleeve j: 5 * prod(1 + r_k) over its windows k = j, j + 2, ... up to each row
        own = np.zeros(len(r), dtype=bool)
        own[j::2] = True
        growth = np.cumprod(np.where(own, 1 + r, 1.0))
        np.testing.assert_allclose(eq[f"sleeve_{j}"], 5.0 * growth, rtol=1e-10)
    # before any sleeve reinvests (rows 0, 1) the two modes agree; the drawdown is from the running peak
    np.testing.assert_allclose(eq["total_equity"].iloc[:2], v1.equity["total_equity"].iloc[:2] * 10, rtol=1e-12)
    peak = np.maximum.accumulate(np.r_[10.0, eq["total_equity"].to_numpy()])[1:]
    np.testing.assert_allclose(eq["drawdown"], eq["total_equity"] / peak - 1, rtol=1e-12, atol=1e-15)
    assert ((eq["cash_share"] >= -1e-12) & (eq["cash_share"] <= 1 + 1e-12)).all()
    assert run.metrics["max_drawdown_compounded"] == pytest.approx(min(0.0, eq["drawdown"].min()))
    assert run.metrics["final_equity"] == pytest.approx(eq["total_equity"].iloc[-1])
    if sizing:
        assert (run.trades["weight"] <= 0.4 + 1e-15).all() and run.metrics["avg_invested_share"] < 1.0


def test_user_allocator_changes_the_compounded_curve(prepared):
    from engine.risk import Allocator

    class HalfInvested(Allocator):
        def allocate(self, ranked_symbols, features=None):
            chosen = list(ranked_symbols)[: self.max_positions]
            return {s: 0.5 / len(chosen) for s in chosen}

    cfg = WalkForwardConfig(start=SAMPLE_START, end=SAMPLE_END, compounding=True)
    full = run_walk_forward(prepared, get_strategy("momentum_rank"), cfg)
    half = run_walk_forward(prepared, get_strategy("momentum_rank"), cfg, allocator=HalfInvested(3))
    np.testing.assert_allclose(half.windows["window_return"], full.windows["window_return"] / 2, rtol=1e-12,
                               atol=1e-15)
    assert half.metrics["avg_invested_share"] == pytest.approx(full.metrics["avg_invested_share"] / 2, rel=1e-12)
    assert half.metrics["final_equity"] != full.metrics["final_equity"]


# ---------------------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sizing": "kelly"}, "unknown sizing 'kelly'; valid: equal, inverse_volatility, fixed_fraction"),
        ({"sizing": "fixed_fraction"}, "fixed_fraction' needs position_fraction"),
        ({"sizing": "fixed_fraction", "position_fraction": 0.4}, r"position_fraction \* max_positions must be <= 1"),
        ({"sizing": "fixed_fraction", "position_fraction": 0.0}, r"position_fraction must be a number in \(0, 1\]"),
        ({"position_fraction": 0.2}, "position_fraction only applies to sizing='fixed_fraction'"),
        ({"sizing": "inverse_volatility", "position_fraction": 0.2}, "only applies to sizing='fixed_fraction'"),
        ({"max_weight": 0}, r"max_weight must be a number in \(0, 1\]"),
        ({"max_weight": 1.5}, r"max_weight must be a number in \(0, 1\]"),
        ({"max_weight": True}, "max_weight"),
        ({"initial_capital": 0}, "initial_capital must be a finite number > 0"),
        ({"initial_capital": -5.0}, "initial_capital"),
        ({"initial_capital": math.inf}, "initial_capital"),
        ({"compounding": "yes"}, "compounding must be True or False"),
        ({"window_hours": 5, "shift_hours": 2}, "must be a whole multiple of shift"),
    ],
)
def test_invalid_portfolio_settings_fail_clearly(kwargs, match):
    with pytest.raises(ValueError, match=f"WalkForwardConfig: .*{match}"):
        WalkForwardConfig(**kwargs)


def test_portfolio_settings_round_trip_and_normalise():
    cfg = WalkForwardConfig(sizing="fixed_fraction", position_fraction=0.25, max_weight=0.2, compounding=True,
                            initial_capital=1000, max_positions=4)
    data = cfg.to_dict()
    assert {k: data[k] for k in ("sizing", "max_weight", "position_fraction", "compounding", "initial_capital")} == {
        "sizing": "fixed_fraction", "max_weight": 0.2, "position_fraction": 0.25, "compounding": True,
        "initial_capital": 1000.0}
    assert WalkForwardConfig.from_dict(data) == cfg
    default = WalkForwardConfig().to_dict()
    assert (default["sizing"], default["max_weight"], default["position_fraction"], default["compounding"],
            default["initial_capital"]) == ("equal", None, None, False, 1.0)
    # a numpy bool (e.g. from a DataFrame) is stored as a plain bool, so to_dict stays JSON-friendly
    assert WalkForwardConfig(compounding=np.bool_(True)).to_dict()["compounding"] is True
    # a window shorter than the shift is not a whole number of sleeves either: refused with the reason
    with pytest.raises(ValueError, match="must be a whole multiple of shift_hours"):
        WalkForwardConfig(window_hours=2, shift_hours=4, compounding=True)
