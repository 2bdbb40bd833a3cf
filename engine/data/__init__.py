"""Market-data providers behind one interface, and a registry to build them by name.

Imports stay light: ccxt and requests are only imported when a provider that needs them is built.
"""

from __future__ import annotations

from typing import Any

from engine.data.base import (
    COVERAGE_ATTR,
    BadSymbolError,
    Coverage,
    MalformedDataError,
    MarketDataProvider,
    ProviderError,
    TimeRange,
    missing_ranges,
)
from engine.data.ccxt_provider import CcxtProvider
from engine.data.files import DATA_DIRS_ENV, FilesProvider, allowed_data_dirs, read_candle_file
from engine.data.nobitex import NobitexProvider
from engine.data.nobitex_units import PriceUnitError
from engine.data.sample import SAMPLE_DIR, load_sample_candles, sample_provider, sample_symbols
from engine.data.synthetic import SyntheticProvider

_REGISTRY: dict[str, type[MarketDataProvider]] = {
    "synthetic": SyntheticProvider,
    "files": FilesProvider,
    "ccxt": CcxtProvider,
    "nobitex": NobitexProvider,
}
PROVIDER_KINDS: tuple[str, ...] = tuple(_REGISTRY)


def make_provider(kind: str, **options: Any) -> MarketDataProvider:
    """Build a provider by kind ("synthetic", "files", "ccxt", "nobitex") with constructor options."""
    try:
        cls = _REGISTRY[kind]
    except KeyError:
        raise ValueError(
            f"unknown provider kind {kind!r}; valid kinds: {', '.join(PROVIDER_KINDS)}"
        ) from None
    return cls(**options)


__all__ = [
    "COVERAGE_ATTR",
    "DATA_DIRS_ENV",
    "PROVIDER_KINDS",
    "SAMPLE_DIR",
    "BadSymbolError",
    "CcxtProvider",
    "Coverage",
    "FilesProvider",
    "MalformedDataError",
    "MarketDataProvider",
    "NobitexProvider",
    "PriceUnitError",
    "ProviderError",
    "SyntheticProvider",
    "TimeRange",
    "allowed_data_dirs",
    "load_sample_candles",
    "make_provider",
    "missing_ranges",
    "read_candle_file",
    "sample_provider",
    "sample_symbols",
]
