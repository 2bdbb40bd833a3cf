"""5m candles from Nobitex's public UDF history endpoint (Nobitex is not in ccxt).

API base `https://apiv2.nobitex.ir` (the docs moved it there in July 2025). The history endpoint returns
at most 500 candles per request, so the range is walked in explicit windows of 500 candle slots
(`from`/`to` in epoch seconds, `countback=500`, `page=1`): each window fits in one response whatever
the server's exact `countback` semantics, and its answer lists the whole window, so holes in it are
real (see `engine.data._walk`), except in the last `settle_minutes` before `now`, where a candle may
not be published yet. `{"s": "no_data"}` proves nothing and is retried, then reported missing.
Minute candles exist only from 1401-01-01 (2022-03-21, Tehran): earlier slots are confirmed empty.
HTTP 429 bodies carry `backOff` (seconds): we wait exactly that long.

Prices of IRT markets are converted to `price_unit` ("IRR" rials or "IRT" tomans) after checking the
endpoint's unit per market against the market stats (see `engine.data.nobitex_units`); the unit is
recorded in a `price_unit` column, the coverage details and `describe()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
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
from engine.data._pages import clean_page, columns_to_frame, concat_pages
from engine.data._walk import iso, walk
from engine.data.base import (
    COVERAGE_ATTR,
    BadSymbolError,
    MalformedDataError,
    MarketDataProvider,
    ProviderError,
)
from engine.data.coverage import build_coverage
from engine.data.nobitex_units import (
    UNITS,
    UnitCheck,
    check_price_unit,
    conversion,
    parse_stats_latest,
)
from engine.schemas import BASE_MS, PRICE_COLUMNS, empty_candles

DEFAULT_BASE_URL = "https://apiv2.nobitex.ir"
HISTORY_PATH = "/market/udf/history"
STATS_PATH = "/market/stats"
MAX_CANDLES = 500
RESOLUTION_5M = "5"
#: 1401-01-01 00:00 Asia/Tehran: the docs say minute candles do not exist before it
MINUTE_HISTORY_START_MS = 1647808200000  # 2022-03-20T20:30:00Z
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
    """Closed 5m candles from Nobitex; IRT prices in `price_unit` after a per-market unit check."""

    kind = "nobitex"
    synthetic = False

    def __init__(
        self,
        session: Any | None = None,
        base_url: str = DEFAULT_BASE_URL,
        *,
        price_unit: str = "IRR",
        unit_check: bool = True,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        max_backoff: float = 60.0,
        request_interval: float = 0.0,
        timeout: float = 30.0,
        incomplete_retries: int = 2,
        settle_minutes: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock | None = None,
    ) -> None:
        if price_unit not in UNITS:
            raise ProviderError(
                f"nobitex option price_unit must be 'IRR' (rials) or 'IRT' (tomans), got {price_unit!r}"
            )
        if not isinstance(unit_check, bool):
            raise ProviderError(f"nobitex option unit_check must be true or false, got {unit_check!r}")
        if session is None:
            import requests  # lazy: keeps `import engine.data` fast

            session = requests.Session()
            session.headers["User-Agent"] = "crypto4h-research/0.1"
        self._session = session
        self.base_url = base_url.rstrip("/")
        self.price_unit = price_unit
        self.unit_check = unit_check
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.max_backoff = max_backoff
        self.request_interval = request_interval
        self.timeout = timeout
        self.incomplete_retries = incomplete_retries
        self.settle_ms = int(settle_minutes * 60_000)
        self._sleep = sleep
        self._clock = clock
        self._stats: dict[str, Any] | None = None
        self.unit_checks: dict[str, UnitCheck] = {}

    @property
    def exchange(self) -> str:
        return "nobitex"

    def describe(self) -> str:
        checked = ", ".join(f"{unified_symbol(m)}={c.udf_unit}" for m, c in sorted(self.unit_checks.items()))
        how = (
            f"udf/history unit checked per market: {checked}"
            if checked
            else ("udf/history unit checked per market when fetched" if self.unit_check else "unit check off")
        )
        return f"nobitex:nobitex (IRT prices in {self.price_unit}; {how})"

    def unit_for(self, symbol: str) -> str:
        """Price unit of a market: `price_unit` for IRT markets, else the quote currency (e.g. USDT)."""
        market = nobitex_symbol(symbol)
        if market.endswith("IRT"):
            return self.price_unit
        quote = unified_symbol(market).partition("/")[2]
        return quote or "unknown"

    # -- price unit ------------------------------------------------------------------------------------
    def check_unit(self, symbol: str, now_ms: int) -> UnitCheck:
        """The `udf/history` unit of an IRT market, checked once per provider instance (two requests:
        the market stats of every rial market, shared, and the market's recent hourly candles)."""
        market = nobitex_symbol(symbol)
        if market in self.unit_checks:
            return self.unit_checks[market]
        if not self.unit_check:
            check = UnitCheck(market, self.price_unit, None, None, checked=False)
        else:
            base = market[: -len("IRT")].lower()
            if self._stats is None:
                self._stats = self._get(
                    STATS_PATH, {"dstCurrency": "rls"}, symbol, "market stats (dstCurrency=rls)"
                )
            latest = parse_stats_latest(self._stats, f"{base}-rls")
            if latest is None:
                raise ProviderError(
                    f"nobitex {symbol!r}: /market/stats has no rial price for '{base}-rls', so the unit of "
                    "its udf/history prices cannot be checked (set unit_check: false and price_unit if "
                    "you know it)"
                )
            check = check_price_unit(market, latest, self._recent_close(symbol, market, now_ms))
        self.unit_checks[market] = check
        return check

    def _recent_close(self, symbol: str, market: str, now_ms: int) -> float:
        """Close of the market's latest hourly candle in the 3 days before `now`."""
        to_s = now_ms // 1000
        params = {"symbol": market, "resolution": "60", "from": to_s - 3 * 86400, "to": to_s,
                  "countback": 72, "page": 1}  # fmt: skip
        page = "recent hourly candles (price unit check)"
        body = self._get(HISTORY_PATH, params, symbol, page)
        frame = self._parse(body, symbol, f"nobitex {symbol!r} {page}")
        if frame.empty:
            raise ProviderError(
                f"nobitex {symbol!r}: no candle in the last 3 days, so the price unit cannot be checked "
                "against the market stats (set unit_check: false and price_unit if you know it)"
            )
        return float(frame["close"].iloc[-1])

    # -- fetching ------------------------------------------------------------------------------------
    def fetch_ohlcv(
        self, symbol: str, start: pd.Timestamp, end: pd.Timestamp, *, now: pd.Timestamp | None = None
    ) -> pd.DataFrame:
        market = nobitex_symbol(symbol)
        start_ms, end_ms = to_ms(start), to_ms(end)
        now_ms = resolve_now(now, self._clock)
        lo, hi = ceil_grid(start_ms), min(end_ms, closed_bound_ms(now_ms))
        details: dict[str, Any] = {"price_unit": self.unit_for(symbol)}
        confirmed = []
        if lo < MINUTE_HISTORY_START_MS:
            stop = min(hi, MINUTE_HISTORY_START_MS)
            if lo < stop:
                confirmed.append((lo, stop, "nobitex has no minute candles before 1401-01-01 (2022-03-21)"))
            lo = max(lo, MINUTE_HISTORY_START_MS)
        factor = 1.0
        if market.endswith("IRT") and lo < hi:  # only when something will be fetched
            check = self.check_unit(symbol, now_ms)
            factor = conversion(check.udf_unit, self.price_unit)
            details.update(udf_unit=check.udf_unit, unit_check=check.describe())
        pager = _NobitexPager(self, symbol, market, hi, now_ms)
        result = walk(
            pager, lo, hi, retries=self.incomplete_retries, backoff=self._backoff, sleep=self._sleep
        )
        df = concat_pages(result.frames)
        if factor != 1.0 and len(df):
            df = df.copy()
            df[list(PRICE_COLUMNS)] = df[list(PRICE_COLUMNS)] * factor
        df["price_unit"] = self.unit_for(symbol)
        df = finalize_candles(df, symbol, start_ms, end_ms, now_ms)
        details["requests"] = pager.requests
        df.attrs[COVERAGE_ATTR] = build_coverage(
            df, symbol=symbol, source=self.describe(), start_ms=start_ms, end_ms=end_ms, now_ms=now_ms,
            confirmed=confirmed + result.confirmed, suspects=result.suspects,
            notes=pager.notes + result.notes, details=details,
        )  # fmt: skip
        return df

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_base * 2**attempt, self.max_backoff)

    def _get(self, path: str, params: Mapping[str, Any], symbol: str, page: str) -> dict[str, Any]:
        """One request with retries: 429 waits `backOff`, 5xx/timeouts/garbled JSON back off."""
        url = self.base_url + path
        where = f"nobitex {symbol!r}"
        attempt = 0
        while True:
            delay: float | None = None
            reason = ""
            try:
                resp = self._session.get(url, params=dict(params), timeout=self.timeout)
            except Exception as exc:  # requests' Timeout/ConnectionError (fake sessions raise the same)
                if not _is_transient_exception(exc):
                    raise ProviderError(f"{where}: request failed at {page}: {exc!r}") from exc
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
                    msg = _error_message(body) or str(getattr(resp, "text", ""))[:200]
                    if status in (400, 404) and _mentions_symbol(msg):
                        raise BadSymbolError(f"nobitex does not know symbol {symbol!r}: {msg}")
                    raise ProviderError(f"{where}: HTTP {status} from nobitex at {page}: {msg}")
                else:
                    body = _json_or_none(resp)
                    if isinstance(body, dict):
                        return body
                    reason = "malformed JSON (not an object)"
            if attempt >= self.max_retries:
                raise ProviderError(f"{where}: giving up after {attempt + 1} attempts ({reason}) at {page}")
            if delay is None:
                delay = self._backoff(attempt)
            self._sleep(delay)
            attempt += 1

    def _parse(self, body: dict[str, Any], symbol: str, where: str) -> pd.DataFrame:
        status = body.get("s")
        if status == "no_data":
            return empty_candles()
        if status == "error":
            msg = _error_message(body) or "unspecified error"
            if _mentions_symbol(msg):
                raise BadSymbolError(f"nobitex does not know symbol {symbol!r}: {msg}")
            raise ProviderError(f"nobitex error for symbol {symbol!r} at {where}: {msg}")
        if status != "ok":
            raise MalformedDataError(f"{where}: unexpected response status {str(status)[:40]!r}")
        missing = [k for k in ("t", *_UDF_FIELDS) if k not in body]
        if missing:
            raise MalformedDataError(f"{where}: malformed 'ok' response, fields {missing} are missing")
        columns = {name: body[k] for k, name in _UDF_FIELDS.items()}
        return columns_to_frame(body["t"], columns, where, keys={v: k for k, v in _UDF_FIELDS.items()})


class _NobitexPager:
    """The walk's view of one Nobitex market (see `engine.data._walk.Pager`)."""

    overlap_ok = True  # `countback` may reach before `from`
    strict_end = True  # `to` is explicit: rows after it mean the window was ignored

    def __init__(self, provider: NobitexProvider, symbol: str, market: str, hi: int, now_ms: int) -> None:
        self.p, self.symbol, self.market, self.hi, self.now_ms = provider, symbol, market, hi, now_ms
        self.requests = 0
        self.notes: list[str] = []

    def window_end(self, cursor: int) -> int:
        return min(cursor + MAX_CANDLES * BASE_MS, self.hi)

    def label(self, cursor: int) -> str:
        return f"nobitex {self.symbol!r} page from={iso(cursor)} ({cursor // 1000})"

    def page(self, cursor: int) -> pd.DataFrame:
        if self.requests and self.p.request_interval > 0:
            self.p._sleep(self.p.request_interval)
        self.requests += 1
        upper = self.window_end(cursor)  # exclusive
        params = {"symbol": self.market, "resolution": RESOLUTION_5M, "from": cursor // 1000,
                  "to": (upper - 1) // 1000, "countback": MAX_CANDLES, "page": 1}  # fmt: skip
        where = self.label(cursor)
        body = self.p._get(HISTORY_PATH, params, self.symbol, where)
        page, notes = clean_page(self.p._parse(body, self.symbol, where), self.symbol, where)
        self.notes.extend(notes)
        return page

    def verify_head(self, cursor: int, first: int) -> bool:
        return True  # asked explicitly from=cursor, the first candle came at `first`

    def probe(self, cursor: int) -> int | None:
        return None  # no_data proves nothing and Nobitex offers no "first candle after" query

    def tail_listed(self, cursor: int, rows: int) -> bool:
        return rows < MAX_CANDLES and self.window_end(cursor) <= self.now_ms - self.p.settle_ms


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
