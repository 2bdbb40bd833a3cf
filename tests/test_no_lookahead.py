"""No lookahead, freqtrade lookahead-analysis style, on the real sample.

For several cut points T the walk-forward on data truncated to the information set at T (candles with
open_time + 5m <= T) must agree exactly with the run on the full data on every decision at t <= T and
on every trade that has finished by T. A planted extreme candle after T must change nothing at or before
T, and a candle stamped exactly t (open at t, closed only at t + 5m) must never change the decision at t.
`rank_universe` at t must reproduce the backtest's decision at t.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from engine_helpers import (
    SAMPLE_END,
    SAMPLE_START,
    assert_same_rows,
    canonical,
    decision_columns,
    load_universe,
    truncate_at,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.backtest import WalkForwardConfig, run_walk_forward
from engine.ranking import rank_universe
from engine.strategies import get_strategy

STRATEGIES = ("macd_rsi_confluence", "momentum_rank")
# explicit start/end: the identical decision grid in every run, whatever the data
CONFIGS = {
    "1h": WalkForwardConfig(start=SAMPLE_START, end=SAMPLE_END),
    # 4h feature bars with decisions every 2h: half the decisions fall in the middle of an open bar
    "4h": WalkForwardConfig(start=SAMPLE_START, end=SAMPLE_END, feature_timeframe="4h", warmup_bars=60),
}
CFG = CONFIGS["1h"]
WINDOW = pd.Timedelta(hours=CFG.window_hours)

# warm-up (260 1h bars) ends 2018-01-21 00:00; cuts on and off the 2h decision grid
CUTS = [
    pd.Timestamp("2018-01-21 06:00", tz="UTC"),  # on grid, early: few decisions before it
    pd.Timestamp("2018-01-22 10:00", tz="UTC"),  # on grid
    pd.Timestamp("2018-01-24 03:17", tz="UTC").floor("5min"),  # off grid: 03:15
    pd.Timestamp("2018-01-25 23:40", tz="UTC"),  # off grid
    pd.Timestamp("2018-01-27 13:00", tz="UTC"),  # odd hour: off the 2h grid
    pd.Timestamp("2018-01-29 02:00", tz="UTC"),  # on grid, late
]

_FULL: dict[tuple[str, str], object] = {}


@pytest.fixture(scope="module")
def universe():
    return load_universe()


def full_run(universe, name: str, tf: str = "1h"):
    if (name, tf) not in _FULL:
        _FULL[(name, tf)] = run_walk_forward(universe, get_strategy(name), CONFIGS[tf])
    return _FULL[(name, tf)]


def finished_trades(trades: pd.DataFrame, cut: pd.Timestamp) -> pd.DataFrame:
    """Trades whose outcome is fully known at `cut` (exit at or before it; void trades whose window
    ended by then)."""
    done = trades["exit_time"].le(cut) | (trades["void"] & (trades["decision_time"] + WINDOW <= cut))
    return trades.loc[done]


def assert_agree_up_to(ref, other, cut: pd.Timestamp, what: str) -> dict[str, int]:
    """`other` agrees with `ref` on every decision at t <= cut and on every trade finished by cut."""
    # decisions: every eligible (t, symbol) row, every information/decision column, exact
    pr = ref.panel.loc[ref.panel["decision_time"] <= cut]
    po = other.panel.loc[other.panel["decision_time"] <= cut]
    cols = decision_columns(ref.panel)
    assert cols == decision_columns(other.panel), f"{what}: panel columns differ"
    for needed in ("eligible", "score", "rank", "candidate", "selected", "weight", "entry_price", "rsi"):
        assert needed in cols, f"{what}: panel lacks decision column {needed!r}"
    assert_same_rows(pr, po, cols, f"{what}: panel at t <= {cut}")

    # per-window decisions at t <= cut, and whole window rows whose window has ended by cut
    wr = ref.windows.loc[ref.windows["decision_time"] <= cut].reset_index(drop=True)
    wo = other.windows.loc[other.windows["decision_time"] <= cut].reset_index(drop=True)
    decided = ["decision_time", "n_eligible", "n_candidates", "n_selected", "selected"]
    pd.testing.assert_frame_equal(wr[decided], wo[decided], check_exact=True, obj=f"{what}: windows at t <= {cut}")
    complete = (wr["decision_time"] + WINDOW <= cut).to_numpy()
    pd.testing.assert_frame_equal(
        wr.loc[complete], wo.loc[complete], check_exact=True, obj=f"{what}: finished windows"
    )

    # trades decided at t <= cut: same decision; trades finished by cut: identical in every column
    tr = ref.trades.loc[ref.trades["decision_time"] <= cut]
    to = other.trades.loc[other.trades["decision_time"] <= cut]
    assert_same_rows(tr, to, decision_columns(ref.trades), f"{what}: trades decided at t <= {cut}")
    fin = finished_trades(ref.trades, cut)
    keys = pd.MultiIndex.from_frame(fin[["decision_time", "symbol"]])
    other_keyed = other.trades.set_index(["decision_time", "symbol"])
    assert keys.isin(other_keyed.index).all(), f"{what}: finished trades missing from the other run"
    matched = other_keyed.loc[keys].reset_index()[list(ref.trades.columns)]
    assert_same_rows(fin, matched, list(ref.trades.columns), f"{what}: trades finished by {cut}")
    return {"decisions": int(pr["decision_time"].nunique()), "finished_trades": len(fin), "rows": len(pr)}


# ---------------------------------------------------------------------------------------------------------
# 1. truncated vs full
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tf", list(CONFIGS))
@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("cut", CUTS, ids=lambda c: c.strftime("%m%d-%H%M"))
def test_truncated_run_agrees_with_full_run(universe, name, cut, tf):
    full = full_run(universe, name, tf)
    truncated = run_walk_forward(truncate_at(universe, cut), get_strategy(name), CONFIGS[tf])
    counts = assert_agree_up_to(full, truncated, cut, f"{name} {tf} cut {cut}")
    assert counts["decisions"] > 0 and counts["rows"] > 0, "vacuous: no decision before the cut"
    assert counts["finished_trades"] > 0, "vacuous: no finished trade before the cut"
    # and the truncated run really knows nothing after the cut
    assert truncated.panel["decision_time"].max() <= cut
    assert (truncated.trades["exit_time"].dropna() <= cut).all()


@pytest.mark.parametrize("name", STRATEGIES)
def test_full_run_is_deterministic(universe, name):
    again = run_walk_forward(load_universe(), get_strategy(name), CFG)
    full = full_run(universe, name)
    assert_same_rows(full.panel, again.panel, list(full.panel.columns), f"{name}: rerun panel")
    pd.testing.assert_frame_equal(full.windows, again.windows, check_exact=True)


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.integers(0, 8 * 288 - 1),
    name=st.sampled_from(STRATEGIES),
)
def test_random_cut_points_agree(universe, steps, name):
    """Property: any 5m cut point after the warm-up (most are off the decision grid)."""
    cut = pd.Timestamp("2018-01-21 00:00", tz="UTC") + steps * pd.Timedelta("5min")
    full = full_run(universe, name)
    truncated = run_walk_forward(truncate_at(universe, cut), get_strategy(name), CFG)
    assert_agree_up_to(full, truncated, cut, f"{name} random cut {cut}")


# ---------------------------------------------------------------------------------------------------------
# 2. a planted extreme candle after T
# ---------------------------------------------------------------------------------------------------------


def plant_extreme(candles: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    """Prices x10 and volume x100 on the candle stamped `at` (still a valid candle)."""
    out = candles.copy()
    row = out["timestamp"] == at
    assert row.sum() == 1, f"no candle stamped {at}"
    out.loc[row, ["open", "high", "low", "close"]] *= 10.0
    out.loc[row, "volume"] *= 100.0
    return out


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("cut", [CUTS[1], CUTS[2], CUTS[4]], ids=lambda c: c.strftime("%m%d-%H%M"))
def test_planted_extreme_candle_after_cut_changes_nothing_before(universe, name, cut):
    full = full_run(universe, name)
    # plant it in a symbol the strategy actually trades right after the cut, on the first candle that is
    # not in the information set at the cut (open_time + 5m > cut)
    after = full.trades.loc[full.trades["decision_time"] > cut]
    symbol = str(after["symbol"].iloc[0]) if len(after) else "ETH/BTC"
    ts = universe[symbol]["timestamp"]
    first_unknown = ts.loc[ts + pd.Timedelta("5min") > cut].iloc[0]
    planted = {**universe, symbol: plant_extreme(universe[symbol], first_unknown)}
    # a second planted candle later on, in another symbol, for good measure
    other = "LTC/BTC" if symbol != "LTC/BTC" else "ETH/BTC"
    planted[other] = plant_extreme(universe[other], first_unknown + pd.Timedelta(hours=7))

    run = run_walk_forward(planted, get_strategy(name), CFG)
    assert_agree_up_to(full, run, cut, f"{name} planted after {cut}")

    # not vacuous: the planted candle does change what happens after the cut
    # (prices x10 on a candle that is not the last of its bar move high/low, hence ATR, and volume)
    later_full = canonical(full.panel.loc[full.panel["decision_time"] > cut])
    later_run = canonical(run.panel.loc[run.panel["decision_time"] > cut])
    with pytest.raises(AssertionError):
        assert_same_rows(later_full, later_run, decision_columns(full.panel), "after the cut")


# ---------------------------------------------------------------------------------------------------------
# 3. the candle stamped exactly t is not known at t
# ---------------------------------------------------------------------------------------------------------


def pick_decisions(full, n: int = 3) -> list[tuple[pd.Timestamp, str]]:
    """`n` decision times spread over the run where something was selected, with the rank-1 symbol, plus
    one at hh:00 with hh = 2 mod 4 (the middle of an open 4h bar when features are on 4h bars)."""
    tr = full.trades.loc[full.trades["rank"] == 1].reset_index(drop=True)
    idx = list(np.linspace(0, len(tr) - 1, n).round().astype(int))
    mid_bar = np.flatnonzero((tr["decision_time"].dt.hour % 4 == 2).to_numpy())
    idx.append(int(mid_bar[len(mid_bar) // 2]))
    return [(tr.loc[i, "decision_time"], str(tr.loc[i, "symbol"])) for i in dict.fromkeys(idx)]


def spike_candle_at(candles: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
    """Huge close/high/volume and a crash low on the candle stamped exactly t (valid OHLC)."""
    out = candles.copy()
    row = out["timestamp"] == t
    assert row.sum() == 1, f"no candle stamped {t}"
    out.loc[row, "high"] *= 10.0
    out.loc[row, "close"] *= 5.0
    out.loc[row, "low"] *= 0.1
    out.loc[row, "volume"] *= 100.0
    return out


def panel_at(result, t: pd.Timestamp) -> pd.DataFrame:
    return canonical(result.panel.loc[result.panel["decision_time"] == t])


@pytest.mark.parametrize("tf", list(CONFIGS))
@pytest.mark.parametrize("name", STRATEGIES)
def test_candle_stamped_t_never_influences_decision_at_t(universe, name, tf):
    full = full_run(universe, name, tf)
    checked = 0
    for t, symbol in pick_decisions(full):
        spiked = {**universe, symbol: spike_candle_at(universe[symbol], t)}
        run = run_walk_forward(spiked, get_strategy(name), CONFIGS[tf])

        before, after = panel_at(full, t), panel_at(run, t)
        cols = decision_columns(full.panel)
        assert_same_rows(before, after, cols, f"{name} at {t} with the candle stamped t spiked in {symbol}")
        w_full = full.windows.set_index("decision_time").loc[t]
        w_run = run.windows.set_index("decision_time").loc[t]
        assert w_full["selected"] == w_run["selected"]

        # same decision and feature snapshot for the trade, but its outcome does see the candle
        before_trade = full.trades.set_index(["decision_time", "symbol"]).loc[(t, symbol)]
        after_trade = run.trades.set_index(["decision_time", "symbol"]).loc[(t, symbol)]
        snapshot = [c for c in decision_columns(full.trades) if c not in ("decision_time", "symbol")]
        for col in snapshot:
            b, a = before_trade[col], after_trade[col]
            assert b == a or (pd.isna(b) and pd.isna(a)), f"{name} {t} {symbol} {col}"
        assert after_trade["max_drawdown"] < before_trade["max_drawdown"], "the spiked candle is inside the trade window"
        assert after_trade["max_drawdown"] == pytest.approx(
            spiked[symbol].set_index("timestamp").loc[t, "low"] / before_trade["entry_price"] - 1.0, rel=1e-12
        )
        checked += 1
    assert checked >= 3


# ---------------------------------------------------------------------------------------------------------
# 4. rank_universe at t == the backtest's decision at t
# ---------------------------------------------------------------------------------------------------------


def assert_ranking_matches_panel(ranking: pd.DataFrame, panel_t: pd.DataFrame, what: str) -> None:
    eligible = ranking.loc[ranking["eligible"].astype(bool)].copy()
    assert sorted(eligible["symbol"]) == sorted(panel_t["symbol"]), f"{what}: eligible symbols differ"
    assert not ranking.loc[~ranking["eligible"].astype(bool), "selected"].astype(bool).any()
    eligible = eligible.set_index("symbol").loc[panel_t["symbol"]]
    np.testing.assert_allclose(
        eligible["score"].to_numpy(np.float64), panel_t["score"].to_numpy(np.float64), rtol=1e-12, atol=1e-12,
        err_msg=f"{what}: scores",
    )
    for col in ("rank", "weight"):
        np.testing.assert_array_equal(
            eligible[col].to_numpy(np.float64), panel_t[col].to_numpy(np.float64), err_msg=f"{what}: {col}"
        )
    for col in ("candidate", "selected"):
        assert (eligible[col].astype(bool).to_numpy() == panel_t[col].astype(bool).to_numpy()).all(), f"{what}: {col}"
    for col in ("rsi", "macd_hist", "macd_hist_slope", "ema_dist", "trend_slope", "atr_pct", "bb_width",
                "volume_z", "volume_trend", "quote_volume_24h", "entry_price"):
        np.testing.assert_array_equal(
            eligible[col].to_numpy(np.float64), panel_t[col].to_numpy(np.float64), err_msg=f"{what}: {col}"
        )


@pytest.mark.parametrize("tf", list(CONFIGS))
@pytest.mark.parametrize("name", STRATEGIES)
def test_rank_universe_matches_backtest_decision(universe, name, tf):
    full = full_run(universe, name, tf)
    strategy, cfg = get_strategy(name), CONFIGS[tf]
    for t, symbol in pick_decisions(full):
        panel_t = panel_at(full, t)
        # on the full data (the future exists but must be ignored) ...
        ranking = rank_universe(universe, strategy, at=t, cfg=cfg)
        assert_ranking_matches_panel(ranking, panel_t, f"{name} full data at {t}")
        # ... on exactly the information set at t (what a live ranking sees) ...
        live = rank_universe(truncate_at(universe, t), strategy, at=t, cfg=cfg)
        assert_ranking_matches_panel(live, panel_t, f"{name} live data at {t}")
        # ... and with the candle stamped t spiked
        spiked = {**universe, symbol: spike_candle_at(universe[symbol], t)}
        assert_ranking_matches_panel(
            rank_universe(spiked, strategy, at=t, cfg=cfg), panel_t, f"{name} spiked candle at {t}"
        )
        selected_bt = full.windows.set_index("decision_time").loc[t, "selected"].split(",")
        ranked = ranking.loc[ranking["selected"].astype(bool)].sort_values("rank")["symbol"].tolist()
        assert ranked == selected_bt
