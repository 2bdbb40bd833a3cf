"""A market-data resource over a scripted fake exchange (tests/provider_fakes.FakeExchange), for
run-level fault injection: the real `CcxtProvider` (pagination, retries, validation) against faults,
through the real `candles` asset. No network; sleeps are recorded in `SLEEPS`, never slept."""

from __future__ import annotations

import sys
from pathlib import Path

import ccxt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: provider_fakes
from provider_fakes import FakeExchange  # noqa: E402

from pipeline.resources import MarketDataResource  # noqa: E402

T0 = 1704067200000  # 2024-01-01 00:00 UTC
STEP = 300_000
DAY = 288
SLEEPS: list[float] = []


def candle(i: int) -> list:
    """A plausible 5m candle (small moves, positive volume) in slot i after T0."""
    base = 100.0 + (i % 7) * 0.1
    return [T0 + i * STEP, base, base + 0.5, base - 0.5, base + 0.2, 10.0 + i % 3]


class _HighBelowLow(FakeExchange):
    def fetch_ohlcv(self, *args, **kwargs):
        rows = super().fetch_ohlcv(*args, **kwargs)
        if len(rows) > 5:
            rows[5] = [rows[5][0], rows[5][1], rows[5][3] - 1, rows[5][2] + 1, rows[5][4], rows[5][5]]  # high < low
        return rows


class _Repeats(FakeExchange):
    def fetch_ohlcv(self, *args, **kwargs):
        rows = super().fetch_ohlcv(*args, **kwargs)
        return rows[::-1] + [list(r) for r in rows[:5]]  # reversed, with exact repeats


def _errors(exc: Exception, n: int) -> list:
    return [exc] * n


SCENARIOS = {
    "clean": lambda book: FakeExchange(book),
    "timeouts": lambda book: FakeExchange(book, errors=[ccxt.RequestTimeout("timed out"),
                                                        ccxt.ExchangeNotAvailable("503 Service Unavailable")]),
    "5xx_forever": lambda book: FakeExchange(book, errors=_errors(ccxt.ExchangeNotAvailable("503 Service Unavailable"), 99)),
    "429": lambda book: FakeExchange(book, errors=[ccxt.RateLimitExceeded("429 Too Many Requests")],
                                     headers={"Retry-After": "7"}),
    "malformed_json": lambda book: FakeExchange(book, errors=_errors(ccxt.BadResponse("binance <html>502 Bad Gateway</html>"), 99)),
    "malformed_json_once": lambda book: FakeExchange(book, errors=[ccxt.BadResponse("binance {\"code\": ")]),
    "empty_pages": lambda book: FakeExchange(book, mode="empty_at", at=T0 + 400 * STEP),
    "empty_page_once": lambda book: FakeExchange(book, mode="empty_at", at=T0 + 400 * STEP, times=1),
    "ignored_since": lambda book: FakeExchange(book, mode="latest", n=100),
    "disorder": lambda book: FakeExchange(book, mode="shuffle"),
    "repeats": lambda book: _Repeats(book),
    "high_below_low": lambda book: _HighBelowLow(book),
}  # fmt: skip


class FaultyExchangeData(MarketDataResource):
    """`scenario` (a key of SCENARIOS) over a two-day book from 2024-01-01; pages of 100 candles."""

    scenario: str = "clean"

    def provider(self, universe):
        from engine.data import CcxtProvider

        book = [candle(i) for i in range(2 * DAY)]
        return CcxtProvider(exchange=SCENARIOS[self.scenario](book), sleep=SLEEPS.append, limit=100, max_retries=2)
