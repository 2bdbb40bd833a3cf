"""Risk gates and allocation: explicit objects that every evaluation applies.

`RiskManager.allow_symbol` decides whether one symbol may be traded at a decision time (warm-up,
volatility cap, liquidity floor); `Allocator.allocate` turns the ranked allowed symbols of one decision
time into weights. These scalar methods are the contract. `gates` / `allocate_panel` are their vectorised
equivalents for whole panels (property-tested equal); the engine uses them only when a subclass did not
override the scalar rule below them (see `engine.backtest.contract`), so overriding `allow_symbol` or
`allocate` alone always changes the result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.features.cross_section import group_codes

#: gate name -> human explanation used in ranking reasons
RISK_GATE_LABELS = {
    "gate_warmup": "not enough closed bars (warm-up)",
    "gate_atr": "ATR/price above cap",
    "gate_liquidity": "24h quote volume below minimum",
    # a RiskManager whose own `allow_symbol` is applied row by row reports one gate and its reasons
    "gate_risk": "refused by the risk manager",
}

#: symbol -> its information-set values at the decision time (features, bars_seen, entry_price, ...)
SymbolFeatures = Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class GateResult:
    allowed: bool
    reasons: tuple[str, ...]


def _num(features: Mapping[str, float], key: str) -> float:
    value = features.get(key, math.nan)
    return math.nan if value is None else float(value)


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
        """Boolean gate columns for every row of a panel with `bars_seen`, `atr_pct`, `quote_volume_24h`.

        The vectorised form of `check`: same comparisons, NaN fails (property-tested equal).
        """
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

    def check(self, features: Mapping[str, float]) -> dict[str, bool]:
        """Each gate for one symbol, in plain Python (fast enough to run per row; NaN compares False)."""
        bars, atr, qv = (_num(features, k) for k in ("bars_seen", "atr_pct", "quote_volume_24h"))
        return {
            "gate_warmup": bars >= self.warmup_bars,
            "gate_atr": atr <= self.max_atr_pct,
            "gate_liquidity": qv >= self.min_quote_volume_24h and qv > 0,
        }

    def allow_symbol(self, symbol: str, features: Mapping[str, float]) -> GateResult:
        """Whether `symbol` may be traded given its information-set values, and the reasons when not."""
        reasons = tuple(RISK_GATE_LABELS[g] for g, ok in self.check(features).items() if not ok)
        return GateResult(allowed=not reasons, reasons=reasons)


@dataclass(frozen=True)
class Allocator:
    """Equal weights `1/n` over the top `n <= max_positions` allowed symbols, each capped at `max_weight`.

    A capped excess stays in cash (weights may sum to less than 1). Subclasses change the sizing rule
    (`engine.sizing`); a user subclass may override `allocate` alone.
    """

    max_positions: int = 3
    max_weight: float | None = None

    def __post_init__(self) -> None:
        if int(self.max_positions) < 1:
            raise ValueError(f"max_positions must be >= 1 (got {self.max_positions})")
        if self.max_weight is not None and not (0 < self.max_weight <= 1):
            raise ValueError(f"max_weight must be in (0, 1] or None (got {self.max_weight!r})")

    def allocate(self, ranked_symbols: Sequence[str], features: SymbolFeatures | None = None) -> dict[str, float]:
        """Symbols in rank order (best first) -> weights of the selected ones.

        `features` maps each ranked symbol to its information-set values (e.g. `atr_pct`); the equal
        rule does not need it.
        """
        chosen = list(dict.fromkeys(ranked_symbols))[: self.max_positions]
        return {s: self.cap(1.0 / len(chosen)) for s in chosen}

    def allocate_panel(self, rank: pd.Series, groups: pd.Series, features: pd.DataFrame | None = None) -> pd.Series:
        """Weights for a whole panel: `rank` is 1-based among candidates (NaN = not a candidate),
        `groups` the decision time of each row, `features` the panel rows (information set)."""
        selected = (rank <= self.max_positions).to_numpy()
        codes, n_groups = group_codes(groups)
        if len(codes) and codes.min() < 0:  # missing group labels: pandas' groupby semantics
            n = pd.Series(selected, index=rank.index).groupby(groups, sort=False).transform("sum").to_numpy()
        else:
            n = np.bincount(codes, weights=selected, minlength=n_groups)[codes]
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = np.where(selected, 1.0 / np.where(n > 0, n, 1), 0.0)
        return pd.Series(self.cap_array(weight), index=rank.index)

    def cap(self, weight: float) -> float:
        """`min(weight, max_weight)`: the excess stays in cash."""
        return weight if self.max_weight is None else min(weight, float(self.max_weight))

    def cap_array(self, weight: np.ndarray) -> np.ndarray:
        return weight if self.max_weight is None else np.minimum(weight, float(self.max_weight))
