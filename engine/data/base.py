"""The one interface every market-data source implements.

A provider returns *closed* 5m candles for one symbol and a half-open open-time range `[start, end)`,
de-duplicated, sorted and validated against the engine's candle schema. Anything that talks to the
outside world lives behind this interface so the rest of the engine stays pure.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import pandas as pd


class ProviderError(RuntimeError):
    """A data source failed in a way the user must act on (bad symbol, exhausted retries, bad file)."""


class BadSymbolError(ProviderError):
    """The source does not know the symbol; never retried."""


class MarketDataProvider(ABC):
    """Fetches closed 5m OHLCV candles; see the module docstring for the contract."""

    #: registry key, e.g. "synthetic", "ccxt", "nobitex", "files"
    kind: str = ""
    #: True only for generated data; stored with every record so it can never pass for real data
    synthetic: bool = False

    @property
    @abstractmethod
    def exchange(self) -> str:
        """The exchange column stored with each candle (e.g. "binance", "synthetic")."""

    @abstractmethod
    def fetch_ohlcv(
        self, symbol: str, start: pd.Timestamp, end: pd.Timestamp, *, now: pd.Timestamp | None = None
    ) -> pd.DataFrame:
        """Closed 5m candles with open time in `[start, end)`; `now` (default: wall clock, UTC) decides
        which candle is still open and must be dropped."""

    def describe(self) -> str:
        """One line for logs and asset metadata."""
        label = f"{self.kind}:{self.exchange}"
        return f"{label} (SYNTHETIC)" if self.synthetic else label
