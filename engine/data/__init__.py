"""Market-data providers behind one interface, and a registry to build them by name.

Imports stay light: ccxt and requests are only imported when a provider that needs them is built.
"""

from __future__ import annotations

from typing import Any

from engine.data.base import BadSymbolError, MarketDataProvider, ProviderError
from engine.data.ccxt_provider import CcxtProvider
from engine.data.files import FilesProvider, read_candle_file
from engine.data.nobitex import NobitexProvider
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
    "PROVIDER_KINDS",
    "SAMPLE_DIR",
    "BadSymbolError",
    "CcxtProvider",
    "FilesProvider",
    "MarketDataProvider",
    "NobitexProvider",
    "ProviderError",
    "SyntheticProvider",
    "load_sample_candles",
    "make_provider",
    "read_candle_file",
    "sample_provider",
    "sample_symbols",
]
