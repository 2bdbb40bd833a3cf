"""`momentum_rank`: rank the eligible universe by trend strength under the same risk gates."""

from __future__ import annotations

import pandas as pd

from engine.features.cross_section import group_zscore
from engine.strategies.base import RISK_PARAMS, Param, TradingStrategy


class MomentumRank(TradingStrategy):
    name = "momentum_rank"
    description = (
        "Rank the eligible universe by a momentum score and buy the top names, under the ATR and liquidity "
        "risk gates. Score = 0.5*z(trend_slope) + 0.3*z(ema_dist) + 0.2*z(macd_hist/close), z-scores across "
        "the eligible universe. Optional gate: require a positive 20-bar log-price slope."
    )
    param_specs = (
        *RISK_PARAMS,
        Param("require_positive_trend", bool, False, "only buy symbols whose trend_slope > 0"),
    )
    gate_features = ("trend_slope",)
    gate_labels = {"gate_positive_trend": "trend slope not positive"}

    def gate_rules(self) -> list[str]:
        return ["trend_slope > 0" if self.params["require_positive_trend"] else "trend_slope defined"]

    def signal_gates(self, panel: pd.DataFrame) -> pd.DataFrame:
        positive = panel["trend_slope"] > 0 if self.params["require_positive_trend"] else panel["trend_slope"].notna()
        return pd.DataFrame({"gate_positive_trend": positive}, index=panel.index)

    def score(self, panel: pd.DataFrame) -> pd.Series:
        groups, mask = panel["decision_ms"], panel["eligible"]
        macd_rel = group_zscore(panel["macd_hist"] / panel["close"], groups, mask)
        return 0.5 * panel["trend_slope_z"] + 0.3 * panel["ema_dist_z"] + 0.2 * macd_rel
