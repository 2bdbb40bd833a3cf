"""Nobitex: the per-market price-unit check, and faults of the history endpoint.

No network here: every body is hand-written in the documented format of the public endpoints
(`/market/stats?dstCurrency=rls`, `/market/udf/history`; see tests/fixtures/providers/README.md) and
served by a fake `requests.Session` that routes on the URL path and the `resolution` parameter.
S = 2024-01-01 00:00 UTC = 1704067200 s.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from provider_fakes import Resp, RoutingSession

from engine.data import NobitexProvider, ProviderError
from engine.data.base import MalformedDataError
from engine.data.nobitex_units import PriceUnitError, check_price_unit

FIXTURES = Path(__file__).parent / "fixtures" / "providers"
S = 1704067200
NOW = pd.Timestamp("2024-01-02 00:00", tz="UTC")


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def ts(seconds: int) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s", tz="UTC")


def udf(times, closes, spread=0.005):
    """An `ok` history body (documented shape) with consistent OHLC around each close."""
    return {"s": "ok", "t": list(times), "o": list(closes), "h": [c * (1 + spread) for c in closes],
            "l": [c * (1 - spread) for c in closes], "c": list(closes), "v": [1.0] * len(closes)}  # fmt: skip


def make(session, **kw):
    sleeps: list[float] = []
    return NobitexProvider(session=session, sleep=sleeps.append, **kw), sleeps


TOMAN_DAY = udf([S, S + 300], [2.6e9, 2.61e9])
RIAL_DAY = udf([S, S + 300], [26.0e9, 26.1e9])
RIAL_RECENT = udf([S - 3600, S], [26.1e9, 26.2e9])


# -- the unit check ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("price_unit", "factor"), [("IRR", 10.0), ("IRT", 1.0)])
def test_toman_history_is_detected_and_converted(price_unit, factor):
    session = RoutingSession(history=[TOMAN_DAY], recent=[fixture("nobitex_recent_hourly.json")],
                             stats=[fixture("nobitex_stats_rls.json")])  # fmt: skip
    provider, _ = make(session, price_unit=price_unit)
    df, cov = provider.fetch_with_coverage("BTC/IRT", ts(S), ts(S + 600), now=NOW)
    assert df["close"].tolist() == [2.6e9 * factor, 2.61e9 * factor]
    assert (df["price_unit"] == price_unit).all()
    assert cov.details["udf_unit"] == "IRT" and cov.details["price_unit"] == price_unit
    assert "factor 10" in cov.details["unit_check"] and "tomans" in cov.details["unit_check"]
    assert "BTC/IRT=IRT" in provider.describe() and f"IRT prices in {price_unit}" in provider.describe()
    assert session.routes() == ["stats", "recent", "history"]
    assert session.calls[0][1] == {"dstCurrency": "rls"}


@pytest.mark.parametrize(("price_unit", "factor"), [("IRR", 1.0), ("IRT", 0.1)])
def test_rial_history_is_detected_and_converted(price_unit, factor):
    session = RoutingSession(
        history=[RIAL_DAY], recent=[RIAL_RECENT], stats=[fixture("nobitex_stats_rls.json")]
    )
    provider, _ = make(session, price_unit=price_unit)
    df, cov = provider.fetch_with_coverage("BTC/IRT", ts(S), ts(S + 600), now=NOW)
    assert df["close"].tolist() == pytest.approx([26.0e9 * factor, 26.1e9 * factor])
    assert cov.details["udf_unit"] == "IRR"


def test_an_unknown_factor_refuses_the_data():
    """3x apart: neither rials nor tomans. No candle is returned; the message says what to do."""
    session = RoutingSession(
        history=[RIAL_DAY], recent=[udf([S], [8.75e9])], stats=[fixture("nobitex_stats_rls.json")]
    )
    provider, _ = make(session)
    with pytest.raises(PriceUnitError) as err:
        provider.fetch_ohlcv("BTC/IRT", ts(S), ts(S + 600), now=NOW)
    msg = str(err.value)
    assert "BTCIRT" in msg and "8750000000" in msg and "26250000000" in msg and "factor of 3" in msg
    assert "only 1 (rials) and 10 (tomans)" in msg
    assert session.routes() == ["stats", "recent"]  # nothing fetched after the check failed


def test_factor_boundaries():
    assert check_price_unit("X", 100.0, 100.0).udf_unit == "IRR"
    assert check_price_unit("X", 100.0, 10.0).udf_unit == "IRT"
    assert check_price_unit("X", 100.0, 60.0).udf_unit == "IRR"  # 1.67: a big move, still rials
    for close in (30.0, 1.0, 1000.0):  # factors 3.3, 100, 0.1
        with pytest.raises(PriceUnitError):
            check_price_unit("X", 100.0, close)


def test_stats_are_fetched_once_and_units_are_cached_per_market():
    session = RoutingSession(
        history=[RIAL_DAY, RIAL_DAY, udf([S], [1.0e5])], recent=[RIAL_RECENT, udf([S], [1.0e5])],
        stats=[fixture("nobitex_stats_rls.json")],
    )  # fmt: skip
    provider, _ = make(session)
    provider.fetch_ohlcv("BTC/IRT", ts(S), ts(S + 600), now=NOW)
    provider.fetch_ohlcv("BTC/IRT", ts(S), ts(S + 600), now=NOW)
    provider.fetch_ohlcv("USDT/IRT", ts(S), ts(S + 300), now=NOW)
    assert session.routes() == ["stats", "recent", "history", "history", "recent", "history"]
    assert provider.unit_checks["USDTIRT"].udf_unit == "IRT"  # 1e6 rials vs 1e5


def test_usdt_markets_need_no_unit_check():
    session = RoutingSession(history=[udf([S], [65000.0])])
    provider, _ = make(session)
    df, cov = provider.fetch_with_coverage("BTC/USDT", ts(S), ts(S + 300), now=NOW)
    assert (df["price_unit"] == "USDT").all() and "udf_unit" not in cov.details
    assert session.routes() == ["history"]


def test_market_missing_from_the_stats_or_without_recent_candles_fails_clearly():
    provider, _ = make(RoutingSession(stats=[fixture("nobitex_stats_rls.json")]))
    with pytest.raises(ProviderError, match=r"no rial price for 'eth-rls'.*unit_check: false"):
        provider.fetch_ohlcv("ETH/IRT", ts(S), ts(S + 600), now=NOW)
    provider, _ = make(
        RoutingSession(recent=[fixture("nobitex_no_data.json")], stats=[fixture("nobitex_stats_rls.json")])
    )
    with pytest.raises(ProviderError, match=r"'BTC/IRT': no candle in the last 3 days"):
        provider.fetch_ohlcv("BTC/IRT", ts(S), ts(S + 600), now=NOW)


def test_unit_check_off_assumes_price_unit_and_says_so():
    session = RoutingSession(history=[RIAL_DAY])
    provider, _ = make(session, unit_check=False)
    _, cov = provider.fetch_with_coverage("BTC/IRT", ts(S), ts(S + 600), now=NOW)
    assert "assumed in IRR (unit check disabled)" in cov.details["unit_check"]
    assert session.routes() == ["history"]


def test_options_are_validated_at_construction():
    with pytest.raises(ProviderError, match="price_unit must be 'IRR' .* or 'IRT'"):
        NobitexProvider(session=object(), price_unit="toman")
    with pytest.raises(ProviderError, match="unit_check must be true or false"):
        NobitexProvider(session=object(), unit_check="yes")


# -- faults of the history endpoint --------------------------------------------------------------------
def off(history, **kw):
    return make(RoutingSession(history=history), unit_check=False, **kw)


def test_malformed_json_is_retried_then_named():
    provider, sleeps = off([Resp(200, None), RIAL_DAY])
    assert len(provider.fetch_ohlcv("BTC/IRT", ts(S), ts(S + 600), now=NOW)) == 2 and sleeps == [1.0]
    provider, _ = off([Resp(200, None)] * 3, max_retries=2)
    with pytest.raises(ProviderError) as err:
        provider.fetch_ohlcv("BTC/IRT", ts(S), ts(S + 600), now=NOW)
    msg = str(err.value)
    assert "giving up after 3 attempts (malformed JSON" in msg and "page from=2024-01-01 00:00" in msg


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**RIAL_DAY, "t": [str(S), str(S + 300)]}, "row 0: time is a str"),
        ({**RIAL_DAY, "c": [26.0e9, None]}, "row 1: close is missing (None)"),
        ({**RIAL_DAY, "o": "26000000000"}, "field 'o' is a str, not a list"),
        ({"s": "ok", "t": [S]}, "fields ['o', 'h', 'l', 'c', 'v'] are missing"),
        ({**RIAL_DAY, "h": [1.0, 1.0]}, "high >= max(open, close)"),
        ({"s": "maybe"}, "unexpected response status 'maybe'"),
    ],
)
def test_malformed_history_names_symbol_and_page(body, message):
    provider, _ = off([body])
    with pytest.raises(MalformedDataError) as err:
        provider.fetch_ohlcv("BTC/IRT", ts(S), ts(S + 600), now=NOW)
    assert message in str(err.value) and "nobitex 'BTC/IRT' page from=2024-01-01 00:00" in str(err.value)


def test_numbers_quoted_as_strings_are_accepted():
    body = {k: ([str(x) for x in v] if k in "ohlcv" else v) for k, v in RIAL_DAY.items()}
    provider, _ = off([body])
    assert provider.fetch_ohlcv("BTC/IRT", ts(S), ts(S + 600), now=NOW)["close"].tolist() == [26.0e9, 26.1e9]


def test_an_answer_outside_the_asked_window_is_not_trusted():
    """Asked for 00:05..00:10, the server answers with 00:15 and 00:20 (it ignored from/to)."""
    provider, sleeps = off([udf([S + 900, S + 1200], [1.0, 1.0])] * 3)
    df, cov = provider.fetch_with_coverage("BTC/IRT", ts(S + 300), ts(S + 900), now=NOW)
    assert df.empty and cov.confirmed_empty == () and cov.missing_slots == 2
    assert "ignored since" in cov.missing[0].reason and sleeps == [1.0, 2.0]


def test_holes_in_a_listed_window_are_confirmed_but_not_the_unsettled_tail():
    now = ts(S + 3600 + 30)  # 01:00:30: the 00:55 candle has just closed
    provider, _ = off(
        [udf([S, S + 900], [1.0, 1.0]), fixture("nobitex_no_data.json")]
        + [fixture("nobitex_no_data.json")] * 2
    )
    df, cov = provider.fetch_with_coverage("BTC/IRT", ts(S), ts(S + 7200), now=now)
    assert len(df) == 2 and cov.checked_until == ts(S + 3600)
    assert [(r.start, r.end) for r in cov.confirmed_empty] == [(ts(S + 300), ts(S + 900))]
    assert [(r.start, r.end) for r in cov.missing] == [(ts(S + 1200), ts(S + 3600))]  # maybe not published


def test_before_minute_history_exists_nothing_is_asked():
    provider, _ = make(RoutingSession())  # unit check on: not even the stats are requested
    df, cov = provider.fetch_with_coverage("BTC/IRT", pd.Timestamp("2022-03-20", tz="UTC"),
                                           pd.Timestamp("2022-03-20 20:30", tz="UTC"), now=NOW)  # fmt: skip
    assert df.empty and cov.complete and cov.confirmed_slots == 246
    assert "1401-01-01" in cov.confirmed_empty[0].reason
