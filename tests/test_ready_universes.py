"""The ready live universes (config/universe.binance.yaml, config/universe.nobitex.yaml): they load and
validate offline, and their providers, built from the files' own options with a fake exchange or a
fake session injected, fetch a complete day for every symbol. No network here: the fakes answer from
in-memory books, or hand-written bodies in Nobitex's documented formats.
"""

from __future__ import annotations

import json
import socket
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from provider_fakes import FakeExchange, RoutingSession

from engine.data import CcxtProvider, NobitexProvider, make_provider
from pipeline.universe import REPO_ROOT, load_universe

DAY = date(2026, 11, 2)
NOW = pd.Timestamp("2026-11-03 00:10", tz="UTC")
FIXTURES = Path(__file__).parent / "fixtures" / "providers"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def day_book(start: pd.Timestamp, price: float) -> list[list]:
    first = int(start.value // 1_000_000)
    return [[first + i * 300_000, price, price * 1.001, price * 0.999, price, 2.0] for i in range(288 + 2)]


def test_binance_universe_loads_offline_and_fetches_every_symbol_through_a_fake_exchange():
    uni = load_universe(REPO_ROOT / "config" / "universe.binance.yaml")
    assert uni.provider_kind == "ccxt" and uni.exchange == "binance" and len(uni.symbols) == 20
    assert all(s.endswith("/USDT") for s in uni.symbols)
    real = make_provider(uni.provider_kind, **uni.provider_options)  # a real ccxt client, not used
    assert isinstance(real, CcxtProvider) and real.exchange == "binance" and real.limit == 1000
    start, end = uni.partition_bounds(DAY)
    for symbol in uni.symbols:
        fake = FakeExchange(day_book(start, 100.0))
        provider = make_provider(
            uni.provider_kind, **uni.provider_options, exchange=fake, sleep=lambda s: None
        )
        df, cov = provider.fetch_with_coverage(symbol, start, end, now=NOW)
        assert len(df) == 288 and cov.complete, cov.summary()
        assert provider.exchange == uni.exchange


def _history(params: dict) -> dict:
    """A `udf/history` answer for the asked window: one candle per 5 minutes, prices in tomans for IRT
    markets (a tenth of the stats' rial price) and in USDT for USDT markets."""
    first, last = params["from"], params["to"]
    irt = params["symbol"].endswith("IRT")
    price = 2_625_000_000.0 if irt else 65_000.0
    times = list(range(first - first % 300 + (300 if first % 300 else 0), last + 1, 300))
    n = len(times)
    return {"s": "ok", "t": times, "o": [price] * n, "h": [price * 1.001] * n, "l": [price * 0.999] * n,
            "c": [price] * n, "v": [1.5] * n}  # fmt: skip


def test_nobitex_universe_loads_offline_and_fetches_every_symbol_through_a_fake_session():
    uni = load_universe(REPO_ROOT / "config" / "universe.nobitex.yaml")
    assert uni.provider_kind == "nobitex" and uni.exchange == "nobitex"
    quotes = {s.partition("/")[2] for s in uni.symbols}
    assert quotes == {"IRT", "USDT"}
    assert isinstance(make_provider(uni.provider_kind, **uni.provider_options), NobitexProvider)
    stats = json.loads((FIXTURES / "nobitex_stats_rls.json").read_text())
    for market in ("eth", "usdt", "xrp", "doge", "trx", "ada", "ltc", "sol", "bnb"):
        stats["stats"][f"{market}-rls"] = stats["stats"]["btc-rls"]  # one price level keeps the fake simple
    recent = json.loads((FIXTURES / "nobitex_recent_hourly.json").read_text())
    irt = [s for s in uni.symbols if s.endswith("/IRT")]
    session = RoutingSession(stats=[stats], recent=[recent] * len(irt), default_history=_history)
    sleeps: list[float] = []
    provider = make_provider(uni.provider_kind, **uni.provider_options, session=session, sleep=sleeps.append)
    start, end = uni.partition_bounds(DAY)
    for symbol in uni.symbols:
        df, cov = provider.fetch_with_coverage(symbol, start, end, now=NOW)
        assert len(df) == 288 and cov.complete, cov.summary()
        if symbol.endswith("/IRT"):  # tomans on the wire, rials stored (price_unit: IRR)
            assert df["close"].iloc[0] == 26_250_000_000.0 and cov.details["udf_unit"] == "IRT"
            assert (df["price_unit"] == "IRR").all()
        else:
            assert df["close"].iloc[0] == 65_000.0 and (df["price_unit"] == "USDT").all()
    assert session.routes().count("stats") == 1 and session.routes().count("recent") == len(irt)
    assert set(sleeps) <= {0.5}  # only the polite interval of the file, no retry
    assert "IRT prices in IRR" in provider.describe() and "BTC/IRT=IRT" in provider.describe()
