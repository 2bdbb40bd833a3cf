"""Number and time formatting for reports: explicit units, sensible rounding, one symbol for "missing".

Every displayed number goes through here so a unit is never implied: returns carry `%`, costs `bps`,
times `UTC`. Missing or undefined values (None, NaN, inf) show as `MISSING`, never as 0.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

MISSING = "–"
MINUS = "−"  # typographic minus: aligns with the plus sign in tabular figures


def num(x: Any) -> float | None:
    """A finite float, or None (None, NaN, inf, non-numbers)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _signed(text: str, v: float, sign: bool) -> str:
    if text.startswith("-"):
        return MINUS + text[1:]
    return ("+" + text) if sign and v > 0 else text


def fixed(x: Any, digits: int = 2, *, sign: bool = False, suffix: str = "") -> str:
    v = num(x)
    if v is None:
        return MISSING
    text = f"{v:.{digits}f}"
    if float(text) == 0:
        text = f"{0:.{digits}f}"  # no "-0.00"
    return _signed(text, v, sign) + suffix


def pct(x: Any, digits: int = 2, *, sign: bool = True) -> str:
    """A fraction as percent: 0.0123 -> '+1.23%'."""
    v = num(x)
    return MISSING if v is None else fixed(v * 100, digits, sign=sign, suffix="%")


def share(x: Any, digits: int = 1) -> str:
    """A share in [0, 1] as an unsigned percent: 0.536 -> '53.6%'."""
    return pct(x, digits, sign=False)


def bps(x: Any, digits: int = 1, *, sign: bool = False) -> str:
    """Basis points; whole numbers without decimals (a configured '10 bps' stays '10 bps')."""
    v = num(x)
    whole = v is not None and v == round(v)
    return fixed(x, 0 if whole else digits, sign=sign, suffix=" bps")


def count(x: Any) -> str:
    v = num(x)
    return MISSING if v is None else f"{int(round(v)):,}"


def ratio(x: Any, digits: int = 2, *, sign: bool = False) -> str:
    return fixed(x, digits, sign=sign)


def p_value(x: Any) -> str:
    v = num(x)
    if v is None:
        return MISSING
    return "< 0.001" if v < 0.001 else f"{v:.3f}"


def p_text(x: Any) -> str:
    """'p = 0.038' or 'p < 0.001' for sentences."""
    text = p_value(x)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def money(x: Any) -> str:
    """Capital in its own unit: '10,040.50', '10,000'."""
    v = num(x)
    return MISSING if v is None else _signed(f"{v:,.2f}".removesuffix(".00"), v, False)


def price(x: Any) -> str:
    """Five significant figures without exponent notation (BTC pairs trade at 0.00003987)."""
    v = num(x)
    if v is None:
        return MISSING
    if v == 0:
        return "0"
    digits = min(10, max(0, 4 - math.floor(math.log10(abs(v)))))
    return _signed(f"{v:,.{digits}f}", v, False)


def interval(low: Any, high: Any, fmt=pct, **kw: Any) -> str:
    """'[−0.21%, +0.30%]' or MISSING when either bound is missing."""
    if num(low) is None or num(high) is None:
        return MISSING
    return f"[{fmt(low, **kw)}, {fmt(high, **kw)}]"


def utc(ts: Any, *, seconds: bool = False) -> str:
    """'2018-01-22 00:00' (the column or sentence says UTC)."""
    if ts is None or (not isinstance(ts, str) and pd.isna(ts)):
        return MISSING
    t = pd.Timestamp(ts)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def period(start: Any, end: Any) -> str:
    """'2018-01-22 → 2018-01-30' (dates only when both are midnight UTC)."""
    if end is None or (not isinstance(end, str) and pd.isna(end)):
        return f"from {utc(start)}"
    midnight = all(pd.Timestamp(t).value % 86_400_000_000_000 == 0 for t in (start, end))
    cut = (lambda s: s[:10]) if midnight else (lambda s: s)
    return f"{cut(utc(start))} → {cut(utc(end))}"


def hours(h: Any) -> str:
    v = num(h)
    if v is None:
        return MISSING
    return f"{v:g} h" if v < 48 or v % 24 else f"{v / 24:g} d"


def value(x: Any) -> str:
    """A parameter value as written by a person: 0.05, 40, True, 'abc'."""
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, float):
        return f"{x:g}"
    return str(x)
