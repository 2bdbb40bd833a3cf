"""`prepare_histories`: features computed once and shared by several runs give exactly what the candle
mapping gives (the pipeline's refresh and sweeps rely on it)."""

from __future__ import annotations

import pandas as pd
import pytest
from engine_helpers import load_universe

from engine.backtest import WalkForwardConfig, prepare_histories, run_walk_forward
from engine.ranking import rank_universe
from engine.strategies import get_strategy, list_strategies


@pytest.fixture(scope="module")
def candles() -> dict[str, pd.DataFrame]:
    return load_universe()


@pytest.mark.parametrize("name", [i.name for i in list_strategies()])
def test_prepared_histories_give_the_same_run(candles, name) -> None:
    cfg = WalkForwardConfig(start="2018-01-22", end="2018-01-30", fee_bps=10, max_positions=2)
    prepared = prepare_histories(candles, cfg.feature_timeframe)
    a = run_walk_forward(candles, get_strategy(name), cfg)
    b = run_walk_forward(prepared, get_strategy(name), cfg)
    pd.testing.assert_frame_equal(a.trades, b.trades)
    pd.testing.assert_frame_equal(a.windows, b.windows)
    assert a.metrics == b.metrics
    assert len(a.trades) > 0


def test_prepared_histories_give_the_same_ranking(candles) -> None:
    prepared = prepare_histories(candles, "1h")
    for info in list_strategies():
        strategy = get_strategy(info.name)
        pd.testing.assert_frame_equal(rank_universe(candles, strategy), rank_universe(prepared, strategy))


def test_prepared_histories_refuse_another_timeframe(candles) -> None:
    prepared = prepare_histories({"ETH/BTC": candles["ETH/BTC"]}, "1h")
    assert set(prepared) == {"ETH/BTC"} and prepared["ETH/BTC"].tf_ms == 3_600_000
    with pytest.raises(ValueError, match="feature_timeframe='4h'"):
        run_walk_forward(prepared, get_strategy("momentum_rank"), WalkForwardConfig(feature_timeframe="4h"))
    with pytest.raises(ValueError, match="non-empty mapping"):
        prepare_histories({})
