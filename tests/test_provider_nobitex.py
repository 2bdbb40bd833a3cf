"""NobitexProvider against a fake requests.Session serving fixture JSON (tests/fixtures/providers/).

No network here: the bodies are hand-written in the documented format of the public endpoints.
S = 2024-01-01 00:00 UTC = 1704067200 s. One request covers 500 candle slots = 150000 s.
These tests switch the per-market price-unit check off (it is tested in test_provider_nobitex_units.py)
so each scripted answer maps to one history request.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import requests

from engine.data import BadSymbolError, NobitexProvider, ProviderError
from engine.data.nobitex import nobitex_symbol, unified_symbol

FIXTURES = Path(__file__).parent / "fixtures" / "providers"
S = 1704067200
FAR_FUTURE = pd.Timestamp("2030-01-01", tz="UTC")


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def ts(seconds: int) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s", tz="UTC")


class FakeResponse:
    def __init__(self, status_code: int, body=None, headers=None):
        self.status_code = status_code
        self._body = body
        self.headers = headers or {}
        self.text = json.dumps(body) if body is not None else "<html>bad gateway</html>"

    def json(self):
        if self._body is None:
            raise ValueError("not JSON")
        return self._body


class FakeSession:
    """Answers each GET with the next scripted item: a FakeResponse or an exception to raise."""

    def __init__(self, script):
        self.script = list(script)
        self.calls: list[dict] = []

    def get(self, url, params=None, timeout=None):
        self.calls.append({"url": url, **(params or {})})
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def ok(name: str) -> FakeResponse:
    return FakeResponse(200, fixture(name))


def make(script, **kw):
    sleeps: list[float] = []
    session = FakeSession(script)
    kw.setdefault("unit_check", False)
    return NobitexProvider(session=session, sleep=sleeps.append, **kw), session, sleeps


def test_paginates_in_windows_of_500_candles_with_the_documented_params():
    provider, session, sleeps = make([ok("nobitex_history_page1.json"), ok("nobitex_history_page2.json")])
    df = provider.fetch_ohlcv("BTC/IRT", ts(S), ts(S + 600 * 300), now=FAR_FUTURE)

    assert session.calls == [
        {"url": "https://apiv2.nobitex.ir/market/udf/history", "symbol": "BTCIRT", "resolution": "5",
         "from": 1704067200, "to": 1704217199, "countback": 500, "page": 1},
        {"url": "https://apiv2.nobitex.ir/market/udf/history", "symbol": "BTCIRT", "resolution": "5",
         "from": 1704217200, "to": 1704247199, "countback": 500, "page": 1},
    ]  # fmt: skip
    assert sleeps == []
    assert df["timestamp"].tolist() == [
        pd.Timestamp("2024-01-01 00:00", tz="UTC"),
        pd.Timestamp("2024-01-01 00:05", tz="UTC"),
        pd.Timestamp("2024-01-01 00:10", tz="UTC"),
        pd.Timestamp("2024-01-02 17:40", tz="UTC"),
        pd.Timestamp("2024-01-02 17:45", tz="UTC"),
    ]
    assert df["open"].tolist() == [26e9, 26.1e9, 26.05e9, 27e9, 27.1e9]
    # 00:10 was sent twice (page 2 re-sent it with a revised close): the last copy wins
    assert df["close"].tolist() == [26.1e9, 26.05e9, 26.2e9, 27.1e9, 27e9]
    assert df["volume"].tolist() == [0.5, 0.25, 1.5, 2.0, 0.75]
    assert (df["price_unit"] == "IRR").all()
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"


def test_still_open_candle_is_dropped_and_requests_stop_at_now():
    provider, session, _ = make([ok("nobitex_history_page1.json")])
    now = ts(S + 2 * 300 + 60)  # 00:11: the candle opened at 00:10 is still open
    df = provider.fetch_ohlcv("BTCIRT", ts(S), ts(S + 600 * 300), now=now)
    assert len(session.calls) == 1
    assert session.calls[0]["to"] == S + 600 - 1  # closed candles open before 00:10
    assert df["timestamp"].tolist() == [ts(S), ts(S + 300)]


def test_no_data_gives_an_empty_labelled_frame():
    """`no_data` proves nothing: retried twice (backoff 1 s, 2 s), then reported missing."""
    provider, session, sleeps = make([ok("nobitex_no_data.json")] * 3)
    df = provider.fetch_ohlcv("BTCIRT", ts(S), ts(S + 3600), now=FAR_FUTURE)
    assert df.empty
    assert list(df.columns) == ["timestamp", "open", "high", "low", "close", "volume", "price_unit"]
    assert len(session.calls) == 3 and sleeps == [1.0, 2.0]
    cov = df.attrs["coverage"]
    assert [(r.start, r.end) for r in cov.missing] == [(ts(S), ts(S + 3600))]
    assert "no_data" in cov.missing[0].reason or "empty" in cov.missing[0].reason


def test_no_data_window_in_the_middle_does_not_stop_pagination():
    script = [ok("nobitex_no_data.json")] * 3 + [ok("nobitex_history_page2.json")]
    provider, session, _ = make(script)
    df = provider.fetch_ohlcv("BTCIRT", ts(S), ts(S + 600 * 300), now=FAR_FUTURE)
    assert len(session.calls) == 4
    assert [c["from"] for c in session.calls] == [S, S, S, S + 150000]
    assert len(df) == 3
    missing = df.attrs["coverage"].missing
    assert (missing[0].start, missing[0].end) == (ts(S), ts(S + 600))  # the 00:10 row came with page 2


def test_error_about_the_symbol_is_a_bad_symbol():
    provider, session, sleeps = make([ok("nobitex_error_symbol.json")])
    with pytest.raises(BadSymbolError) as err:
        provider.fetch_ohlcv("FOO/IRT", ts(S), ts(S + 3600), now=FAR_FUTURE)
    assert "FOO/IRT" in str(err.value) and "nobitex" in str(err.value)
    assert len(session.calls) == 1 and sleeps == []


def test_other_error_is_a_provider_error():
    provider, _, _ = make([ok("nobitex_error_other.json")])
    with pytest.raises(ProviderError, match="Invalid resolution") as err:
        provider.fetch_ohlcv("BTCIRT", ts(S), ts(S + 3600), now=FAR_FUTURE)
    assert not isinstance(err.value, BadSymbolError)


def test_429_waits_exactly_the_backoff_from_the_body():
    script = [FakeResponse(429, fixture("nobitex_429.json")), ok("nobitex_history_page1.json")]
    provider, session, sleeps = make(script)
    df = provider.fetch_ohlcv("BTCIRT", ts(S), ts(S + 3 * 300), now=FAR_FUTURE)
    assert sleeps == [7.0]
    assert len(session.calls) == 2 and session.calls[0] == session.calls[1]
    assert len(df) == 3


def test_429_without_backoff_falls_back_to_retry_after_then_exponential():
    script = [
        FakeResponse(429, {"status": "failed"}, headers={"Retry-After": "3"}),
        FakeResponse(429, None),
        ok("nobitex_history_page1.json"),
    ]
    provider, _, sleeps = make(script, backoff_base=0.5)
    provider.fetch_ohlcv("BTCIRT", ts(S), ts(S + 3 * 300), now=FAR_FUTURE)
    assert sleeps == [3.0, 1.0]  # Retry-After, then 0.5 * 2**1 on the second attempt


def test_server_errors_and_timeouts_are_retried_with_exponential_backoff():
    script = [
        FakeResponse(502, None),
        requests.Timeout("read timed out"),
        requests.ConnectionError("connection reset"),
        ok("nobitex_history_page1.json"),
    ]
    provider, _, sleeps = make(script)
    df = provider.fetch_ohlcv("BTCIRT", ts(S), ts(S + 3 * 300), now=FAR_FUTURE)
    assert sleeps == [1.0, 2.0, 4.0]
    assert len(df) == 3


def test_exhausted_retries_raise_provider_error():
    provider, session, sleeps = make([FakeResponse(503, None)] * 10, max_retries=2)
    with pytest.raises(ProviderError, match=r"nobitex 'BTCIRT': giving up after 3 attempts \(HTTP 503\)"):
        provider.fetch_ohlcv("BTCIRT", ts(S), ts(S + 3 * 300), now=FAR_FUTURE)
    assert sleeps == [1.0, 2.0]
    assert len(session.calls) == 3


def test_client_errors_are_not_retried():
    provider, session, sleeps = make([FakeResponse(403, {"message": "Forbidden"})])
    with pytest.raises(ProviderError, match="HTTP 403"):
        provider.fetch_ohlcv("BTCIRT", ts(S), ts(S + 3 * 300), now=FAR_FUTURE)
    assert sleeps == [] and len(session.calls) == 1


def test_malformed_ok_response_is_a_provider_error():
    body = {"s": "ok", "t": [S, S + 300], "o": [1.0], "h": [1.0], "l": [1.0], "c": [1.0], "v": [1.0]}
    provider, _, _ = make([FakeResponse(200, body)])
    with pytest.raises(ProviderError, match="different lengths"):
        provider.fetch_ohlcv("BTCIRT", ts(S), ts(S + 3 * 300), now=FAR_FUTURE)


def test_polite_interval_between_pages():
    script = [ok("nobitex_history_page1.json"), ok("nobitex_history_page2.json")]
    provider, _, sleeps = make(script, request_interval=0.25)
    provider.fetch_ohlcv("BTCIRT", ts(S), ts(S + 600 * 300), now=FAR_FUTURE)
    assert sleeps == [0.25]


def test_price_unit_is_explicit_and_recorded():
    provider, _, _ = make([ok("nobitex_history_page1.json")], price_unit="IRT")
    df = provider.fetch_ohlcv("BTC/IRT", ts(S), ts(S + 3 * 300), now=FAR_FUTURE)
    assert (df["price_unit"] == "IRT").all()
    assert "IRT prices in IRT" in provider.describe()
    default = NobitexProvider(session=FakeSession([]))
    assert default.price_unit == "IRR" and "IRR" in default.describe()
    assert default.unit_for("BTC/USDT") == "USDT"  # non-IRT markets are in their quote currency
    assert default.exchange == "nobitex" and default.kind == "nobitex" and default.synthetic is False


def test_symbol_mapping():
    assert nobitex_symbol("BTC/IRT") == "BTCIRT"
    assert nobitex_symbol("btc-usdt") == "BTCUSDT"
    assert nobitex_symbol("BTCIRT") == "BTCIRT"
    assert unified_symbol("BTCIRT") == "BTC/IRT"
    assert unified_symbol("ETHUSDT") == "ETH/USDT"
    assert unified_symbol("BTC/IRT") == "BTC/IRT"
