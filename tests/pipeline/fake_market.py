"""A market-data resource that damages the synthetic market on purpose, to test failures and checks."""

from __future__ import annotations

import pandas as pd

from engine.data.base import MarketDataProvider, ProviderError
from pipeline.resources import MarketDataResource


class _Doctored(MarketDataProvider):
    kind = "synthetic"
    synthetic = True

    def __init__(self, inner: MarketDataProvider, mode: str, symbol: str, exchange: str | None) -> None:
        self.inner, self.mode, self.symbol, self._exchange = inner, mode, symbol, exchange
        self.calls: list[str] = []

    @property
    def exchange(self) -> str:
        return self._exchange or self.inner.exchange

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
        if self.mode == "truncate":  # nothing after the first day
            return df[df["timestamp"] < df["timestamp"].iloc[0].normalize() + pd.Timedelta(days=1)]
        return df


class DoctoredMarketData(MarketDataResource):
    """`mode`: fail | holes | spike | truncate, applied to `symbol` only; `exchange` overrides the name."""

    mode: str = "fail"
    symbol: str = "BBB/USDT"
    fake_exchange: str = ""

    def provider(self, universe) -> MarketDataProvider:
        return _Doctored(super().provider(universe), self.mode, self.symbol, self.fake_exchange or None)
