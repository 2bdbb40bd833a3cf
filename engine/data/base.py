"""The one interface every market-data source implements.

A provider returns *closed* 5m candles for one symbol and a half-open open-time range `[start, end)`,
de-duplicated, sorted and validated against the engine's candle schema. Anything that talks to the
outside world lives behind this interface so the rest of the engine stays pure.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import pandas as pd

from engine.data.coverage import Coverage, TimeRange, missing_ranges, reconcile

COVERAGE_ATTR = "coverage"


class ProviderError(RuntimeError):
    """A data source failed in a way the user must act on (bad symbol, exhausted retries, bad file)."""


class BadSymbolError(ProviderError):
    """The source does not know the symbol; never retried."""


class MalformedDataError(ProviderError, ValueError):
    """The source answered, but with data that breaks the contract (a malformed page, high < low, a
    corrupt file, conflicting duplicates). The message names the source, the symbol and the page or
    file line; it never echoes raw file text."""


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

    def fetch_with_coverage(
        self, symbol: str, start: pd.Timestamp, end: pd.Timestamp, *, now: pd.Timestamp | None = None
    ) -> tuple[pd.DataFrame, Coverage]:
        """`fetch_ohlcv` plus its coverage report (see `engine.data.coverage`).

        The report's missing slots are always re-derived from the returned frame; the provider's own
        report (`df.attrs["coverage"]`) only contributes evidence (confirmed-empty ranges, reasons,
        notes). A provider that attaches none gets every hole reported as missing.
        """
        now_ts = now if now is not None else self._now()
        df = self.fetch_ohlcv(symbol, start, end, now=now_ts)
        own = df.attrs.get(COVERAGE_ATTR)
        if not isinstance(own, Coverage) or own.symbol != symbol:
            own = None
        coverage = reconcile(df, own, symbol=symbol, source=self.describe(), start=start, end=end, now=now_ts)
        df.attrs[COVERAGE_ATTR] = coverage
        return df, coverage

    def _now(self) -> pd.Timestamp:
        """The provider's clock (an injected `_clock` if it has one), else the wall clock."""
        clock = getattr(self, "_clock", None)
        return clock() if clock is not None else pd.Timestamp.now(tz="UTC")

    def describe(self) -> str:
        """One line for logs and asset metadata."""
        label = f"{self.kind}:{self.exchange}"
        return f"{label} (SYNTHETIC)" if self.synthetic else label


__all__ = [
    "COVERAGE_ATTR",
    "BadSymbolError",
    "Coverage",
    "MalformedDataError",
    "MarketDataProvider",
    "ProviderError",
    "TimeRange",
    "missing_ranges",
]
