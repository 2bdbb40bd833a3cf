"""5m candles from any ccxt exchange, with our own pagination, rate limiting, retries and coverage.

Why not ccxt's `paginate` option: it silently ignores an old `since` on some exchanges and hides
progress, so we walk the range ourselves (`since` = last open time + 5m, the exchange's max `limit`, an
`until` bound) and keep the evidence for every hole (see `engine.data._walk`): an empty page or an
ignored `since` is retried and then reported missing, never taken as "no data". Each page is checked
on its own (`engine.data._pages`), so a malformed answer names the exchange, the symbol and the page.
ccxt is imported lazily so `import engine.data` stays fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from engine.data._common import (
    Clock,
    ceil_grid,
    closed_bound_ms,
    finalize_candles,
    resolve_now,
    to_ms,
)
from engine.data._pages import clean_page, concat_pages, page_label, page_ms, rows_to_frame
from engine.data._walk import walk
from engine.data.base import (
    COVERAGE_ATTR,
    BadSymbolError,
    MalformedDataError,
    MarketDataProvider,
    ProviderError,
)
from engine.data.coverage import build_coverage

TIMEFRAME = "5m"
DEFAULT_LIMIT = 500
#: max candles per fetchOHLCV request, from the exchanges' API docs; others fall back to ccxt's
#: `features` metadata, then to DEFAULT_LIMIT (small enough for every exchange we know).
MAX_LIMITS: dict[str, int] = {
    "binance": 1000,
    "binanceus": 1000,
    "binanceusdm": 1500,
    "binancecoinm": 1500,
    "bybit": 1000,
    "kucoin": 1500,
    "coinbase": 300,
    "kraken": 720,
    "okx": 300,
    "gate": 1000,
    "mexc": 1000,
    "bitfinex": 10000,
}


def _ccxt() -> Any:
    import ccxt  # lazy: heavy import, only needed when this provider is used

    return ccxt


def exchange_limit(exchange: Any) -> int:
    """Max candles per request for `exchange`: our table, then ccxt's features, then DEFAULT_LIMIT."""
    exchange_id = str(getattr(exchange, "id", ""))
    if exchange_id in MAX_LIMITS:
        return MAX_LIMITS[exchange_id]
    try:
        limit = exchange.features["spot"]["fetchOHLCV"]["limit"]
        if isinstance(limit, int) and limit > 0:
            return limit
    except (AttributeError, KeyError, TypeError):
        pass
    return DEFAULT_LIMIT


class CcxtProvider(MarketDataProvider):
    """Closed 5m candles from a ccxt exchange (Binance by default)."""

    kind = "ccxt"
    synthetic = False

    def __init__(
        self,
        exchange_id: str = "binance",
        exchange: Any | None = None,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock | None = None,
        *,
        limit: int | None = None,
        max_backoff: float = 60.0,
        timeout_ms: int = 30_000,
        incomplete_retries: int = 2,
        max_retry_after: float = 300.0,
    ) -> None:
        for name, value in (("max_retries", max_retries), ("incomplete_retries", incomplete_retries)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ProviderError(f"ccxt option {name} must be a whole number >= 0, got {value!r}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ProviderError(f"ccxt option limit must be a whole number >= 1, got {limit!r}")
        if exchange is None:
            ccxt = _ccxt()
            if exchange_id not in ccxt.exchanges:
                raise ProviderError(
                    f"{exchange_id!r} is not a ccxt exchange id (see ccxt.exchanges, "
                    f"e.g. {', '.join(ccxt.exchanges[:5])}, ...)"
                )
            exchange = getattr(ccxt, exchange_id)({"enableRateLimit": True, "timeout": timeout_ms})
        else:
            exchange_id = str(getattr(exchange, "id", None) or exchange_id)
        exchange.enableRateLimit = True
        self._exchange = exchange
        self._exchange_id = exchange_id
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.max_backoff = max_backoff
        self.incomplete_retries = incomplete_retries
        self.max_retry_after = float(max_retry_after)
        self.limit = limit or exchange_limit(exchange)
        self._sleep = sleep
        self._clock = clock

    @property
    def exchange(self) -> str:
        return self._exchange_id

    @property
    def client(self) -> Any:
        """The underlying ccxt exchange instance."""
        return self._exchange

    def describe(self) -> str:
        return f"ccxt:{self._exchange_id} (limit {self.limit}/request)"

    # -- fetching ------------------------------------------------------------------------------------
    def fetch_ohlcv(
        self, symbol: str, start: pd.Timestamp, end: pd.Timestamp, *, now: pd.Timestamp | None = None
    ) -> pd.DataFrame:
        start_ms, end_ms = to_ms(start), to_ms(end)
        now_ms = resolve_now(now, self._clock)
        lo, hi = ceil_grid(start_ms), min(end_ms, closed_bound_ms(now_ms))
        pager = _CcxtPager(self, symbol, hi)
        result = walk(
            pager, lo, hi, retries=self.incomplete_retries, backoff=self._backoff, sleep=self._sleep
        )
        df = finalize_candles(concat_pages(result.frames), symbol, start_ms, end_ms, now_ms)
        df.attrs[COVERAGE_ATTR] = build_coverage(
            df, symbol=symbol, source=self.describe(), start_ms=start_ms, end_ms=end_ms, now_ms=now_ms,
            confirmed=result.confirmed, suspects=result.suspects, notes=pager.notes + result.notes,
            details={"requests": pager.requests, "incomplete_retries": result.retries},
        )  # fmt: skip
        return df

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_base * 2**attempt, self.max_backoff)

    def request(self, symbol: str, since: int, limit: int, until: int | None, where: str) -> list[Any]:
        """One fetchOHLCV call, retried with backoff on transient errors only (429: `Retry-After`)."""
        ccxt = _ccxt()
        params = {"until": until} if until is not None else {}
        attempt = 0
        while True:
            try:
                return self._exchange.fetch_ohlcv(symbol, TIMEFRAME, since=since, limit=limit, params=params)
            except ccxt.BadSymbol as exc:
                raise BadSymbolError(f"{self._exchange_id} does not know symbol {symbol!r}: {exc}") from exc
            except (ccxt.OperationFailed, ccxt.BadResponse) as exc:  # network, 5xx, 429, garbled body
                if attempt >= self.max_retries:
                    raise ProviderError(
                        f"{where}: giving up after {attempt + 1} attempts ({type(exc).__name__}: {exc})"
                    ) from exc
                delay = self._backoff(attempt)
                if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
                    delay = max(delay, self._retry_after(where))
                self._sleep(delay)
                attempt += 1
            except ccxt.BaseError as exc:  # BadRequest, AuthenticationError, other ExchangeError
                raise ProviderError(
                    f"{where}: {type(exc).__name__} from exchange {self._exchange_id} "
                    f"for symbol {symbol!r}: {exc}"
                ) from exc
            except Exception as exc:  # ccxt failed to parse the answer (TypeError, KeyError, ...)
                raise MalformedDataError(
                    f"{where}: the exchange's answer could not be parsed ({type(exc).__name__}: "
                    f"{str(exc)[:200]})"
                ) from exc

    def _retry_after(self, where: str) -> float:
        """Seconds from the last response's `Retry-After` header (0 when absent); refuses absurd waits."""
        headers = getattr(self._exchange, "last_response_headers", None) or {}
        raw = next((v for k, v in dict(headers).items() if str(k).lower() == "retry-after"), None)
        try:
            seconds = max(0.0, float(raw)) if raw is not None else 0.0
        except (TypeError, ValueError):
            return 0.0
        if seconds > self.max_retry_after:
            raise ProviderError(
                f"{where}: rate limited by {self._exchange_id} for {seconds:.0f} s (Retry-After), more than "
                f"max_retry_after={self.max_retry_after:.0f} s; try again later"
            )
        return seconds


class _CcxtPager:
    """The walk's view of one symbol on a ccxt exchange (see `engine.data._walk.Pager`)."""

    overlap_ok = False
    strict_end = False

    def __init__(self, provider: CcxtProvider, symbol: str, hi: int) -> None:
        self.p, self.symbol, self.hi = provider, symbol, hi
        self.requests = 0
        self.notes: list[str] = []

    def _call(self, since: int, limit: int, until: int | None) -> pd.DataFrame:
        where = self.label(since)
        if self.requests:
            self.p._sleep(float(getattr(self.p.client, "rateLimit", 0) or 0) / 1000.0)  # polite spacing
        self.requests += 1
        raw = self.p.request(self.symbol, since, limit, until, where)
        page, notes = clean_page(rows_to_frame(raw, where), self.symbol, where)
        self.notes.extend(notes)
        return page

    def window_end(self, cursor: int) -> int:
        return self.hi

    def label(self, cursor: int) -> str:
        return page_label(self.p.exchange, self.symbol, cursor)

    def page(self, cursor: int) -> pd.DataFrame:
        return self._call(cursor, self.p.limit, self.hi - 1)  # until is inclusive on Binance

    def probe(self, cursor: int) -> int | None:
        """Ask `since=cursor, limit=1` with no upper bound: an exchange that honours `since` answers with
        exactly its first candle at or after `cursor` (or nothing yet)."""
        page = self._call(cursor, 1, None)
        ms = page_ms(page) if len(page) else []
        if len(ms) != 1 or ms[0] < cursor:
            return None
        return int(ms[0])

    def verify_head(self, cursor: int, first: int) -> bool:
        return self.probe(cursor) == first

    def tail_listed(self, cursor: int, rows: int) -> bool:
        return False  # a short page may be truncated: ask again from the slot after its last candle
