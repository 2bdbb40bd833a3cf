"""The real Binance sample shipped with the package (5m candles, 2018-01-10..2018-01-30, six BTC pairs).

It lets a new user run everything offline with real data; ADA/BTC has gaps, which is useful: real data
is never complete. Files live in `engine/sample_data/` (package data), never read from outside the repo.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from engine.data.files import FilesProvider, read_candle_file, symbol_from_path

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data"
SAMPLE_EXCHANGE = "binance"


def _sample_files() -> dict[str, Path]:
    return {symbol_from_path(p): p for p in sorted(SAMPLE_DIR.glob("*-5m.csv.gz"))}


def sample_symbols() -> list[str]:
    """Symbols in the sample, e.g. ["ADA/BTC", "DASH/BTC", ...]."""
    return sorted(_sample_files())


def load_sample_candles(symbols: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Validated 5m frames keyed by symbol (all sample symbols by default)."""
    files = _sample_files()
    wanted = sample_symbols() if symbols is None else list(symbols)
    unknown = [s for s in wanted if s not in files]
    if unknown:
        raise KeyError(f"not in the sample: {unknown}; available: {sorted(files)}")
    return {s: read_candle_file(files[s], s) for s in wanted}


def sample_provider() -> FilesProvider:
    """A FilesProvider over the sample (exchange "binance")."""
    return FilesProvider(SAMPLE_DIR, exchange=SAMPLE_EXCHANGE)
