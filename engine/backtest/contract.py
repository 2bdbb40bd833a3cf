"""The risk-object contract: `RiskManager.allow_symbol` and `Allocator.allocate` are the rules.

The vectorised `gates` / `allocate_panel` are their fast default implementations. They are used only when
the class that defines them is at least as derived as the class that defines the scalar method; a
subclass that overrides `allow_symbol` (or `allocate`) alone is applied row by row (decision time by
decision time), so it always changes the result. A class overriding both is trusted to keep them equal.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from engine.risk import Allocator, RiskManager


def _owner(cls: type, name: str) -> int:
    """Position in the MRO of the class that defines `name` (0 = the class itself)."""
    return next(i for i, k in enumerate(cls.__mro__) if name in k.__dict__)


def scalar_rule_overridden(obj: object, scalar: str, vectorised: str) -> bool:
    """True when `scalar` is overridden below the class that defines `vectorised` (so they may differ)."""
    cls = type(obj)
    return _owner(cls, scalar) < _owner(cls, vectorised)


class _Row(Mapping[str, Any]):
    """Read-only view of one panel row (cheaper than building a dict per row)."""

    __slots__ = ("_cols", "_i")

    def __init__(self, cols: dict[str, np.ndarray], i: int) -> None:
        self._cols, self._i = cols, i

    def __getitem__(self, key: str) -> Any:
        return self._cols[key][self._i]

    def __iter__(self) -> Iterator[str]:
        return iter(self._cols)

    def __len__(self) -> int:
        return len(self._cols)


def _columns(panel: pd.DataFrame) -> dict[str, np.ndarray]:
    cols = {c: panel[c].to_numpy() for c in panel.columns}
    if "symbol" in cols:
        cols["symbol"] = panel["symbol"].astype(str).to_numpy()
    return cols


def risk_gates(risk: RiskManager, panel: pd.DataFrame) -> pd.DataFrame:
    """Gate columns of every panel row: `risk.gates` unless `allow_symbol` is overridden below it, then
    `gate_risk` (allowed) and `risk_reasons` from `allow_symbol` on each row's information set."""
    # `check` is the per-gate helper behind the default `allow_symbol`: overriding it changes the rule too
    if not any(scalar_rule_overridden(risk, scalar, "gates") for scalar in ("allow_symbol", "check")):
        return risk.gates(panel)
    cols = _columns(panel)
    symbols = cols["symbol"]
    results = [risk.allow_symbol(symbols[i], _Row(cols, i)) for i in range(len(panel))]
    return pd.DataFrame(
        {
            "gate_risk": np.array([bool(r.allowed) for r in results], dtype=bool),
            "risk_reasons": np.array(["; ".join(r.reasons) for r in results], dtype=object),
        },
        index=panel.index,
    )


def allocation_weights(allocator: Allocator, rank: np.ndarray, panel: pd.DataFrame) -> np.ndarray:
    """Weight of every panel row (0 = not selected): `allocate_panel` unless `allocate` is overridden
    below it, then `allocate` once per decision time on the candidates in rank order."""
    times = panel["decision_ms"].to_numpy()
    if not scalar_rule_overridden(allocator, "allocate", "allocate_panel"):
        return allocator.allocate_panel(pd.Series(rank), pd.Series(times), panel).to_numpy(np.float64)
    weight = np.zeros(len(rank))
    idx = np.flatnonzero(np.isfinite(rank))
    if len(idx) == 0:
        return weight
    idx = idx[np.lexsort((rank[idx], times[idx]))]
    cols = _columns(panel)
    symbols = cols["symbol"]
    call = _allocate_caller(allocator)
    cuts = np.flatnonzero(np.r_[True, times[idx][1:] != times[idx][:-1]])
    for start, end in zip(cuts, np.r_[cuts[1:], len(idx)], strict=True):
        rows = idx[start:end]
        ranked = [str(symbols[i]) for i in rows]
        weights = call(ranked, {s: _Row(cols, int(i)) for s, i in zip(ranked, rows, strict=True)})
        _check_weights(allocator, weights, ranked, times[rows[0]])
        position = dict(zip(ranked, rows, strict=True))
        for symbol, w in weights.items():
            weight[position[symbol]] = float(w)
    return weight


def _allocate_caller(allocator: Allocator):
    """`allocate(ranked, features)`, or `allocate(ranked)` for an override written without `features`."""
    params = inspect.signature(allocator.allocate).parameters.values()
    takes_two = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params) >= 2 or any(
        p.kind == p.VAR_POSITIONAL for p in params)
    return allocator.allocate if takes_two else (lambda ranked, _features: allocator.allocate(ranked))


def _check_weights(allocator: Allocator, weights: Mapping[str, float], ranked: list[str], t_ms: int) -> None:
    where = f"{type(allocator).__name__}.allocate at {pd.Timestamp(int(t_ms), unit='ms', tz='UTC')}"
    if not isinstance(weights, Mapping):
        raise TypeError(f"{where} must return a dict symbol -> weight (got {type(weights).__name__})")
    unknown = sorted(set(weights) - set(ranked))
    if unknown:
        raise ValueError(f"{where} gave weight to {unknown}, which are not among the ranked candidates")
    values = np.array([float(w) for w in weights.values()], dtype=np.float64)
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError(f"{where} returned a negative or non-finite weight: {dict(weights)}")
    if values.sum() > 1 + 1e-9:
        raise ValueError(f"{where} invests {values.sum():g} > 1 of the capital (long only, no leverage)")
    if (values > 0).sum() > allocator.max_positions:
        raise ValueError(f"{where} selected {(values > 0).sum()} symbols, more than max_positions="
                         f"{allocator.max_positions}")
