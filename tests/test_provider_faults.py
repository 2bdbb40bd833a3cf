"""Fault injection for the exchange providers (fake exchanges, fake clock/sleeper, never the network).

For every fault the provider either returns only validated candles with an honest coverage report
(present + confirmed empty + missing = every expected slot), or raises a ProviderError naming the
exchange, the symbol and the page. Sleeps are recorded, never slept.

T0 = 2024-01-01 00:00 UTC = 1704067200000 ms; one day = 288 slots of 5 min = 300000 ms.
"""

from __future__ import annotations

import ccxt
import pandas as pd
import pytest
from provider_fakes import FakeExchange

from engine.data import CcxtProvider, ProviderError
from engine.data.base import MalformedDataError

T0 = 1704067200000
STEP = 300_000
DAY = 288
END = T0 + DAY * STEP  # one UTC day: 2024-01-01
FAR_FUTURE = pd.Timestamp("2030-01-01", tz="UTC")


def ts(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def candle(i: int, close: float = 100.5) -> list:
    return [T0 + i * STEP, 100.0, 101.0, 99.0, close, 10.0]


def fetch(ex, start=T0, end=END, now=FAR_FUTURE, **kw):
    sleeps: list[float] = []
    provider = CcxtProvider(exchange=ex, sleep=sleeps.append, **kw)
    df, cov = provider.fetch_with_coverage("ETH/BTC", ts(start), ts(end), now=now)
    assert cov.present_slots + cov.confirmed_slots + cov.missing_slots == cov.expected_slots
    assert cov.present_slots == len(df)
    return df, cov, sleeps


def spans(ranges):
    return [(r.start, r.end) for r in ranges]


# -- incomplete answers --------------------------------------------------------------------------------
def test_ignored_since_returning_the_latest_100_is_detected_and_reported():
    """The issue's case: asked for a day, the exchange sends only its latest 100 candles (the end of the
    day). The probe (since, limit=1) answers with the latest candle instead of the first one, so the
    head of the day is reported missing, not confirmed empty."""
    ex = FakeExchange([candle(i) for i in range(DAY)], mode="latest", n=100)
    df, cov, sleeps = fetch(ex)
    assert len(df) == 100 and df["timestamp"].iloc[0] == ts(T0 + (DAY - 100) * STEP)
    assert not cov.complete and cov.confirmed_empty == ()
    assert spans(cov.missing) == [(ts(T0), ts(T0 + (DAY - 100) * STEP))]
    assert "ignored since" in cov.missing[0].reason or "not verifiable" in cov.missing[0].reason
    assert 1.0 in sleeps and 2.0 in sleeps  # retried with backoff before giving up
    assert len(ex.calls) <= 10


def test_ignored_since_and_limit_cannot_confirm_a_hole():
    ex = FakeExchange([candle(i) for i in range(DAY)], mode="latest", n=100, ignore_limit=True)
    _, cov, _ = fetch(ex)
    assert cov.confirmed_empty == () and cov.missing_slots == DAY - 100


def test_one_transient_empty_page_mid_way_is_retried_and_the_day_completes():
    ex = FakeExchange([candle(i) for i in range(DAY)], mode="empty_at", at=T0 + 100 * STEP, times=1)
    df, cov, sleeps = fetch(ex, limit=100)
    assert len(df) == DAY and cov.complete and cov.missing == () and cov.confirmed_empty == ()
    assert sleeps == [0.05, 0.05, 1.0, 0.05, 0.05]  # (page), empty page, probe, backoff, page, page
    assert [c["since"] for c in ex.calls][1:4] == [T0 + 100 * STEP] * 3


def test_a_persistent_empty_page_mid_way_reports_the_rest_missing():
    """400 of 576 (two days): page 2 keeps answering [] although the exchange has those candles."""
    book = [candle(i) for i in range(2 * DAY)]
    ex = FakeExchange(book, mode="empty_at", at=T0 + 400 * STEP)
    df, cov, sleeps = fetch(ex, end=T0 + 2 * DAY * STEP, limit=400)
    assert len(df) == 400
    assert spans(cov.missing) == [(ts(T0 + 400 * STEP), ts(T0 + 2 * DAY * STEP))]
    assert "empty page" in cov.missing[0].reason and "since=2024-01-02T09:20" in cov.missing[0].reason
    assert sleeps.count(1.0) == 1 and sleeps.count(2.0) == 1


def test_short_pages_do_not_stop_the_walk():
    ex = FakeExchange([candle(i) for i in range(DAY)], mode="cap", n=70)
    df, cov, _ = fetch(ex)
    assert len(df) == DAY and cov.complete
    assert [c["since"] for c in ex.calls] == [T0 + k * 70 * STEP for k in range(5)]


def test_a_hole_at_a_page_start_is_confirmed_by_a_probe():
    """Listing starts at 06:00: asked since=00:00, the first candle is 06:00 and a probe agrees."""
    ex = FakeExchange([candle(i) for i in range(72, DAY)])
    df, cov, _ = fetch(ex)
    assert len(df) == DAY - 72 and cov.complete
    assert spans(cov.confirmed_empty) == [(ts(T0), ts(T0 + 72 * STEP))]
    assert "first candle at 2024-01-01 06:00" in cov.confirmed_empty[0].reason
    assert [c["limit"] for c in ex.calls] == [1000, 1]  # the page, then the probe


def test_holes_inside_a_page_are_confirmed():
    ex = FakeExchange([candle(i) for i in range(DAY) if not 100 <= i < 110])
    _, cov, _ = fetch(ex)
    assert cov.complete and spans(cov.confirmed_empty) == [(ts(T0 + 100 * STEP), ts(T0 + 110 * STEP))]


def test_a_day_before_the_listing_is_confirmed_empty_by_the_probe():
    ex = FakeExchange([candle(i) for i in range(DAY, 2 * DAY)])  # trading starts the next day
    df, cov, sleeps = fetch(ex)
    assert df.empty and cov.complete and cov.confirmed_slots == DAY
    assert sleeps == [0.05]  # page, then probe: no retry needed


def test_the_live_tail_not_yet_published_is_missing_not_confirmed():
    now = ts(T0 + 100 * STEP + 10_000)  # 08:20:10: the 08:15 candle has just closed
    ex = FakeExchange([candle(i) for i in range(99)])  # ... but the exchange does not have it yet
    df, cov, _ = fetch(ex, now=now)
    assert len(df) == 99 and cov.checked_until == ts(T0 + 100 * STEP)
    assert spans(cov.missing) == [(ts(T0 + 99 * STEP), ts(T0 + 100 * STEP))]


def test_duplicates_and_disorder_across_pages():
    ex = FakeExchange([candle(i) for i in range(DAY)], mode="shuffle")
    df, cov, _ = fetch(ex, limit=100)
    assert len(df) == DAY and cov.complete and df["timestamp"].is_monotonic_increasing


def test_conflicting_duplicates_within_a_page_keep_the_later_row_and_are_noted():
    book = [candle(i) for i in range(DAY)]

    class Twice(FakeExchange):
        def fetch_ohlcv(self, *a, **k):
            rows = super().fetch_ohlcv(*a, **k)
            return rows[:5] + [candle(2, close=100.75)] + rows[5:]

    df, cov, _ = fetch(Twice(book))
    assert len(df) == DAY and df.loc[2, "close"] == 100.75
    assert any("sent twice with different values" in n and "2024-01-01T00:10" in n for n in cov.notes)


# -- errors that must name exchange, symbol and page ---------------------------------------------------
@pytest.mark.parametrize(
    ("page", "message"),
    [
        ({"code": -1121, "msg": "Invalid symbol."}, "expected a list of [time, open, high, low, close"),
        ([["1704067200000", 100.0, 101.0, 99.0, 100.5, 10.0]], "row 0: timestamp is a str"),
        ([[T0, 100.0, 101.0, 99.0, 100.5]], "row 0: expected [time, open, high, low, close, volume], got 5"),
        ([[T0, 100.0, None, 99.0, 100.5, 10.0]], "row 0: high is missing (None)"),
        ([[T0, 100.0, 101.0, 99.0, "100.5", 10.0]], "row 0: close is a str, not a number"),
        ([[T0 / 1000, 100.0, 101.0, 99.0, 100.5, 10.0]], "is not plausible epoch milliseconds"),
        ([candle(0), [T0 + STEP, 100.0, 99.0, 101.0, 100.5, 10.0]], "high >= max(open, close)"),
        ([[T0 + 1, 100.0, 101.0, 99.0, 100.5, 10.0]], "5m grid"),
    ],
)
def test_malformed_pages_name_exchange_symbol_and_page(page, message):
    class Broken(FakeExchange):
        def fetch_ohlcv(self, *a, **k):
            super().fetch_ohlcv(*a, **k)
            return page

    with pytest.raises(MalformedDataError) as err:
        fetch(Broken([]))
    msg = str(err.value)
    assert message in msg, msg
    assert "binance 'ETH/BTC' page since=2024-01-01T00:00:00+00:00 (1704067200000)" in msg
    assert isinstance(err.value, ProviderError) and isinstance(err.value, ValueError)


def test_timeouts_and_5xx_are_retried_with_backoff():
    errors = [ccxt.RequestTimeout("timed out"), ccxt.ExchangeNotAvailable("503 Service Unavailable")]
    ex = FakeExchange([candle(i) for i in range(DAY)], errors=errors)
    df, cov, sleeps = fetch(ex)
    assert cov.complete and len(df) == DAY and sleeps == [1.0, 2.0]


def test_429_honours_retry_after_from_the_response_headers():
    ex = FakeExchange([candle(i) for i in range(DAY)], errors=[ccxt.RateLimitExceeded("429")],
                      headers={"Retry-After": "7"})  # fmt: skip
    _, cov, sleeps = fetch(ex)
    assert cov.complete and sleeps == [7.0]


def test_a_retry_after_beyond_the_limit_fails_clearly():
    ex = FakeExchange([], errors=[ccxt.DDoSProtection("418")], headers={"retry-after": "7200"})
    with pytest.raises(ProviderError, match=r"rate limited by binance for 7200 s .*try again later") as err:
        fetch(ex)
    assert "page since=2024-01-01T00:00" in str(err.value)


def test_garbled_answers_are_retried_then_fail_naming_the_page():
    ex = FakeExchange([], errors=[ccxt.BadResponse("binance <html>502 Bad Gateway</html>")] * 3)
    with pytest.raises(ProviderError) as err:
        fetch(ex, max_retries=2)
    msg = str(err.value)
    assert "giving up after 3 attempts" in msg and "BadResponse" in msg
    assert "binance 'ETH/BTC' page since=2024-01-01T00:00" in msg


def test_a_parse_failure_inside_the_exchange_library_is_named():
    ex = FakeExchange([], errors=[TypeError("'NoneType' object is not subscriptable")])
    with pytest.raises(MalformedDataError, match=r"page since=.*could not be parsed \(TypeError"):
        fetch(ex)


def test_bad_options_fail_at_construction():
    for bad in ({"limit": 0}, {"max_retries": -1}, {"incomplete_retries": 1.5}):
        with pytest.raises(ProviderError, match="must be a whole number"):
            CcxtProvider(exchange=FakeExchange([]), **bad)
