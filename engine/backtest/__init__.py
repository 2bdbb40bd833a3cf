"""Walk-forward backtests: `WalkForwardConfig`, `run_walk_forward`, `WalkForwardResult`, and
`prepare_histories` to compute features once for several runs."""

from engine.backtest.config import WalkForwardConfig
from engine.backtest.panel import PreparedHistories, prepare_histories
from engine.backtest.walk_forward import WalkForwardResult, run_walk_forward

__all__ = ["PreparedHistories", "WalkForwardConfig", "WalkForwardResult", "prepare_histories", "run_walk_forward"]
