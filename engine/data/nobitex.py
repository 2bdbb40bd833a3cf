"""5m candles from Nobitex's public UDF history endpoint (Nobitex is not in ccxt).

The endpoint returns at most 500 candles per request, so we walk the range in windows of 500 candle
slots (`from`/`to` in epoch seconds, `countback=500`, `page=1`); each window fits in one response
whatever the server's exact `countback` semantics. HTTP 429 bodies carry `backOff` (seconds): we wait
exactly that long. IRT markets are quoted in rials by this endpoint; the unit is recorded explicitly
(constructor `price_unit`, a `price_unit` column in every frame and `describe()`), never guessed later.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
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
from engine.schemas import BASE_MS, empty_candles
from engine.timeframes import ms_index

HISTORY_PATH = "/market/udf/history"
MAX_CANDLES = 500
RESOLUTION_5M = "5"
_UDF_FIELDS = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume"}
_SYMBOL_WORDS = ("symbol", "market", "pair")


def nobitex_symbol(symbol: str) -> str:
    """ "BTC/IRT", "btc-irt", "BTC_IRT" -> "BTCIRT" (Nobitex's market id)."""
    return symbol.replace("/", "").replace("_", "").replace("-", "").upper()


def unified_symbol(market: str) -> str:
    """ "BTCIRT" -> "BTC/IRT", "ETHUSDT" -> "ETH/USDT" (quote currencies Nobitex lists)."""
    market = nobitex_symbol(market)
    for quote in ("IRT", "USDT"):
        if market.endswith(quote) and len(market) > len(quote):
            return f"{market[: -len(quote)]}/{quote}"
    return market


class NobitexProvider(MarketDataProvider):
    """Closed 5m candles from api.nobitex.ir; `price_unit` is the unit of IRT-quoted prices."""

    kind = "nobitex"
    synthetic = False

    def __init__(
        self,
        session: Any | None = None,
        base_url: str = "https://api.nobitex.ir",
        *,
        price_unit: str = "IRR",
        max_retries: int = 5,
        backoff_base: float = 1.0,
        max_backoff: float = 60.0,
        request_interval: float = 0.0,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock | None = None,
    ) -> None:
        if session is None:
            import requests  # lazy: keeps `import engine.data` fast

            session = requests.Session()
            session.headers["User-Agent"] = "crypto4h-research/0.1"
        self._session = session
        self.base_url = base_url.rstrip("/")
        self.price_unit = price_unit
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.max_backoff = max_backoff
        self.request_interval = request_interval
        self.timeout = timeout
        self._sleep = sleep
        self._clock = clock

    @property
    def exchange(self) -> str:
        return "nobitex"

    def describe(self) -> str:
        return f"nobitex:nobitex (IRT prices in {self.price_unit})"

    def unit_for(self, symbol: str) -> str:
        """Price unit of a market: `price_unit` for IRT markets, else the quote currency (e.g. USDT)."""
        market = nobitex_symbol(symbol)
        if market.endswith("IRT"):
            return self.price_unit
        quote = unified_symbol(market).partition("/")[2]
        return quote or "unknown"

    # -- fetching ------------------------------------------------------------------------------------
    def fetch_ohlcv(
        self, symbol: str, start: pd.Timestamp, end: pd.Timestamp, *, now: pd.Timestamp | None = None
    ) -> pd.DataFrame:
        market = nobitex_symbol(symbol)
        start_ms, end_ms = to_ms(start), to_ms(end)
        now_ms = resolve_now(now, self._clock)
        stop_ms = min(end_ms, closed_bound_ms(now_ms))
        window = MAX_CANDLES * BASE_MS
        frames: list[pd.DataFrame] = []
        cursor = ceil_grid(start_ms)
        first = True
        while cursor < stop_ms:
            if not first and self.request_interval > 0:
                self._sleep(self.request_interval)
            first = False
            upper = min(cursor + window, stop_ms)  # exclusive
            params = {
                "symbol": market,
                "resolution": RESOLUTION_5M,
                "from": cursor // 1000,
                "to": (upper - 1) // 1000,
                "countback": MAX_CANDLES,
                "page": 1,
            }
            page = self._parse(self._get(params, symbol), symbol)
            if len(page):
                frames.append(page)
            cursor = upper
        df = pd.concat(frames, ignore_index=True) if frames else empty_candles()
        df["price_unit"] = self.unit_for(symbol)
        return finalize_candles(df, symbol, start_ms, end_ms, now_ms)

    def _get(self, params: Mapping[str, Any], symbol: str) -> dict[str, Any]:
        """One request with retries: 429 waits `backOff`, 5xx/timeouts back off exponentially."""
        url = self.base_url + HISTORY_PATH
        where = f"nobitex {symbol!r}"
        attempt = 0
        while True:
            delay: float | None = None
            reason = ""
            try:
                resp = self._session.get(url, params=dict(params), timeout=self.timeout)
            except Exception as exc:  # requests' Timeout/ConnectionError (fake sessions raise the same)
                if not _is_transient_exception(exc):
                    raise ProviderError(f"{where}: request failed: {exc!r}") from exc
                reason = f"{type(exc).__name__}: {exc}"
            else:
                status = int(getattr(resp, "status_code", 200))
                if status == 429:
                    delay = _back_off_seconds(resp)
                    reason = "HTTP 429 Too Many Requests"
                elif status >= 500:
                    reason = f"HTTP {status}"
                elif status >= 400:
                    body = _json_or_none(resp)
                    msg = _error_message(body) or getattr(resp, "text", "")[:200]
                    if status in (400, 404) and _mentions_symbol(msg):
                        raise BadSymbolError(f"nobitex does not know symbol {symbol!r}: {msg}")
                    raise ProviderError(f"{where}: HTTP {status} from nobitex: {msg}")
                else:
                    body = _json_or_none(resp)
                    if not isinstance(body, dict):
                        raise ProviderError(f"{where}: unexpected non-JSON response from nobitex")
                    return body
            if attempt >= self.max_retries:
                raise ProviderError(f"{where}: giving up after {attempt + 1} attempts ({reason})")
            if delay is None:
                delay = min(self.backoff_base * 2**attempt, self.max_backoff)
            self._sleep(delay)
            attempt += 1

    def _parse(self, body: dict[str, Any], symbol: str) -> pd.DataFrame:
        status = body.get("s")
        if status == "no_data":
            return empty_candles()
        if status == "error":
            msg = _error_message(body) or "unspecified error"
            if _mentions_symbol(msg):
                raise BadSymbolError(f"nobitex does not know symbol {symbol!r}: {msg}")
            raise ProviderError(f"nobitex error for symbol {symbol!r}: {msg}")
        if status != "ok":
            raise ProviderError(f"nobitex {symbol!r}: unexpected response status {status!r}")
        try:
            seconds = np.asarray(body["t"], dtype=np.int64)
            cols = {name: np.asarray(body[key], dtype=np.float64) for key, name in _UDF_FIELDS.items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderError(f"nobitex {symbol!r}: malformed 'ok' response ({exc!r})") from exc
        if any(len(v) != len(seconds) for v in cols.values()):
            raise ProviderError(f"nobitex {symbol!r}: arrays t/o/h/l/c/v have different lengths")
        return pd.DataFrame({"timestamp": ms_index(seconds * 1000), **cols})


def _json_or_none(resp: Any) -> Any:
    try:
        return resp.json()
    except Exception:  # JSON decode errors differ between requests versions
        return None


def _error_message(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    for key in ("errmsg", "message", "detail", "error"):
        if body.get(key):
            return str(body[key])
    return ""


def _mentions_symbol(msg: str) -> bool:
    low = msg.lower()
    return any(word in low for word in _SYMBOL_WORDS)


def _back_off_seconds(resp: Any) -> float | None:
    """`backOff` from the 429 JSON body, else the Retry-After header, else None (exponential)."""
    body = _json_or_none(resp)
    if isinstance(body, dict) and body.get("backOff") is not None:
        try:
            return max(0.0, float(body["backOff"]))
        except (TypeError, ValueError):
            pass
    headers = getattr(resp, "headers", None) or {}
    try:
        return max(0.0, float(headers["Retry-After"]))
    except (KeyError, TypeError, ValueError):
        return None


def _is_transient_exception(exc: Exception) -> bool:
    """Timeouts and connection failures are worth retrying; anything else is a bug or a hard failure."""
    try:
        import requests
    except ImportError:  # pragma: no cover - requests is a dependency
        return isinstance(exc, TimeoutError | ConnectionError)
    return isinstance(exc, requests.Timeout | requests.ConnectionError | TimeoutError | ConnectionError)
