"""`macd_rsi_confluence`: rising MACD momentum inside a neutral RSI band, with volume confirmation."""

from __future__ import annotations

import pandas as pd

from engine.features.cross_section import group_zscore
from engine.strategies.base import RISK_PARAMS, Param, TradingStrategy


class MacdRsiConfluence(TradingStrategy):
    name = "macd_rsi_confluence"
    description = (
        "Long symbols whose MACD histogram is rising (macd_hist_slope > 0) while RSI sits in a neutral band "
        "(default 40-65), under the ATR and liquidity risk gates. Score = 0.5*z(macd_hist_slope/close) + "
        "0.25*z(ema_dist) + 0.25*z(volume_z), z-scores taken across the eligible universe at the decision time."
    )
    param_specs = (
        *RISK_PARAMS,
        Param("rsi_low", float, 40.0, "lowest RSI(14) accepted", 0.0, 100.0),
        Param("rsi_high", float, 65.0, "highest RSI(14) accepted", 0.0, 100.0),
    )
    gate_features = ("macd_hist_slope", "rsi")
    gate_labels = {
        "gate_macd_slope": "MACD histogram not rising",
        "gate_rsi_band": "RSI outside band",
    }

    def validate(self) -> None:
        if self.params["rsi_low"] > self.params["rsi_high"]:
            raise ValueError(
                f"strategy {self.name!r}: rsi_low ({self.params['rsi_low']}) must be <= rsi_high "
                f"({self.params['rsi_high']})"
            )

    def gate_rules(self) -> list[str]:
        return ["macd_hist_slope > 0", f"{self.params['rsi_low']:g} <= rsi <= {self.params['rsi_high']:g}"]

    def signal_gates(self, panel: pd.DataFrame) -> pd.DataFrame:
        rsi = panel["rsi"]
        return pd.DataFrame(
            {
                "gate_macd_slope": panel["macd_hist_slope"] > 0,
                "gate_rsi_band": (rsi >= self.params["rsi_low"]) & (rsi <= self.params["rsi_high"]),
            },
            index=panel.index,
        )

    def score(self, panel: pd.DataFrame) -> pd.Series:
        groups, mask = panel["decision_ms"], panel["eligible"]
        # MACD is in price units: divide by close so symbols with different price levels compare fairly
        macd_slope_rel = panel["macd_hist_slope"] / panel["close"]
        return (
            0.5 * group_zscore(macd_slope_rel, groups, mask)
            + 0.25 * panel["ema_dist_z"]
            + 0.25 * panel["volume_z_z"]
        )
