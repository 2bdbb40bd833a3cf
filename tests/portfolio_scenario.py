"""Hand-made candles for the portfolio-mode tests: three symbols whose 1h ATR is known exactly.

Every 5m candle of a symbol has the same high and low (its band) and a close inside the band, so every
1h bar has true range `high - low` and ATR(14) equals it exactly; `atr_pct` at a decision time `t` is
`band / close of the 5m candle stamped t - 5m` (the entry price). Prices are 100 (tiny zigzag) except the
candles set below. Decision times (window 4h, shift 2h -> two sleeves): k0 16:00, k1 18:00, k2 20:00,
k3 22:00 on 2024-01-02; sleeve 0 trades k0 and k2, sleeve 1 trades k1 and k3.

The strategy prefers C > A > B and buys two names:
- C (band 95..105, ATR 10): closes 100 at 15:55 and 17:55, 105 at 19:55, its last candle ever.
  k0 +5%, k1 +5% (its data ends: exits at 19:55), k2 void (no candle in the window), k3 not eligible.
- A (band 80..120, ATR 40): closes 100, 100, 120 (19:55), 90 (21:55), 108 (23:55), 99 (01:55 next day).
  k0 100->120 +20%, k1 100->90 -10%, k2 120->108 -10%, k3 90->99 +10%.
- B (band 90..110, ATR 20): closes 100 at 15:55..21:55, 105 at 01:55 next day: k3 +5%.
Selections: k0 C,A; k1 C,A; k2 C (void), A; k3 A,B. No fees, so returns are the plain price ratios.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from engine.backtest import WalkForwardConfig
from engine.strategies.base import RISK_PARAMS, TradingStrategy

DAY2 = pd.Timestamp("2024-01-02", tz="UTC")
END = pd.Timestamp("2024-01-03 02:00", tz="UTC")
BANDS = {"A": (80.0, 120.0), "B": (90.0, 110.0), "C": (95.0, 105.0)}
CLOSES = {
    "A": {"15:55": 100.0, "17:55": 100.0, "19:55": 120.0, "21:55": 90.0, "23:55": 108.0, "1d01:55": 99.0},
    "B": {"15:55": 100.0, "17:55": 100.0, "19:55": 100.0, "21:55": 100.0, "1d01:55": 105.0},
    "C": {"15:55": 100.0, "17:55": 100.0, "19:55": 105.0},
}


class PreferCAB(TradingStrategy):
    name = "prefer_cab_test"
    description = "test strategy: C > A > B"
    param_specs = RISK_PARAMS
    order: ClassVar[dict[str, float]] = {"C": 3.0, "A": 2.0, "B": 1.0}

    def signal_gates(self, panel):
        return pd.DataFrame({"gate_any": np.ones(len(panel), dtype=bool)}, index=panel.index)

    def score(self, panel):
        return panel["symbol"].astype(str).map(self.order).astype(float)


def at(hhmm: str) -> pd.Timestamp:
    """'16:00' on day 2, or '1d01:55' for the next day."""
    if hhmm.startswith("1d"):
        return DAY2 + pd.Timedelta(days=1) + pd.Timedelta(hhmm[2:] + ":00")
    return DAY2 + pd.Timedelta(hhmm + ":00")


def candles() -> dict[str, pd.DataFrame]:
    out = {}
    for symbol, (low, high) in BANDS.items():
        end = at("20:00") if symbol == "C" else END
        ts = pd.date_range(pd.Timestamp("2024-01-01", tz="UTC"), end, freq="5min", inclusive="left")
        i = np.arange(len(ts))
        close = 100.0 + 0.1 * (i % 2)
        df = pd.DataFrame({"timestamp": ts, "open": close, "high": high, "low": low, "close": close,
                           "volume": 10.0 + (i % 3)})
        for hhmm, value in CLOSES[symbol].items():
            row = df.index[df["timestamp"] == at(hhmm)][0]
            df.loc[row, ["open", "close"]] = value
        out[symbol] = df
    return out


def config(**portfolio) -> WalkForwardConfig:
    return WalkForwardConfig(start=at("16:00"), end=END, window_hours=4, shift_hours=2, fee_bps=0,
                             slippage_bps=0, warmup_bars=40, max_positions=2, **portfolio)


def strategy() -> PreferCAB:
    return PreferCAB(max_atr_pct=1.0)  # the bands are wide on purpose: no ATR cap
