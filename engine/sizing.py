"""Position sizing rules as `Allocator`s (portfolio mode, SPEC section 10).

Every rule selects the same symbols as the equal rule (the top `max_positions` candidates by rank) and
only changes their weights; `max_weight` caps each position and the excess stays in cash. Each class
defines the scalar `allocate` (the rule) and its vectorised `allocate_panel`, property-tested equal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from engine.risk import Allocator, SymbolFeatures

SIZING_RULES = ("equal", "inverse_volatility", "fixed_fraction")


@dataclass(frozen=True)
class EqualWeight(Allocator):
    """`1/n` over the `n <= max_positions` selected symbols (the v1 rule), capped at `max_weight`."""


@dataclass(frozen=True)
class InverseVolatility(Allocator):
    """Weights proportional to `1/atr_pct` over the selected symbols (sum 1 before the cap).

    A selected symbol whose `atr_pct` is not a positive finite number cannot be sized: it gets no weight
    (so it is not traded) and the others share the capital.
    """

    def allocate(self, ranked_symbols: Sequence[str], features: SymbolFeatures | None = None) -> dict[str, float]:
        chosen = list(dict.fromkeys(ranked_symbols))[: self.max_positions]
        if chosen and features is None:
            raise ValueError("InverseVolatility.allocate needs the selected symbols' features (atr_pct)")
        inv = {s: _inverse(features[s].get("atr_pct", math.nan)) for s in chosen} if chosen else {}
        total = sum(inv.values())
        return {s: self.cap(v / total) for s, v in inv.items() if v > 0}

    def allocate_panel(self, rank: pd.Series, groups: pd.Series, features: pd.DataFrame | None = None) -> pd.Series:
        if features is None or "atr_pct" not in features:
            raise ValueError("InverseVolatility.allocate_panel needs the panel's atr_pct column")
        selected = (rank <= self.max_positions).to_numpy()
        atr = features["atr_pct"].to_numpy(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.where(selected & np.isfinite(atr) & (atr > 0), 1.0 / atr, 0.0)
        codes, _ = pd.factorize(groups.to_numpy())
        total = np.bincount(codes, weights=inv)[codes]
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = np.where(inv > 0, inv / total, 0.0)
        return pd.Series(self.cap_array(weight), index=rank.index)


def _inverse(atr_pct: Any) -> float:
    value = math.nan if atr_pct is None else float(atr_pct)
    return 1.0 / value if math.isfinite(value) and value > 0 else 0.0


@dataclass(frozen=True)
class FixedFraction(Allocator):
    """Each selected symbol gets `position_fraction` of the sleeve (capped at `max_weight`); the rest is cash."""

    position_fraction: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        f = self.position_fraction
        if f is None or not (0 < f <= 1):
            raise ValueError(f"FixedFraction needs position_fraction in (0, 1] (got {f!r})")
        if f * self.max_positions > 1 + 1e-12:
            raise ValueError(f"position_fraction * max_positions = {f * self.max_positions:g} exceeds 1 "
                             f"(position_fraction={f}, max_positions={self.max_positions})")

    def allocate(self, ranked_symbols: Sequence[str], features: SymbolFeatures | None = None) -> dict[str, float]:
        chosen = list(dict.fromkeys(ranked_symbols))[: self.max_positions]
        return {s: self.cap(float(self.position_fraction)) for s in chosen}

    def allocate_panel(self, rank: pd.Series, groups: pd.Series, features: pd.DataFrame | None = None) -> pd.Series:
        weight = np.where((rank <= self.max_positions).to_numpy(), float(self.position_fraction), 0.0)
        return pd.Series(self.cap_array(weight), index=rank.index)


def check_sizing(sizing: Any, max_weight: Any, position_fraction: Any, max_positions: int) -> tuple[str, float | None,
                                                                                                     float | None]:
    """Validate a sizing configuration; returns `(sizing, max_weight, position_fraction)` normalised."""
    if sizing not in SIZING_RULES:
        raise ValueError(f"unknown sizing {sizing!r}; valid: {', '.join(SIZING_RULES)}")
    max_weight = _fraction("max_weight", max_weight)
    position_fraction = _fraction("position_fraction", position_fraction)
    if sizing == "fixed_fraction":
        if position_fraction is None:
            raise ValueError("sizing='fixed_fraction' needs position_fraction (the share of a sleeve per position)")
        if position_fraction * max_positions > 1 + 1e-12:
            raise ValueError(
                f"position_fraction * max_positions must be <= 1 (got {position_fraction} * {max_positions} = "
                f"{position_fraction * max_positions:g}): the positions would need more than the sleeve's capital"
            )
    elif position_fraction is not None:
        raise ValueError(f"position_fraction only applies to sizing='fixed_fraction' (sizing is {sizing!r})")
    return sizing, max_weight, position_fraction


def _fraction(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not (0 < float(value) <= 1):
        raise ValueError(f"{name} must be a number in (0, 1] or None (got {value!r})")
    return float(value)


def make_allocator(sizing: str, max_positions: int, max_weight: float | None = None,
                   position_fraction: float | None = None) -> Allocator:
    """The `Allocator` of a sizing rule name (what `WalkForwardConfig.sizing` selects)."""
    sizing, max_weight, position_fraction = check_sizing(sizing, max_weight, position_fraction, max_positions)
    if sizing == "inverse_volatility":
        return InverseVolatility(max_positions=max_positions, max_weight=max_weight)
    if sizing == "fixed_fraction":
        return FixedFraction(max_positions=max_positions, max_weight=max_weight, position_fraction=position_fraction)
    return EqualWeight(max_positions=max_positions, max_weight=max_weight)
