"""No lookahead in portfolio mode: the truncation idea of tests/test_no_lookahead.py with sizing and
compounding on.

A run on the data truncated at T agrees with the full run on every decision at t <= T, on every trade and
window finished by T, and on every row of `result.equity` marked (its window closed) by T. Sizing reads
only the information set (e.g. atr_pct at t), so `rank_universe` at t gives the backtest's weights.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from engine_helpers import SAMPLE_END, SAMPLE_START, load_universe, truncate_at
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_no_lookahead import CUTS, assert_agree_up_to, assert_ranking_matches_panel, panel_at, plant_extreme

from engine.backtest import WalkForwardConfig, run_walk_forward
from engine.ranking import rank_universe
from engine.strategies import get_strategy

STRATEGIES = ("macd_rsi_confluence", "momentum_rank")
CONFIGS = {
    "invvol_cap_compounding": WalkForwardConfig(start=SAMPLE_START, end=SAMPLE_END, sizing="inverse_volatility",
                                                max_weight=0.4, compounding=True, initial_capital=1000.0),
    "fixed_fraction_compounding": WalkForwardConfig(start=SAMPLE_START, end=SAMPLE_END, sizing="fixed_fraction",
                                                    position_fraction=0.25, compounding=True),
}
_FULL: dict[tuple[str, str], object] = {}


@pytest.fixture(scope="module")
def universe():
    return load_universe()


def full_run(universe, name: str, mode: str):
    if (name, mode) not in _FULL:
        _FULL[(name, mode)] = run_walk_forward(universe, get_strategy(name), CONFIGS[mode])
    return _FULL[(name, mode)]


def assert_equity_agrees_up_to(ref, other, cut: pd.Timestamp, what: str) -> int:
    """Rows of `result.equity` whose window has closed by `cut` are identical."""
    er = ref.equity.loc[ref.equity["marked_at"] <= cut]
    eo = other.equity.loc[other.equity["marked_at"] <= cut]
    pd.testing.assert_frame_equal(er, eo, check_exact=True, obj=f"{what}: equity marked by {cut}")
    return len(er)


@pytest.mark.parametrize("mode", list(CONFIGS))
@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("cut", CUTS, ids=lambda c: c.strftime("%m%d-%H%M"))
def test_truncated_portfolio_run_agrees_with_full_run(universe, name, cut, mode):
    full = full_run(universe, name, mode)
    truncated = run_walk_forward(truncate_at(universe, cut), get_strategy(name), CONFIGS[mode])
    counts = assert_agree_up_to(full, truncated, cut, f"{name} {mode} cut {cut}")
    assert counts["finished_trades"] > 0, "vacuous: no finished trade before the cut"
    marked = assert_equity_agrees_up_to(full, truncated, cut, f"{name} {mode}")
    assert marked > 0, "vacuous: no equity row marked before the cut"
    # not vacuous: the sizing is really on (weights capped at 0.4 or fixed at 0.25, never all 1/n)
    weights = truncated.trades["weight"]
    n = truncated.trades.groupby("decision_time")["symbol"].transform("size")
    assert (weights <= 0.4 + 1e-15).all() and not np.allclose(weights, 1 / n)
    # the truncated run trades nothing after the cut: its capital stays where the last decision left it
    eq = truncated.equity["total_equity"]
    assert (eq.loc[eq.index > cut] == eq.loc[eq.index <= cut].iloc[-1]).all()


@settings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.integers(0, 8 * 288 - 1), name=st.sampled_from(STRATEGIES), mode=st.sampled_from(list(CONFIGS)))
def test_random_cut_points_agree_in_portfolio_mode(universe, steps, name, mode):
    cut = pd.Timestamp("2018-01-21 00:00", tz="UTC") + steps * pd.Timedelta("5min")
    full = full_run(universe, name, mode)
    truncated = run_walk_forward(truncate_at(universe, cut), get_strategy(name), CONFIGS[mode])
    assert_agree_up_to(full, truncated, cut, f"{name} {mode} random cut {cut}")
    assert_equity_agrees_up_to(full, truncated, cut, f"{name} {mode} random cut")


@pytest.mark.parametrize("name", STRATEGIES)
def test_planted_extreme_candle_after_cut_changes_no_earlier_weight_or_equity(universe, name):
    mode, cut = "invvol_cap_compounding", CUTS[2]
    full = full_run(universe, name, mode)
    after = full.trades.loc[full.trades["decision_time"] > cut]
    symbol = str(after["symbol"].iloc[0])
    ts = universe[symbol]["timestamp"]
    first_unknown = ts.loc[ts + pd.Timedelta("5min") > cut].iloc[0]
    run = run_walk_forward({**universe, symbol: plant_extreme(universe[symbol], first_unknown)}, get_strategy(name),
                           CONFIGS[mode])
    assert_agree_up_to(full, run, cut, f"{name} planted after {cut}")
    assert_equity_agrees_up_to(full, run, cut, f"{name} planted after {cut}")
    # not vacuous: the candle moves the ATR, hence the inverse-volatility weights, after the cut
    later = full.panel["decision_time"] > cut
    assert not np.array_equal(full.panel.loc[later, "atr_pct"].to_numpy(),
                              run.panel.loc[run.panel["decision_time"] > cut, "atr_pct"].to_numpy())


@pytest.mark.parametrize("mode", list(CONFIGS))
@pytest.mark.parametrize("name", STRATEGIES)
def test_rank_universe_gives_the_backtest_weights(universe, name, mode):
    full = full_run(universe, name, mode)
    times = full.trades["decision_time"].drop_duplicates().iloc[[0, 10, -1]]
    for t in times:
        live = rank_universe(truncate_at(universe, t), get_strategy(name), at=t, cfg=CONFIGS[mode])
        assert_ranking_matches_panel(live, panel_at(full, t), f"{name} {mode} live at {t}")
