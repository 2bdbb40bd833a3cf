"""Risk objects are the contract: `RiskManager.allow_symbol` and `Allocator.allocate` decide every
evaluation (walk-forward and `rank_universe`); the vectorised panel methods are only their fast form.

Scenario: tests/portfolio_scenario.py (C > A > B, two positions, no fees; every price written there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from engine_helpers import assert_same_rows, load_universe
from hypothesis import given, settings
from hypothesis import strategies as st
from portfolio_scenario import PreferCAB, at, candles, config, strategy

from engine.backtest import WalkForwardConfig, run_walk_forward
from engine.backtest.contract import allocation_weights, risk_gates, scalar_rule_overridden
from engine.ranking import rank_universe
from engine.risk import Allocator, GateResult, RiskManager
from engine.sizing import EqualWeight, FixedFraction, InverseVolatility
from engine.strategies import get_strategy


@dataclass(frozen=True)
class BanSymbol(RiskManager):
    """Overrides only the scalar rule: one symbol is never allowed."""

    banned: str = "C"

    def allow_symbol(self, symbol, features):
        if symbol == self.banned:
            return GateResult(False, (f"{symbol} is banned",))
        return super().allow_symbol(symbol, features)


@dataclass(frozen=True)
class TopPickOnly(Allocator):
    """Overrides only the scalar rule: all the capital on the best-ranked symbol."""

    def allocate(self, ranked_symbols, features=None):
        return {ranked_symbols[0]: 1.0} if ranked_symbols else {}


class BannedC(PreferCAB):
    name = "prefer_cab_banned_c_test"

    def risk_manager(self, warmup_bars):
        return BanSymbol(max_atr_pct=1.0, warmup_bars=warmup_bars)


class TopPickStrategy(PreferCAB):
    name = "prefer_cab_top_pick_test"

    def allocator(self, max_positions):
        return TopPickOnly(max_positions=max_positions)


def selections(result) -> list[tuple[pd.Timestamp, str, float]]:
    return [(r.decision_time, r.symbol, r.weight) for r in result.trades.itertuples()]


# ---------------------------------------------------------------------------------------------------------
# a RiskManager that overrides allow_symbol only
# ---------------------------------------------------------------------------------------------------------


def test_allow_symbol_override_changes_the_walk_forward_exactly():
    result = run_walk_forward(candles(), BannedC(max_atr_pct=1.0), config())
    # C is banned: the next two by preference, A and B, are bought at every decision time
    assert selections(result) == [
        (at("16:00"), "A", 0.5), (at("16:00"), "B", 0.5),
        (at("18:00"), "A", 0.5), (at("18:00"), "B", 0.5),
        (at("20:00"), "A", 0.5), (at("20:00"), "B", 0.5),
        (at("22:00"), "A", 0.5), (at("22:00"), "B", 0.5),
    ]
    # A: 100->120, 100->90, 120->108, 90->99; B: 100->100, 100->100, 100->100.1 (untouched zigzag candle
    # 23:55, index 575 of its day-1-based series, odd -> 100.1), 100->105
    expected = [0.5 * 0.20 + 0.5 * 0.0, 0.5 * -0.10 + 0.5 * 0.0, 0.5 * -0.10 + 0.5 * 0.001, 0.5 * 0.10 + 0.5 * 0.05]
    assert list(result.windows["window_return"]) == pytest.approx(expected, rel=1e-12)
    assert (result.panel.loc[result.panel["symbol"] == "C", "gate_risk"] == False).all()  # noqa: E712
    assert (result.panel.loc[result.panel["symbol"] != "C", "gate_risk"]).all()


def test_allow_symbol_override_changes_the_ranking_with_its_reasons():
    ranking = rank_universe(candles(), BannedC(max_atr_pct=1.0), at=at("16:00"), cfg=config()).set_index("symbol")
    assert not ranking.loc["C", "candidate"] and not ranking.loc["C", "selected"]
    assert ranking.loc["C", "reasons"] == "C is banned"
    assert ranking.loc["A", "rank"] == 1 and ranking.loc["B", "rank"] == 2
    assert ranking.loc["A", "weight"] == 0.5 and ranking.loc["B", "weight"] == 0.5


# ---------------------------------------------------------------------------------------------------------
# an Allocator that overrides allocate only
# ---------------------------------------------------------------------------------------------------------


def _assert_top_pick_run(result) -> None:
    # the top pick is C at 16:00, 18:00, 20:00 (void at 20:00: its data ended) and A at 22:00 (C ineligible)
    assert selections(result) == [(at("16:00"), "C", 1.0), (at("18:00"), "C", 1.0), (at("20:00"), "C", 1.0),
                                  (at("22:00"), "A", 1.0)]
    w = result.windows
    assert list(w["window_return"]) == pytest.approx([0.05, 0.05, 0.0, 0.10], rel=1e-12)  # void returns capital
    assert list(w["n_selected"]) == [1, 1, 1, 1] and list(w["n_void"]) == [0, 0, 1, 0]
    assert list(w["invested_weight"]) == [1.0, 1.0, 0.0, 1.0]


def test_allocate_override_through_the_strategy_changes_the_walk_forward_exactly():
    _assert_top_pick_run(run_walk_forward(candles(), TopPickStrategy(max_atr_pct=1.0), config()))


def test_allocate_override_passed_in_changes_the_walk_forward_exactly():
    _assert_top_pick_run(run_walk_forward(candles(), strategy(), config(), allocator=TopPickOnly(max_positions=2)))


@pytest.mark.parametrize("how", ["strategy", "argument"])
def test_allocate_override_changes_the_ranking(how):
    strat, alloc = (TopPickStrategy(max_atr_pct=1.0), None) if how == "strategy" else (strategy(), TopPickOnly(2))
    ranking = rank_universe(candles(), strat, at=at("16:00"), cfg=config(), allocator=alloc).set_index("symbol")
    assert ranking.loc["C", "selected"] and ranking.loc["C", "weight"] == 1.0
    assert not ranking.loc["A", "selected"] and ranking.loc["A", "weight"] == 0.0
    assert "below the max_positions cut" in ranking.loc["A", "reasons"]


def test_allocate_override_without_features_argument_still_works():
    class OldStyle(Allocator):
        def allocate(self, ranked_symbols):  # type: ignore[override]  # the v1 signature
            return {ranked_symbols[-1]: 1.0} if ranked_symbols else {}

    result = run_walk_forward(candles(), strategy(), config(), allocator=OldStyle(max_positions=2))
    # the last candidate: B at 16:00, 18:00, 20:00 (C, A, B are all candidates) and B at 22:00
    assert [s for _, s, _ in selections(result)] == ["B", "B", "B", "B"]


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ({"Z": 1.0}, "not among the ranked candidates"),
        ({"C": 0.7, "A": 0.7}, "invests 1.4 > 1"),
        ({"C": -0.1}, "negative or non-finite"),
        ({"C": math.nan}, "negative or non-finite"),
        ({"C": 0.3, "A": 0.3, "B": 0.3}, "more than max_positions=2"),
    ],
)
def test_invalid_allocate_output_is_refused_with_the_decision_time(weights, match):
    @dataclass(frozen=True)
    class Bad(Allocator):
        def allocate(self, ranked_symbols, features=None):
            return weights

    with pytest.raises(ValueError, match=match) as err:
        run_walk_forward(candles(), strategy(), config(), allocator=Bad(max_positions=2))
    assert "Bad.allocate at 2024-01-02 16:00" in str(err.value)


def test_strategy_allocator_and_config_sizing_cannot_both_decide():
    with pytest.raises(ValueError, match="would be ignored.*own allocator"):
        run_walk_forward(candles(), TopPickStrategy(max_atr_pct=1.0), config(sizing="inverse_volatility"))
    with pytest.raises(ValueError, match="would be ignored.*passed in"):
        rank_universe(candles(), strategy(), cfg=config(max_weight=0.5), allocator=TopPickOnly(2))
    with pytest.raises(TypeError, match="no Allocator"):
        run_walk_forward(candles(), strategy(), config(), allocator="equal")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------
# when is the vectorised path used
# ---------------------------------------------------------------------------------------------------------


def test_vectorised_path_only_when_it_is_defined_below_the_scalar_rule():
    assert not scalar_rule_overridden(RiskManager(), "allow_symbol", "gates")
    assert scalar_rule_overridden(BanSymbol(), "allow_symbol", "gates")
    for alloc in (Allocator(), EqualWeight(), InverseVolatility(), FixedFraction(position_fraction=0.2)):
        assert not scalar_rule_overridden(alloc, "allocate", "allocate_panel"), type(alloc).__name__
    assert scalar_rule_overridden(TopPickOnly(), "allocate", "allocate_panel")

    class Both(RiskManager):  # overrides both: trusted to keep them equal, the fast path is used
        def gates(self, panel):
            return super().gates(panel)

        def allow_symbol(self, symbol, features):
            return super().allow_symbol(symbol, features)

    class BelowBoth(Both):  # ... until a subclass overrides the scalar rule again
        def allow_symbol(self, symbol, features):
            return super().allow_symbol(symbol, features)

    assert not scalar_rule_overridden(Both(), "allow_symbol", "gates")
    assert scalar_rule_overridden(BelowBoth(), "allow_symbol", "gates")


def test_overriding_the_per_gate_check_also_changes_the_result():
    @dataclass(frozen=True)
    class NoLiquidityFloor(RiskManager):
        def check(self, features):
            return {**super().check(features), "gate_liquidity": True}

    panel = pd.DataFrame({"symbol": ["A", "B"], "decision_ms": 0, "bars_seen": [300, 300], "atr_pct": [0.01, 0.01],
                          "quote_volume_24h": [0.0, 50.0]})
    assert risk_gates(RiskManager(), panel).all(axis=1).tolist() == [False, True]
    assert risk_gates(NoLiquidityFloor(), panel)["gate_risk"].tolist() == [True, True]


@dataclass(frozen=True)
class PassThroughRisk(RiskManager):
    def allow_symbol(self, symbol, features):
        return super().allow_symbol(symbol, features)


@dataclass(frozen=True)
class PassThroughInverseVolatility(InverseVolatility):
    def allocate(self, ranked_symbols, features=None):
        return super().allocate(ranked_symbols, features)


def scalar_risk_strategy(name: str):
    """A registered strategy whose risk manager is applied row by row (its allow_symbol is overridden)."""

    class Scalar(type(get_strategy(name))):  # type: ignore[misc]
        def risk_manager(self, warmup_bars):
            return PassThroughRisk(self.params["max_atr_pct"], self.params["min_quote_volume_24h"], warmup_bars)

    return Scalar()


@pytest.mark.parametrize("name", ["macd_rsi_confluence", "momentum_rank"])
def test_scalar_paths_reproduce_the_vectorised_run_on_real_data(name):
    universe = load_universe()
    fast = run_walk_forward(universe, get_strategy(name), WalkForwardConfig(sizing="inverse_volatility"))
    slow = run_walk_forward(universe, scalar_risk_strategy(name), WalkForwardConfig(),
                            allocator=PassThroughInverseVolatility(max_positions=3))
    cols = ["decision_time", "symbol", "rank", "score", "selected", "entry_price", "return_pct", "void"]
    assert_same_rows(fast.panel, slow.panel, cols, f"{name}: scalar vs vectorised")
    assert len(fast.trades) > 100
    np.testing.assert_allclose(slow.trades["weight"], fast.trades["weight"], rtol=1e-12)
    np.testing.assert_allclose(slow.windows["window_return"], fast.windows["window_return"], rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------------------------------------
# properties: the vectorised defaults equal their scalar rules on random panels
# ---------------------------------------------------------------------------------------------------------

maybe_nan = st.one_of(st.just(math.nan), st.floats(0.0, 0.2), st.sampled_from([0.0, 0.03, 0.05, 0.0500001]))
volume = st.one_of(st.just(math.nan), st.sampled_from([0.0, 99.999, 100.0, 1e6]), st.floats(0.0, 1e4))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400), maybe_nan, volume), min_size=1, max_size=40),
       st.sampled_from([0.03, 0.05]), st.sampled_from([0.0, 100.0]), st.integers(1, 300))
def test_risk_gates_equal_allow_symbol_on_every_row(rows, max_atr, min_qv, warmup):
    risk = RiskManager(max_atr_pct=max_atr, min_quote_volume_24h=min_qv, warmup_bars=warmup)
    panel = pd.DataFrame(rows, columns=["bars_seen", "atr_pct", "quote_volume_24h"])
    panel["symbol"] = [f"S{i}" for i in range(len(panel))]
    panel["decision_ms"] = 0
    fast = risk.gates(panel)
    slow = risk_gates(PassThroughRisk(max_atr, min_qv, warmup), panel)
    assert (fast.all(axis=1).to_numpy() == slow["gate_risk"].to_numpy()).all()
    for i, row in panel.iterrows():
        checked = risk.check(row.to_dict())
        assert checked == {k: bool(v) for k, v in fast.loc[i].items()}


def _random_panel(draw_sizes, atrs) -> tuple[np.ndarray, pd.DataFrame]:
    times, ranks, symbols = [], [], []
    for t, (cands, others) in enumerate(draw_sizes):
        order = list(range(cands + others))
        times += [t * 7_200_000] * (cands + others)
        ranks += list(range(1, cands + 1)) + [math.nan] * others
        symbols += [f"S{t}_{i}" for i in order]
    panel = pd.DataFrame({"decision_ms": times, "symbol": symbols, "atr_pct": atrs[: len(times)]})
    # shuffle rows within the panel: the vectorised path must not depend on row order
    perm = np.random.default_rng(len(times)).permutation(len(times))
    return np.asarray(ranks, dtype=float)[perm], panel.iloc[perm].reset_index(drop=True)


allocators = st.one_of(
    st.builds(EqualWeight, st.integers(1, 5), st.sampled_from([None, 0.1, 0.25, 0.5, 1.0])),
    st.builds(InverseVolatility, st.integers(1, 5), st.sampled_from([None, 0.1, 0.25, 0.5, 1.0])),
    st.integers(1, 5).flatmap(lambda n: st.builds(
        FixedFraction, st.just(n), st.sampled_from([None, 0.05, 0.5]), st.floats(0.01, 1.0 / n))),
)


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 4)), min_size=1, max_size=8), allocators,
       st.lists(st.one_of(st.floats(1e-4, 0.5), st.sampled_from([0.0, math.nan, -0.01])), min_size=100,
                max_size=100))
def test_allocate_panel_equals_allocate_per_decision_time(sizes, allocator, atrs):
    rank, panel = _random_panel(sizes, atrs)
    fast = allocator.allocate_panel(pd.Series(rank), pd.Series(panel["decision_ms"].to_numpy()), panel).to_numpy()

    @dataclass(frozen=True)
    class Scalar(type(allocator)):  # same rule, forced onto the per-decision-time path
        def allocate(self, ranked_symbols, features=None):
            return super().allocate(ranked_symbols, features)

    scalar = Scalar(**{k: getattr(allocator, k) for k in allocator.__dataclass_fields__})
    slow = allocation_weights(scalar, rank, panel)
    np.testing.assert_allclose(slow, fast, rtol=1e-12, atol=0)
    for _, group in panel.assign(w=fast).groupby("decision_ms"):
        assert group["w"].sum() <= 1 + 1e-12
        assert (group["w"] > 0).sum() <= allocator.max_positions
        if allocator.max_weight is not None:
            assert (group["w"] <= allocator.max_weight).all()


def test_equal_weight_without_cap_is_exactly_one_over_n():
    rank = pd.Series([1.0, 2.0, 3.0, math.nan, 1.0, 2.0, 1.0])
    groups = pd.Series([0, 0, 0, 0, 1, 1, 2])
    for alloc in (Allocator(3), EqualWeight(3)):
        w = alloc.allocate_panel(rank, groups).tolist()
        assert w == [1 / 3, 1 / 3, 1 / 3, 0.0, 1 / 2, 1 / 2, 1.0]
        assert alloc.allocate(["a", "b", "c"]) == {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}


def test_sizing_allocators_by_hand():
    feats = {"a": {"atr_pct": 0.1}, "b": {"atr_pct": 0.4}, "c": {"atr_pct": 0.0}, "d": {"atr_pct": 0.2}}
    # 1/0.1 = 10 and 1/0.4 = 2.5 -> 10/12.5 = 0.8 and 0.2; c has no usable ATR, d is below the cut
    assert InverseVolatility(3).allocate(["a", "b", "c", "d"], feats) == pytest.approx({"a": 0.8, "b": 0.2})
    assert InverseVolatility(3, max_weight=0.5).allocate(["a", "b", "c"], feats) == pytest.approx({"a": 0.5, "b": 0.2})
    assert EqualWeight(2, max_weight=0.4).allocate(["a", "b", "c"]) == {"a": 0.4, "b": 0.4}
    assert FixedFraction(3, position_fraction=0.3).allocate(["a", "b"]) == {"a": 0.3, "b": 0.3}
    assert FixedFraction(3, max_weight=0.2, position_fraction=0.3).allocate(["a"]) == {"a": 0.2}
    with pytest.raises(ValueError, match="needs the selected symbols' features"):
        InverseVolatility(3).allocate(["a"])
    with pytest.raises(ValueError, match="position_fraction"):
        FixedFraction(3)
    with pytest.raises(ValueError, match="exceeds 1"):
        FixedFraction(3, position_fraction=0.4)
    with pytest.raises(ValueError, match="max_weight"):
        Allocator(3, max_weight=0.0)
