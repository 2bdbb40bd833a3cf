"""Parameter sweeps, walk-forward optimisation and overfitting control (docs/sweeps.md).

`run_sweep` runs many configurations of one strategy on one universe, sharing the features and the decision
panel; `plan_sweep` / `run_sweep_chunk` / `merge_chunks` split the same work into chunks that may run on
different workers. `SweepResult` holds one row per configuration (equal to `run_walk_forward` for it) and
says how likely the best one is overfit: PBO, deflated Sharpe, Hansen's SPA. `run_walk_forward_optimization`
chooses parameters on rolling training periods and judges only the stitched test periods.
"""

from engine.sweep.api import run_sweep
from engine.sweep.grid import plan_sweep, sweep_parameters, validate_grid
from engine.sweep.overfit import DeflatedSharpeResult, PBOResult, SPAResult, pbo_cscv
from engine.sweep.result import SweepResult, merge_chunks
from engine.sweep.run import SweepChunk, run_sweep_chunk
from engine.sweep.wfo import OBJECTIVES, Fold, WalkForwardOptimization, run_walk_forward_optimization

__all__ = [
    "DeflatedSharpeResult",
    "Fold",
    "OBJECTIVES",
    "PBOResult",
    "SPAResult",
    "SweepChunk",
    "SweepResult",
    "WalkForwardOptimization",
    "merge_chunks",
    "pbo_cscv",
    "plan_sweep",
    "run_sweep",
    "run_sweep_chunk",
    "run_walk_forward_optimization",
    "sweep_parameters",
    "validate_grid",
]
