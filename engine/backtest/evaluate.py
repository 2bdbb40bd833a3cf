"""One evaluation step shared by backtests and live rankings: cross-section, gates, score, rank, weights.

Reads only information-set columns of the panel; outcome columns are left untouched.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.features import add_cross_sectional
from engine.risk import RISK_GATE_LABELS, Allocator, RiskManager
from engine.strategies.base import TradingStrategy


def require_risk_objects(strategy: TradingStrategy, warmup_bars: int, max_positions: int) -> tuple[RiskManager, Allocator]:
    """A strategy without explicit risk gates and allocator cannot run."""
    if not isinstance(strategy, TradingStrategy):
        raise TypeError(f"expected a TradingStrategy (see engine.strategies.get_strategy), got {type(strategy).__name__}")
    risk = strategy.risk_manager(warmup_bars)
    allocator = strategy.allocator(max_positions)
    if not isinstance(risk, RiskManager):
        raise TypeError(f"strategy {strategy.name!r} returned no RiskManager; it cannot run without risk gates")
    if not isinstance(allocator, Allocator):
        raise TypeError(f"strategy {strategy.name!r} returned no Allocator; it cannot run without one")
    return risk, allocator


def evaluate(
    panel: pd.DataFrame,
    strategy: TradingStrategy,
    risk: RiskManager,
    allocator: Allocator,
    feature_cols: list[str],
) -> pd.DataFrame:
    """Add cross-sectional columns, gate columns, `candidate`, `score`, `rank` (1 = best) and `weight`."""
    panel = add_cross_sectional(panel, feature_cols, by="decision_ms", mask_col="eligible")
    gates = pd.concat([risk.gates(panel), strategy.signal_gates(panel)], axis=1)
    gates = gates.fillna(False).astype(bool)
    score = strategy.score(panel).astype(np.float64)
    candidate = panel["eligible"].to_numpy() & gates.all(axis=1).to_numpy() & np.isfinite(score.to_numpy())
    panel = pd.concat([panel, gates], axis=1)
    panel["score"] = score.where(panel["eligible"])
    panel["candidate"] = candidate
    panel["rank"] = _rank_candidates(panel)
    panel["weight"] = allocator.allocate_panel(panel["rank"], panel["decision_ms"])
    panel["selected"] = panel["weight"] > 0
    return panel


def _rank_candidates(panel: pd.DataFrame) -> pd.Series:
    """1-based rank by score (desc) within each decision time, ties broken by symbol name."""
    cand = panel.loc[panel["candidate"], ["decision_ms", "score", "symbol"]]
    rank = pd.Series(np.nan, index=panel.index)
    if cand.empty:
        return rank
    order = np.lexsort((cand["symbol"].astype(str).to_numpy(), -cand["score"].to_numpy(), cand["decision_ms"].to_numpy()))
    ordered = cand.iloc[order]
    rank.loc[ordered.index] = ordered.groupby("decision_ms", sort=False).cumcount().to_numpy() + 1
    return rank


def gate_reasons(panel: pd.DataFrame, strategy: TradingStrategy) -> pd.Series:
    """Human-readable reasons a row is not a candidate ('' when it is)."""
    labels = {**RISK_GATE_LABELS, **strategy.gate_labels}
    reasons = []
    for _, row in panel.iterrows():
        why = [] if row.get("has_entry", True) else ["no entry candle at t-5m"]
        why += [label for col, label in labels.items() if col in row and not bool(row[col])]
        if not row.get("eligible", True) and row.get("has_entry", True) and row.get("gate_warmup", True):
            why.append("features not yet defined")
        if row.get("eligible", False) and not np.isfinite(row.get("score", np.nan)):
            why.append("no score")
        reasons.append("; ".join(why))
    return pd.Series(reasons, index=panel.index, dtype=object)
