"""CcxtProvider against fake exchanges (subclasses of ccxt.binance): never the network.

Expected values are written out by hand: T0 = 2024-01-01 00:00 UTC = 1704067200000 ms, one 5m candle =
300000 ms, so 1000 candles = 300000000 ms.
"""

from __future__ import annotations

from types import SimpleNamespace

import ccxt
import pandas as pd
import pytest

from engine.data import BadSymbolError, CcxtProvider, ProviderError
from engine.data.ccxt_provider import DEFAULT_LIMIT, exchange_limit

T0 = 1704067200000  # 2024-01-01 00:00 UTC
STEP = 300_000  # 5 minutes in ms
FAR_FUTURE = pd.Timestamp("2030-01-01", tz="UTC")


def ts(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def candle(ms: int, close: float = 100.5) -> list:
    return [ms, 100.0, 101.0, 99.0, close, 10.0]


class FakeBinance(ccxt.binance):
    """Serves `book` like Binance: open time >= since, <= until, at most `limit` rows; no network.

    `errors` is a queue of exceptions raised by successive calls (None = answer normally).
    `overlap` re-sends that many candles before `since` with a revised close (duplicates across pages).
    """

    def __init__(self, book=None, errors=None, honor_since=True, honor_until=True, overlap=0):
        super().__init__()
        self.book = sorted(book or [], key=lambda r: r[0])
        self.errors = list(errors or [])
        self.honor_since, self.honor_until, self.overlap = honor_since, honor_until, overlap
        self.calls: list[dict] = []

    def fetch_ohlcv(self, symbol, timeframe="1m", since=None, limit=None, params=None):
        params = params or {}
        self.calls.append(
            {"symbol": symbol, "timeframe": timeframe, "since": since, "limit": limit, **params}
        )
        if self.errors:
            err = self.errors.pop(0)
            if err is not None:
                raise err
        lo = since - self.overlap * STEP if (self.honor_since and since is not None) else -1
        hi = params.get("until") if self.honor_until else None
        rows = [list(r) for r in self.book if r[0] >= lo and (hi is None or r[0] <= hi)]
        rows = rows[:limit]
        for r in rows:
            if since is not None and r[0] < since:
                r[4] = 100.75  # the re-sent copy carries a revised close
        return rows


def make(exchange, **kw):
    sleeps: list[float] = []
    provider = CcxtProvider(exchange=exchange, sleep=sleeps.append, **kw)
    return provider, sleeps


def test_pagination_advances_since_by_last_open_plus_5m():
    ex = FakeBinance(book=[candle(T0 + i * STEP) for i in range(2500)])
    provider, sleeps = make(ex)
    df = provider.fetch_ohlcv("ETH/BTC", ts(T0), ts(T0 + 2500 * STEP), now=FAR_FUTURE)

    assert [c["since"] for c in ex.calls] == [1704067200000, 1704367200000, 1704667200000]
    assert {c["limit"] for c in ex.calls} == {1000}
    assert {c["timeframe"] for c in ex.calls} == {"5m"}
    # until = end - 1 ms (Binance's endTime is inclusive)
    assert {c["until"] for c in ex.calls} == {T0 + 2500 * STEP - 1}
    # the rate limit (binance: 50 ms) is slept between pages, not before the first one
    assert sleeps == [0.05, 0.05]
    assert len(df) == 2500
    assert df["timestamp"].iloc[0] == pd.Timestamp("2024-01-01 00:00", tz="UTC")
    assert df["timestamp"].iloc[-1] == pd.Timestamp("2024-01-09 16:15", tz="UTC")
    assert list(df.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert ex.enableRateLimit is True


def test_empty_page_is_retried_then_reported_missing_not_taken_as_the_end():
    """An empty page proves nothing: a probe (since, limit 1, no until) finds no later candle, so the page
    is retried with backoff (1 s, 2 s) and the rest of the range is then reported missing."""
    ex = FakeBinance(book=[candle(T0 + i * STEP) for i in range(1200)])
    provider, sleeps = make(ex)
    df = provider.fetch_ohlcv("ETH/BTC", ts(T0), ts(T0 + 2000 * STEP), now=FAR_FUTURE)
    assert [c["since"] for c in ex.calls] == [T0, T0 + 1000 * STEP] + [T0 + 1200 * STEP] * 6
    assert [c["limit"] for c in ex.calls[2:]] == [1000, 1, 1000, 1, 1000, 1]  # page, probe, ...
    assert len(df) == 1200
    assert sleeps == [0.05, 0.05, 0.05, 1.0, 0.05, 0.05, 2.0, 0.05, 0.05]
    cov = df.attrs["coverage"]
    assert not cov.complete and cov.confirmed_empty == ()
    assert [(r.start, r.end) for r in cov.missing] == [(ts(T0 + 1200 * STEP), ts(T0 + 2000 * STEP))]
    assert "empty page" in cov.missing[0].reason and "3 attempts" in cov.missing[0].reason


def test_no_progress_stops_the_loop():
    """An exchange that ignores `since` and keeps sending the same old page must not loop forever; the
    page is retried twice, then the rest is reported missing (the exchange ignored since)."""
    ex = FakeBinance(book=[candle(T0 + i * STEP) for i in range(3)], honor_since=False)
    provider, sleeps = make(ex)
    df = provider.fetch_ohlcv("ETH/BTC", ts(T0), ts(T0 + 100 * STEP), now=FAR_FUTURE)
    assert [c["since"] for c in ex.calls] == [T0] + [T0 + 3 * STEP] * 3
    assert len(df) == 3
    assert sleeps == [0.05, 1.0, 0.05, 2.0, 0.05]  # polite gap, backoff + gap, backoff + gap
    missing = df.attrs["coverage"].missing
    assert [(r.start, r.end) for r in missing] == [(ts(T0 + 3 * STEP), ts(T0 + 100 * STEP))]
    assert "ignored since" in missing[0].reason


def test_still_open_candle_is_dropped_even_if_the_exchange_sends_it():
    ex = FakeBinance(book=[candle(T0 + i * STEP) for i in range(11)], honor_until=False)
    provider, _ = make(ex)
    now = ts(T0 + 10 * STEP + 120_000)  # 00:52: the candle opened at 00:50 is still open
    df = provider.fetch_ohlcv("ETH/BTC", ts(T0), ts(T0 + 100 * STEP), now=now)
    assert len(df) == 10
    assert df["timestamp"].iloc[-1] == pd.Timestamp("2024-01-01 00:45", tz="UTC")
    # the request itself is bounded by the last closed candle
    assert ex.calls[0]["until"] == T0 + 10 * STEP - 1


def test_clock_is_used_when_now_is_not_given():
    ex = FakeBinance(book=[candle(T0 + i * STEP) for i in range(11)], honor_until=False)
    provider = CcxtProvider(exchange=ex, sleep=lambda s: None, clock=lambda: ts(T0 + 10 * STEP))
    df = provider.fetch_ohlcv("ETH/BTC", ts(T0), ts(T0 + 100 * STEP))
    assert len(df) == 10  # 00:50 is "now": the 00:45 candle just closed, the 00:50 one is open


def test_duplicates_across_pages_keep_the_last_copy():
    ex = FakeBinance(book=[candle(T0 + i * STEP) for i in range(1500)], overlap=1)
    provider, _ = make(ex)
    df = provider.fetch_ohlcv("ETH/BTC", ts(T0), ts(T0 + 1500 * STEP), now=FAR_FUTURE)
    # page 1: candles 0..999; page 2 re-sends 999 (revised close) then 1000..1499, reaching the end
    assert [c["since"] for c in ex.calls] == [T0, T0 + 1000 * STEP]
    assert len(df) == 1500
    assert not df["timestamp"].duplicated().any()
    assert df["timestamp"].is_monotonic_increasing
    assert df.loc[999, "close"] == 100.75
    assert df.loc[998, "close"] == 100.5


def test_gaps_are_preserved_not_filled():
    missing = set(range(5, 10)) | set(range(1000, 1010))
    ex = FakeBinance(book=[candle(T0 + i * STEP) for i in range(1500) if i not in missing])
    provider, _ = make(ex)
    df = provider.fetch_ohlcv("ETH/BTC", ts(T0), ts(T0 + 1500 * STEP), now=FAR_FUTURE)
    assert len(df) == 1485
    got = set(((df["timestamp"] - ts(T0)) // pd.Timedelta(minutes=5)).tolist())
    assert got == set(range(1500)) - missing


def test_range_is_half_open_and_start_is_rounded_up_to_the_grid():
    book = [candle(T0 + i * STEP) for i in range(-10, 40)]
    ex = FakeBinance(book=book, honor_since=False, honor_until=False)  # exchange sends too much
    provider, _ = make(ex)
    df = provider.fetch_ohlcv("ETH/BTC", ts(T0 + 120_000), ts(T0 + 20 * STEP), now=FAR_FUTURE)
    assert ex.calls[0]["since"] == T0 + STEP  # 00:02 -> first open time 00:05
    assert df["timestamp"].iloc[0] == pd.Timestamp("2024-01-01 00:05", tz="UTC")
    assert df["timestamp"].iloc[-1] == pd.Timestamp("2024-01-01 01:35", tz="UTC")
    assert len(df) == 19


def test_empty_range_makes_no_request():
    ex = FakeBinance(book=[candle(T0)])
    provider, _ = make(ex)
    df = provider.fetch_ohlcv("ETH/BTC", ts(T0), ts(T0), now=FAR_FUTURE)
    assert df.empty and ex.calls == []
    assert list(df.columns) == ["timestamp", "open", "high", "low", "close", "volume"]


def test_bad_symbol_fails_fast_naming_symbol_and_exchange():
    ex = FakeBinance(errors=[ccxt.BadSymbol("binance does not have market symbol FOO/BTC")])
    provider, sleeps = make(ex)
    with pytest.raises(BadSymbolError) as err:
        provider.fetch_ohlcv("FOO/BTC", ts(T0), ts(T0 + 10 * STEP), now=FAR_FUTURE)
    assert "FOO/BTC" in str(err.value) and "binance" in str(err.value)
    assert len(ex.calls) == 1 and sleeps == []


@pytest.mark.parametrize(
    "exc",
    [
        ccxt.BadRequest("binance {'code': -1100, 'msg': 'Illegal characters'}"),
        ccxt.AuthenticationError("binance invalid api key"),
        ccxt.ExchangeError("binance something else"),
        ccxt.PermissionDenied("binance not allowed"),
    ],
)
def test_non_transient_errors_fail_fast_with_provider_error(exc):
    ex = FakeBinance(errors=[exc])
    provider, sleeps = make(ex)
    with pytest.raises(ProviderError) as err:
        provider.fetch_ohlcv("ETH/BTC", ts(T0), ts(T0 + 10 * STEP), now=FAR_FUTURE)
    assert not isinstance(err.value, BadSymbolError)
    assert "ETH/BTC" in str(err.value) and "binance" in str(err.value)
    assert type(exc).__name__ in str(err.value)
    assert len(ex.calls) == 1 and sleeps == []


def test_transient_errors_are_retried_with_exponential_backoff():
    errors = [
        ccxt.NetworkError("connection reset"),
        ccxt.DDoSProtection("binance 429 Too Many Requests"),
        ccxt.RequestTimeout("timed out"),
        ccxt.ExchangeNotAvailable("502"),
    ]
    ex = FakeBinance(book=[candle(T0 + i * STEP) for i in range(10)], errors=errors)
    provider, sleeps = make(ex, backoff_base=0.5)
    df = provider.fetch_ohlcv("ETH/BTC", ts(T0), ts(T0 + 10 * STEP), now=FAR_FUTURE)
    assert len(df) == 10
    assert sleeps == [0.5, 1.0, 2.0, 4.0]
    assert len(ex.calls) == 5 and {c["since"] for c in ex.calls} == {T0}


def test_retries_on_a_later_page_interleave_with_rate_limit_sleeps():
    errors = [None, ccxt.RateLimitExceeded("slow down"), ccxt.InvalidNonce("nonce")]
    ex = FakeBinance(book=[candle(T0 + i * STEP) for i in range(1500)], errors=errors)
    provider, sleeps = make(ex)
    df = provider.fetch_ohlcv("ETH/BTC", ts(T0), ts(T0 + 1500 * STEP), now=FAR_FUTURE)
    assert len(df) == 1500
    assert sleeps == [0.05, 1.0, 2.0]  # page gap, then two backoffs before page 2 succeeds
    assert [c["since"] for c in ex.calls] == [T0, T0 + 1000 * STEP, T0 + 1000 * STEP, T0 + 1000 * STEP]


def test_exhausted_retries_raise_provider_error():
    ex = FakeBinance(errors=[ccxt.DDoSProtection("binance 418 I'm a teapot")] * 10)
    provider, sleeps = make(ex, max_retries=3)
    with pytest.raises(ProviderError) as err:
        provider.fetch_ohlcv("ETH/BTC", ts(T0), ts(T0 + 10 * STEP), now=FAR_FUTURE)
    msg = str(err.value)
    assert "binance" in msg and "ETH/BTC" in msg and "4 attempts" in msg and "DDoSProtection" in msg
    assert sleeps == [1.0, 2.0, 4.0]
    assert len(ex.calls) == 4


def test_backoff_is_capped():
    ex = FakeBinance(errors=[ccxt.NetworkError("down")] * 10)
    provider, sleeps = make(ex, max_retries=5, backoff_base=10.0, max_backoff=30.0)
    with pytest.raises(ProviderError):
        provider.fetch_ohlcv("ETH/BTC", ts(T0), ts(T0 + STEP), now=FAR_FUTURE)
    assert sleeps == [10.0, 20.0, 30.0, 30.0, 30.0]


def test_invalid_candles_from_the_exchange_are_rejected_naming_the_symbol():
    bad = [T0 + STEP, 100.0, 99.0, 98.0, 100.5, 10.0]  # high below close
    ex = FakeBinance(book=[candle(T0), bad])
    provider, _ = make(ex)
    with pytest.raises(ValueError, match="ETH/BTC"):
        provider.fetch_ohlcv("ETH/BTC", ts(T0), ts(T0 + 10 * STEP), now=FAR_FUTURE)


def test_unknown_exchange_id():
    with pytest.raises(ProviderError, match="'nosuchexchange' is not a ccxt exchange"):
        CcxtProvider("nosuchexchange")


def test_builds_a_real_ccxt_instance_without_network():
    provider = CcxtProvider("kraken", sleep=lambda s: None)
    assert provider.exchange == "kraken"
    assert provider.limit == 720
    assert provider.client.enableRateLimit is True
    assert provider.kind == "ccxt" and provider.synthetic is False
    assert provider.describe().startswith("ccxt:kraken")


def test_exchange_limits():
    assert exchange_limit(FakeBinance()) == 1000
    assert exchange_limit(SimpleNamespace(id="unknown-venue")) == DEFAULT_LIMIT == 500
    venue = SimpleNamespace(id="other", features={"spot": {"fetchOHLCV": {"limit": 200}}})
    assert exchange_limit(venue) == 200
    assert CcxtProvider(exchange=FakeBinance(), limit=50).limit == 50


class HttpFakeBinance(ccxt.binance):
    """Overrides ccxt's raw `fetch`, so ccxt's own request building and parsing are exercised."""

    def __init__(self, klines):
        super().__init__()
        self.klines = klines
        self.requested: list[str] = []
        self.set_markets(
            [
                {"id": "ETHBTC", "symbol": "ETH/BTC", "base": "ETH", "quote": "BTC", "baseId": "ETH",
                 "quoteId": "BTC", "type": "spot", "spot": True, "margin": False, "swap": False,
                 "future": False, "option": False, "contract": False, "linear": None, "inverse": None,
                 "active": True, "precision": {}, "limits": {}, "info": {}}
            ]
        )  # fmt: skip

    def load_markets(self, reload=False, params=None):
        return self.markets  # already set: never download exchangeInfo

    def fetch(self, url, method="GET", headers=None, body=None):
        self.requested.append(url)
        assert "/klines" in url, url
        return self.klines


def test_http_level_fake_checks_the_request_ccxt_sends():
    row = [T0, "0.0984", "0.0995", "0.0982", "0.0994", "1820.5", T0 + STEP - 1, "179.1", 100, "10", "1", "0"]
    ex = HttpFakeBinance([row])
    provider, _ = make(ex)
    df = provider.fetch_ohlcv("ETH/BTC", ts(T0), ts(T0 + 2 * STEP), now=FAR_FUTURE)
    url = ex.requested[0]
    assert "symbol=ETHBTC" in url and "interval=5m" in url and "limit=1000" in url
    assert f"startTime={T0}" in url and f"endTime={T0 + 2 * STEP - 1}" in url
    assert len(df) == 1
    assert df.loc[0, ["open", "high", "low", "close", "volume"]].tolist() == [
        0.0984,
        0.0995,
        0.0982,
        0.0994,
        1820.5,
    ]


def test_http_level_fake_unknown_market_is_a_bad_symbol():
    ex = HttpFakeBinance([])
    provider, _ = make(ex)
    with pytest.raises(BadSymbolError, match="FOO/BTC"):
        provider.fetch_ohlcv("FOO/BTC", ts(T0), ts(T0 + 2 * STEP), now=FAR_FUTURE)
    assert ex.requested == []
