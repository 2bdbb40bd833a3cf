"""Walk-forward backtests: `WalkForwardConfig`, `run_walk_forward`, `WalkForwardResult`."""

from engine.backtest.config import WalkForwardConfig
from engine.backtest.walk_forward import WalkForwardResult, run_walk_forward

__all__ = ["WalkForwardConfig", "WalkForwardResult", "run_walk_forward"]
