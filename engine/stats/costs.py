"""Net returns and the cost table: the same trades at several fee levels, and the break-even fee."""

from __future__ import annotations

import numpy as np
import pandas as pd

COST_COLUMNS = ["fee_bps", "slippage_bps", "cost_bps_per_side", "mean_window_return", "total_return"]


def net_return(gross_ratio: np.ndarray, cost_per_side: float) -> np.ndarray:
    """exit*(1-c) / (entry*(1+c)) - 1, from the gross ratio exit/entry."""
    return gross_ratio * (1.0 - cost_per_side) / (1.0 + cost_per_side) - 1.0


def cost_sensitivity(
    trades: pd.DataFrame, n_windows: int, fee_levels_bps: tuple[float, ...], slippage_bps: float, sleeve_factor: float
) -> tuple[pd.DataFrame, float | None]:
    """Mean window return at several FEE levels (each plus the run's slippage), and the break-even fee.

    Row `f` charges `f + slippage_bps` per side, so the row of the run's own fee reproduces the run's mean
    window return. Mean window return is `g(c) * A - B` with `g(c) = (1-c)/(1+c)`, `A` the summed weighted
    gross ratio and `B` the summed invested weight (over all windows), so the break-even cost per side is
    `(A - B)/(A + B)` and the break-even fee is that minus the slippage. A negative break-even fee means
    the selection loses money before any fee.
    """
    done = trades.loc[~trades["void"]] if len(trades) else trades
    w = done["weight"].to_numpy(np.float64) if len(done) else np.array([])
    ratio = done["gross_ratio"].to_numpy(np.float64) if len(done) else np.array([])
    rows = []
    for fee in fee_levels_bps:
        cost = fee + slippage_bps
        total = float((w * net_return(ratio, cost / 10_000)).sum())
        rows.append({
            "fee_bps": float(fee),
            "slippage_bps": float(slippage_bps),
            "cost_bps_per_side": float(cost),
            "mean_window_return": total / n_windows if n_windows else None,
            "total_return": total * sleeve_factor,
        })
    table = pd.DataFrame(rows, columns=COST_COLUMNS)
    if n_windows == 0 or len(done) == 0:
        return table, None
    a = float((w * ratio).sum())
    b = float(w.sum())
    break_even_cost = (a - b) / (a + b)
    return table, break_even_cost * 10_000 - slippage_bps
