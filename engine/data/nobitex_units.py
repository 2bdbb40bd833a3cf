"""The unit of Nobitex IRT prices, checked per market instead of assumed.

Nobitex's trading docs quote IRT markets in rials, while published `udf/history` examples look like
tomans (1 toman = 10 rials), and the history endpoint does not say. A factor of 10 silently breaks
every money threshold (the 24h quote-volume gate first), so before fetching an IRT market the
provider compares the latest `udf/history` close with the market stats' latest price in rials
(`/market/stats?dstCurrency=rls`, one request for every rial market):
- stats / udf close ~ 1  -> udf/history is in rials (IRR),
- stats / udf close ~ 10 -> udf/history is in tomans (IRT),
- anything else -> `PriceUnitError`: the code does not understand the factor and refuses the data.
Candles are then converted to the provider's `price_unit` ("IRR" or "IRT"), so stored prices have one
unit whatever the endpoint does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.data.base import ProviderError

UNITS = ("IRR", "IRT")
UNIT_NAMES = {"IRR": "rials", "IRT": "tomans"}
RIALS_PER_UNIT = {"IRR": 1.0, "IRT": 10.0}
#: stats / udf ratios accepted as "factor 1" and "factor 10" (prices move between the two readings)
TOLERANCE = 2.0


class PriceUnitError(ProviderError):
    """The two Nobitex endpoints disagree by a factor the code does not understand."""


@dataclass(frozen=True)
class UnitCheck:
    """How one market's `udf/history` unit was established."""

    market: str
    udf_unit: str
    stats_latest_rials: float | None
    udf_close: float | None
    checked: bool

    @property
    def factor(self) -> float | None:
        if not self.checked or not self.udf_close:
            return None
        return (self.stats_latest_rials or 0.0) / self.udf_close

    def describe(self) -> str:
        if not self.checked:
            return f"{self.market}: udf/history assumed in {self.udf_unit} (unit check disabled)"
        return (f"{self.market}: udf/history close {self.udf_close:.12g} vs market stats latest "
                f"{self.stats_latest_rials:.12g} rials (factor {self.factor:.3g}) -> udf/history in "
                f"{self.udf_unit} ({UNIT_NAMES[self.udf_unit]})")  # fmt: skip


def check_price_unit(market: str, stats_latest_rials: float, udf_close: float) -> UnitCheck:
    """Decide the udf/history unit of `market` from the two prices, or raise PriceUnitError."""
    if not (math.isfinite(stats_latest_rials) and stats_latest_rials > 0):
        raise PriceUnitError(f"nobitex {market}: market stats latest price {stats_latest_rials!r} is not a "
                             "positive number; cannot check the price unit")  # fmt: skip
    if not (math.isfinite(udf_close) and udf_close > 0):
        raise PriceUnitError(f"nobitex {market}: udf/history close {udf_close!r} is not a positive number; "
                             "cannot check the price unit")  # fmt: skip
    factor = stats_latest_rials / udf_close
    for unit, rials in RIALS_PER_UNIT.items():
        if rials / TOLERANCE <= factor <= rials * TOLERANCE:
            return UnitCheck(market, unit, stats_latest_rials, udf_close, checked=True)
    raise PriceUnitError(
        f"nobitex {market}: udf/history close {udf_close:.12g} and market stats latest price "
        f"{stats_latest_rials:.12g} rials differ by a factor of {factor:.3g}; only 1 (rials) and 10 (tomans) "
        "are understood, so the price unit is unknown and the candles are refused. Check the market on "
        "nobitex.ir, or set unit_check: false and price_unit explicitly if you know the unit."
    )


def conversion(udf_unit: str, price_unit: str) -> float:
    """Multiplier from `udf_unit` prices to `price_unit` prices (10 for tomans -> rials)."""
    return RIALS_PER_UNIT[udf_unit] / RIALS_PER_UNIT[price_unit]


def parse_stats_latest(body: object, market_key: str) -> float | None:
    """`stats[<market_key>].latest` of a `/market/stats` body as a float (None when absent)."""
    if not isinstance(body, dict) or body.get("status") != "ok" or not isinstance(body.get("stats"), dict):
        raise ProviderError("nobitex /market/stats: unexpected answer (no 'status': 'ok' with 'stats')")
    entry = body["stats"].get(market_key)
    if not isinstance(entry, dict) or entry.get("latest") in (None, ""):
        return None
    try:
        return float(entry["latest"])
    except (TypeError, ValueError):
        raise ProviderError(f"nobitex /market/stats: {market_key}.latest is not a number") from None
