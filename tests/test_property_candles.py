"""Property tests: arbitrary valid candle sets never crash the walk-forward or the ranking, and keep the
no-lookahead invariant (decisions at t are unchanged when every candle not known at t is removed).

The candle sets are what providers may legitimately return: random isolated gaps and long outages, flat
prices, zero volume, tiny (1e-8) and huge (1e8) price levels, a symbol with almost no data. Small and
fast: a few days per symbol, a short warm-up, few examples, no deadline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from engine_helpers import assert_same_rows, decision_columns, truncate_at
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.backtest import WalkForwardConfig, run_walk_forward
from engine.ranking import rank_universe
from engine.schemas import validate_candles
from engine.strategies import get_strategy

START = pd.Timestamp("2024-01-01", tz="UTC")
DAYS = 4
SLOTS = DAYS * 288
CFG = WalkForwardConfig(
    start=START, end=START + pd.Timedelta(days=DAYS), warmup_bars=24, bootstrap_samples=50
)
STRATEGIES = ("macd_rsi_confluence", "momentum_rank")


def make_candles(rng: np.random.Generator, level: float, flat: float, zero_volume: float, gaps: float,
                 outage: bool, keep: float) -> pd.DataFrame:  # fmt: skip
    """A valid 5m candle frame: random walk around `level`, with flat stretches, zero volume and holes."""
    steps = rng.normal(0.0, 0.004, SLOTS)
    steps[rng.random(SLOTS) < flat] = 0.0  # flat prices (no move at all)
    close = level * np.exp(np.cumsum(steps))
    open_ = np.concatenate(([level], close[:-1]))
    wick = np.abs(rng.normal(0.0, 0.002, (2, SLOTS)))
    wick[:, steps == 0.0] = 0.0
    high = np.maximum(open_, close) * (1.0 + wick[0])
    low = np.minimum(open_, close) * (1.0 - np.minimum(wick[1], 0.5))
    volume = rng.lognormal(2.0, 1.0, SLOTS)
    volume[rng.random(SLOTS) < zero_volume] = 0.0
    present = rng.random(SLOTS) >= gaps
    if outage:
        first = int(rng.integers(0, SLOTS - 50))
        present[first : first + int(rng.integers(10, 300))] = False
    present &= np.arange(SLOTS) < int(SLOTS * keep)  # a symbol may stop early (delisted)
    ms = START.value // 1_000_000 + np.arange(SLOTS, dtype=np.int64) * 300_000
    df = pd.DataFrame({"timestamp": pd.to_datetime(ms[present], unit="ms", utc=True), "open": open_[present],
                       "high": high[present], "low": low[present], "close": close[present],
                       "volume": volume[present]})  # fmt: skip
    return validate_candles(df, "generated")


universes = st.builds(
    lambda seed, n, levels, flat, zero, gaps, outage, keep: {
        f"S{i}/USDT": make_candles(
            np.random.default_rng(seed + i),
            levels[i % len(levels)],
            flat,
            zero,
            gaps,
            outage and i == 0,
            keep if i == n - 1 else 1.0,
        )  # fmt: skip
        for i in range(n)
    },
    seed=st.integers(0, 2**31),
    n=st.integers(2, 4),
    levels=st.lists(st.sampled_from([1e-8, 3.7e-5, 0.05, 1.0, 250.0, 6.5e4, 1e8]), min_size=1, max_size=4),
    flat=st.sampled_from([0.0, 0.2, 0.9, 1.0]),
    zero=st.sampled_from([0.0, 0.3, 1.0]),
    gaps=st.sampled_from([0.0, 0.02, 0.3]),
    outage=st.booleans(),
    keep=st.sampled_from([1.0, 0.6, 0.02]),
)


@settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(universe=universes, name=st.sampled_from(STRATEGIES), cut_share=st.floats(0.45, 0.95))
def test_valid_candles_never_crash_and_never_look_ahead(universe, name, cut_share):
    strategy = get_strategy(name)
    full = run_walk_forward(universe, strategy, CFG)
    assert isinstance(full.metrics, dict) and "trade_count" in full.metrics and len(full.windows) > 0
    if len(full.trades):
        assert (full.trades.groupby("decision_time")["weight"].sum() <= 1.0 + 1e-9).all()
        assert full.trades.loc[~full.trades["void"], "return_pct"].notna().all()

    cut = (START + cut_share * pd.Timedelta(days=DAYS)).floor("5min")
    truncated = run_walk_forward(truncate_at(universe, cut), strategy, CFG)
    before = full.panel.loc[full.panel["decision_time"] <= cut]
    after = truncated.panel.loc[truncated.panel["decision_time"] <= cut]
    assert_same_rows(before, after, decision_columns(full.panel), f"{name}: decisions at t <= {cut}")
    w_full = full.windows.loc[full.windows["decision_time"] <= cut, "selected"].tolist()
    w_trunc = truncated.windows.loc[truncated.windows["decision_time"] <= cut, "selected"].tolist()
    assert w_full == w_trunc

    decided = full.windows.loc[full.windows["decision_time"] <= cut, "decision_time"]
    if len(decided):  # the live ranking at the last decision before the cut agrees with the backtest
        t = decided.iloc[-1]
        live = rank_universe(truncate_at(universe, t), strategy, at=t, cfg=CFG)
        chosen = live.loc[live["selected"].astype(bool)].sort_values("rank")["symbol"].tolist()
        expected = full.windows.set_index("decision_time").loc[t, "selected"]
        assert chosen == ([s for s in expected.split(",") if s] if isinstance(expected, str) else [])
    rank_universe(universe, strategy, cfg=CFG)  # the latest decision time the data supports
