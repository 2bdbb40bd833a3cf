"""5m candles from any ccxt exchange, with our own pagination, rate limiting and retries.

Why not ccxt's `paginate` option: it silently ignores an old `since` on some exchanges and hides
progress, so we walk the range ourselves (`since` = last open time + 5m, the exchange's max `limit`, an
`until` bound) and stop on an empty page or a page that makes no progress. ccxt is imported lazily so
`import engine.data` stays fast.
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
from engine.data.base import BadSymbolError, MarketDataProvider, ProviderError
from engine.schemas import BASE_MS, OHLCV_COLUMNS, empty_candles
from engine.timeframes import ms_index

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
    ) -> None:
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
        stop_ms = min(end_ms, closed_bound_ms(now_ms))  # exclusive bound on wanted open times
        cursor = ceil_grid(start_ms)
        rows: list[list[Any]] = []
        first = True
        while cursor < stop_ms:
            if not first:
                self._sleep(float(getattr(self._exchange, "rateLimit", 0) or 0) / 1000.0)
            first = False
            page = self._fetch_page(symbol, cursor, stop_ms - 1)
            if not page:
                break
            last_open = max(int(r[0]) for r in page)
            rows.extend(page)
            if last_open < cursor:  # exchange ignored `since`: no progress, do not loop forever
                break
            cursor = last_open + BASE_MS
        return finalize_candles(self._to_frame(rows), symbol, start_ms, end_ms, now_ms)

    def _fetch_page(self, symbol: str, since: int, until: int) -> list[list[Any]]:
        """One request, retried with exponential backoff on transient errors only."""
        ccxt = _ccxt()
        where = f"{self._exchange_id} {symbol!r}"
        attempt = 0
        while True:
            try:
                page = self._exchange.fetch_ohlcv(
                    symbol, TIMEFRAME, since=since, limit=self.limit, params={"until": until}
                )
                return list(page or [])
            except ccxt.BadSymbol as exc:
                raise BadSymbolError(f"{self._exchange_id} does not know symbol {symbol!r}: {exc}") from exc
            except ccxt.OperationFailed as exc:  # NetworkError, DDoSProtection, RateLimitExceeded, ...
                if attempt >= self.max_retries:
                    raise ProviderError(
                        f"{where}: giving up after {attempt + 1} attempts ({type(exc).__name__}: {exc})"
                    ) from exc
                self._sleep(min(self.backoff_base * 2**attempt, self.max_backoff))
                attempt += 1
            except ccxt.BaseError as exc:  # BadRequest, AuthenticationError, other ExchangeError
                raise ProviderError(
                    f"{where}: {type(exc).__name__} from exchange {self._exchange_id} "
                    f"for symbol {symbol!r}: {exc}"
                ) from exc

    @staticmethod
    def _to_frame(rows: list[list[Any]]) -> pd.DataFrame:
        if not rows:
            return empty_candles()
        df = pd.DataFrame([r[:6] for r in rows], columns=["ms", *OHLCV_COLUMNS])
        out = pd.DataFrame({"timestamp": ms_index(df["ms"].astype("int64").to_numpy())})
        for col in OHLCV_COLUMNS:
            out[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
        return out
