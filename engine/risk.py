"""Risk gates and allocation: explicit objects that every evaluation applies.

`RiskManager` decides which symbols may be traded at a decision time (warm-up, volatility cap,
liquidity floor); `Allocator` turns a ranked list of allowed symbols into equal weights over at most
`max_positions` names. Both work on whole panels (vectorised, for backtests) and on single symbols
(`allow_symbol`, `allocate`), through the same rule code so the two paths cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: gate name -> human explanation used in ranking reasons
RISK_GATE_LABELS = {
    "gate_warmup": "not enough closed bars (warm-up)",
    "gate_atr": "ATR/price above cap",
    "gate_liquidity": "24h quote volume below minimum",
}


@dataclass(frozen=True)
class GateResult:
    allowed: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class RiskManager:
    """Per-symbol risk gates. NaN inputs fail their gate (unknown risk is not allowed)."""

    max_atr_pct: float = 0.05
    min_quote_volume_24h: float = 0.0
    warmup_bars: int = 260

    def __post_init__(self) -> None:
        if not (self.max_atr_pct > 0):
            raise ValueError(f"max_atr_pct must be > 0 (got {self.max_atr_pct})")
        if not (self.min_quote_volume_24h >= 0):
            raise ValueError(f"min_quote_volume_24h must be >= 0 (got {self.min_quote_volume_24h})")
        if int(self.warmup_bars) < 1:
            raise ValueError(f"warmup_bars must be >= 1 (got {self.warmup_bars})")

    def gates(self, panel: pd.DataFrame) -> pd.DataFrame:
        """Boolean gate columns for every row of a panel with `bars_seen`, `atr_pct`, `quote_volume_24h`."""
        return pd.DataFrame(
            {
                "gate_warmup": panel["bars_seen"].to_numpy() >= self.warmup_bars,
                "gate_atr": (panel["atr_pct"] <= self.max_atr_pct).to_numpy(),
                # a symbol that did not trade at all in 24h is never liquid, whatever the minimum
                "gate_liquidity": ((panel["quote_volume_24h"] >= self.min_quote_volume_24h)
                                   & (panel["quote_volume_24h"] > 0)).to_numpy(),
            },
            index=panel.index,
        )

    def allow_symbol(self, symbol: str, features: Mapping[str, float]) -> GateResult:
        """Single-symbol view of `gates`: allowed, and the reasons when not."""
        row = pd.DataFrame([{k: features.get(k, math.nan) for k in ("bars_seen", "atr_pct", "quote_volume_24h")}],
                           index=[symbol])
        passed = self.gates(row).iloc[0]
        reasons = tuple(RISK_GATE_LABELS[g] for g, ok in passed.items() if not ok)
        return GateResult(allowed=not reasons, reasons=reasons)


@dataclass(frozen=True)
class Allocator:
    """Equal weights `1/n` over the top `n <= max_positions` allowed symbols."""

    max_positions: int = 3

    def __post_init__(self) -> None:
        if int(self.max_positions) < 1:
            raise ValueError(f"max_positions must be >= 1 (got {self.max_positions})")

    def allocate(self, ranked_symbols: Sequence[str]) -> dict[str, float]:
        """Symbols in rank order (best first) -> weights of the selected ones."""
        chosen = list(dict.fromkeys(ranked_symbols))[: self.max_positions]
        return {s: 1.0 / len(chosen) for s in chosen}

    def allocate_panel(self, rank: pd.Series, groups: pd.Series) -> pd.Series:
        """Weights for a whole panel: `rank` is 1-based among candidates (NaN = not a candidate)."""
        selected = rank <= self.max_positions
        n = selected.groupby(groups, sort=False).transform("sum")
        return pd.Series(np.where(selected, 1.0 / n.where(n > 0, 1), 0.0), index=rank.index)
