"""One evaluation step shared by backtests and live rankings: cross-section, gates, score, rank, weights.

Reads only information-set columns of the panel; outcome columns are left untouched. Risk gates and
weights go through `engine.backtest.contract`, so a `RiskManager.allow_symbol` or `Allocator.allocate`
override is what every evaluation applies.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.backtest.config import WalkForwardConfig
from engine.backtest.contract import allocation_weights, risk_gates
from engine.features.cross_section import symbol_sort_keys
from engine.reuse import reusable
from engine.risk import RISK_GATE_LABELS, Allocator, RiskManager
from engine.sizing import make_allocator
from engine.strategies.base import TradingStrategy


def require_risk_objects(
    strategy: TradingStrategy,
    warmup_bars: int,
    max_positions: int,
    *,
    cfg: WalkForwardConfig | None = None,
    allocator: Allocator | None = None,
) -> tuple[RiskManager, Allocator]:
    """A strategy without explicit risk gates and allocator cannot run.

    The allocator is `allocator` when given, else the strategy's own when it overrides `allocator()`,
    else the sizing rule of `cfg` (`equal`, today's `1/n`, by default). Sizing settings in `cfg` that a
    strategy's or a passed allocator would silently ignore are refused.
    """
    if not isinstance(strategy, TradingStrategy):
        raise TypeError(f"expected a TradingStrategy (see engine.strategies.get_strategy), got {type(strategy).__name__}")
    risk = strategy.risk_manager(warmup_bars)
    custom = allocator is not None or type(strategy).allocator is not TradingStrategy.allocator
    if custom and cfg is not None and (cfg.sizing != "equal" or cfg.max_weight is not None):
        who = "the allocator passed in" if allocator is not None else f"strategy {strategy.name!r}'s own allocator()"
        raise ValueError(f"sizing={cfg.sizing!r}, max_weight={cfg.max_weight!r} would be ignored: {who} decides "
                         "the weights; leave the config's sizing at its defaults or size inside that allocator")
    if allocator is None:
        if custom or cfg is None:
            allocator = strategy.allocator(max_positions)
        else:
            allocator = make_allocator(cfg.sizing, max_positions, cfg.max_weight, cfg.position_fraction)
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
) -> pd.DataFrame:
    """Gate columns, `candidate`, `score`, `rank` (1 = best candidate) and `weight` for each panel row."""
    risk_cols = risk_gates(risk, panel)
    reasons = risk_cols.pop("risk_reasons") if "risk_reasons" in risk_cols else None
    gates = pd.concat([risk_cols, strategy.signal_gates(panel)], axis=1)
    gates = gates.fillna(False).astype(bool)
    eligible = panel["eligible"].to_numpy(dtype=bool)
    score = np.where(eligible, strategy.score(panel).to_numpy(np.float64), np.nan)
    candidate = eligible & gates.all(axis=1).to_numpy() & np.isfinite(score)
    rank = _rank_candidates(panel["decision_ms"].to_numpy(), symbol_sort_keys(panel["symbol"]), score, candidate)
    weight = allocation_weights(allocator, rank, panel)
    out = panel.copy(deep=False)  # new columns only: the panel's data is not copied
    for col in gates.columns:
        out[col] = gates[col].to_numpy()
    if reasons is not None:
        out["risk_reasons"] = reasons.to_numpy()
    out["score"], out["candidate"], out["rank"] = score, candidate, rank
    out["weight"], out["selected"] = weight, weight > 0
    return out


@reusable
def score_order(times: np.ndarray, symbols: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Rows with a finite score, by decision time, then score descending, then symbol.

    The order of every candidate subset is this order filtered, so a sweep whose configurations change
    only the gates sorts once (see engine.reuse).
    """
    idx = np.flatnonzero(np.isfinite(score))
    return idx[np.lexsort((symbols[idx], -score[idx], times[idx]))]


def _rank_candidates(times: np.ndarray, symbols: np.ndarray, score: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """1-based rank by score (desc) within each decision time, ties broken by `symbols` (names, or keys
    in name order); NaN otherwise. Candidates must have a finite score."""
    rank = np.full(len(times), np.nan)
    order = score_order(times, symbols, score)
    order = order[candidate[order]]  # (time, score, symbol) is a total order: filtering keeps it
    if len(order) == 0:
        return rank
    t = times[order]
    new_group = np.r_[True, t[1:] != t[:-1]]
    starts = np.flatnonzero(new_group)
    group_of = np.cumsum(new_group) - 1
    rank[order] = np.arange(len(order)) - starts[group_of] + 1
    return rank


def gate_reasons(panel: pd.DataFrame, strategy: TradingStrategy) -> pd.Series:
    """Human-readable reasons a row is not a candidate ('' when it is)."""
    labels = {**RISK_GATE_LABELS, **strategy.gate_labels}
    reasons = []
    for _, row in panel.iterrows():
        why = [] if row.get("has_entry", True) else ["no entry candle at t-5m"]
        why += [(row.get("risk_reasons") or label) if col == "gate_risk" else label
                for col, label in labels.items() if col in row and not bool(row[col])]
        if not row.get("eligible", True) and row.get("has_entry", True) and row.get("gate_warmup", True):
            why.append("features not yet defined")
        if row.get("eligible", False) and not np.isfinite(row.get("score", np.nan)):
            why.append("no score")
        if row.get("candidate", False) and not row.get("selected", False):
            why.append(f"passed every gate but ranked {int(row['rank'])}, below the max_positions cut")
        reasons.append("; ".join(why))
    return pd.Series(reasons, index=panel.index, dtype=object)
