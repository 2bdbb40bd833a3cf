"""A market-data resource that damages the synthetic market on purpose, to test failures and checks."""

from __future__ import annotations

import pandas as pd

from engine.data.base import MarketDataProvider, ProviderError
from pipeline.resources import MarketDataResource, StoreResource


class _Doctored(MarketDataProvider):
    kind = "synthetic"
    synthetic = True

    def __init__(self, inner: MarketDataProvider, mode: str, symbol: str, exchange: str | None) -> None:
        self.inner, self.mode, self.symbol, self._exchange = inner, mode, symbol, exchange
        self.calls: list[str] = []

    @property
    def exchange(self) -> str:
        return self._exchange or self.inner.exchange

    def describe(self) -> str:
        if self.mode == "verbose":  # e.g. a files provider under a deep root: far beyond VARCHAR(64)
            return self.inner.describe() + " root=" + "/very/long/path" * 20
        return self.inner.describe()

    def fetch_ohlcv(self, symbol, start, end, *, now=None) -> pd.DataFrame:
        df = self.inner.fetch_ohlcv(symbol, start, end, now=now)
        if symbol != self.symbol:
            return df
        if self.mode == "fail":
            raise ProviderError(f"exchange said no for {symbol}")
        if self.mode == "holes":  # keep one candle in three: 2/3 of the slots missing
            return df.iloc[::3].reset_index(drop=True)
        if self.mode == "spike":  # a consistent (schema-valid) bar 5x above its neighbours
            df = df.copy()
            i = len(df) // 2
            df.loc[i, ["open", "high", "low", "close"]] = df.loc[i, ["open", "high", "low", "close"]] * 5
            return df
        if self.mode == "tail":  # the last 3 hours of every day silently absent (an early-ending page)
            return df[df["timestamp"].dt.hour < 21].reset_index(drop=True)
        if self.mode == "truncate":  # nothing after the first day
            return df[df["timestamp"] < df["timestamp"].iloc[0].normalize() + pd.Timedelta(days=1)]
        if self.mode == "rescale":  # first day missing, later days in a price unit 10x smaller (IRT -> IRR)
            later = df[df["timestamp"] >= df["timestamp"].iloc[0].normalize() + pd.Timedelta(days=1)].copy()
            later[["open", "high", "low", "close"]] *= 10
            return later.reset_index(drop=True)
        return df


class DoctoredMarketData(MarketDataResource):
    """`mode`: fail | holes | spike | tail | truncate | rescale, applied to `symbol` only; verbose: a very long
    `describe()`; `fake_exchange` overrides the exchange name."""

    mode: str = "fail"
    symbol: str = "BBB/USDT"
    fake_exchange: str = ""

    def provider(self, universe) -> MarketDataProvider:
        return _Doctored(super().provider(universe), self.mode, self.symbol, self.fake_exchange or None)


class RacyStoreResource(StoreResource):
    """A store where another writer lands a schema-valid 5x spike on `symbol` right after the run's write
    (the race the blocking checks exist for: they read back what the store holds)."""

    symbol: str = "AAA/USDT"

    def get(self):
        if self._store is None:
            from pipeline.store import Store

            symbol = self.symbol

            class _Racy(Store):
                def upsert_candles_many(self, frames, **kwargs):
                    n = super().upsert_candles_many(frames, **kwargs)
                    bad = frames[symbol].copy()
                    bad.loc[len(bad) // 2, ["open", "high", "low", "close"]] *= 5
                    self.upsert_candles(bad, exchange=kwargs["exchange"], symbol=symbol, source="other writer")
                    return n

            store = _Racy(url=self.db_url or None)
            store.migrate()
            self._store = store
        return self._store
