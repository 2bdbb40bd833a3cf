"""Candles from local files (formats: `engine.data.file_formats`), confined to configured data folders.

Why confined: the folder comes from a universe file or a Launchpad resource config, so without a
boundary any path on the host could be read (and, through error messages, partly shown). The root and
every file it yields, after resolving symlinks and `..`, must lie inside one of the allowed folders:
`$CRYPTO4H_DATA_DIRS` (os.pathsep-separated), by default the repository's `data/` folder and the
bundled sample `engine/sample_data`.

Coverage (see `engine.data.coverage`): a file is the source's record for the span it holds, so holes
between a file's first and last candle are confirmed empty. Slots outside every file's span are
missing, and so is the part of a dated Binance archive's span (from its name, e.g. a month) that its
candles do not reach: a truncated download must not pass for complete.

Parsed files are cached per provider instance (keyed by path, size and mtime) so fetching a month one
day at a time parses each file once.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from engine.data._common import Clock, finalize_candles, resolve_now, to_ms
from engine.data.base import COVERAGE_ATTR, BadSymbolError, MarketDataProvider, ProviderError
from engine.data.coverage import build_coverage
from engine.data.file_formats import (
    DUPLICATE_POLICIES,
    SUFFIXES,
    DuplicateCandlesWarning,
    read_candle_file,
    resolve_duplicates,
    stem,
    symbol_from_path,
)
from engine.schemas import timestamps_ms
from engine.timeframes import BASE_MS

DATA_DIRS_ENV = "CRYPTO4H_DATA_DIRS"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIRS = (REPO_ROOT / "data", Path(__file__).resolve().parent.parent / "sample_data")
#: glob patterns relative to the root; {symbol} is "ETH_BTC", {pair} is "ETHBTC"
DEFAULT_PATTERNS = ("**/{symbol}-5m.*", "**/{pair}-5m.*", "**/{pair}-5m-*")
_DATED_STEM = re.compile(r"-(\d{4})-(\d{2})(?:-(\d{2}))?$")
_SYMBOL_STEM = re.compile(r"^([A-Za-z0-9_]+)-5m(?:$|-)")

__all__ = ["FilesProvider", "allowed_data_dirs", "file_symbol", "read_candle_file", "symbol_from_path"]


# -- confinement ---------------------------------------------------------------------------------------
def allowed_data_dirs() -> tuple[Path, ...]:
    """The folders the files provider may read (resolved): `$CRYPTO4H_DATA_DIRS` or the defaults."""
    raw = os.environ.get(DATA_DIRS_ENV, "")
    dirs = [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()] if raw.strip() else []
    return tuple(p.resolve() for p in (dirs or DEFAULT_DATA_DIRS))


def _inside(path: Path, dirs: Sequence[Path]) -> bool:
    return any(path == d or path.is_relative_to(d) for d in dirs)


def _not_allowed(path: Path, dirs: Sequence[Path], what: str) -> ProviderError:
    shown = ", ".join(str(d) for d in dirs)
    return ProviderError(
        f"{path}: {what} ({shown}); move the data there or add its folder to {DATA_DIRS_ENV} (folders "
        f"separated by {os.pathsep!r})"
    )


# -- names ---------------------------------------------------------------------------------------------
def file_symbol(symbol: str) -> str:
    """ "ETH/BTC" -> "ETH_BTC" (the symbol as it appears in our file names)."""
    return symbol.replace("/", "_")


def _supported(path: Path) -> bool:
    return path.is_file() and any(path.name.lower().endswith(s) for s in SUFFIXES)


def _file_span_ms(path: Path) -> tuple[int, int] | None:
    """[start, end) covered by a dated Binance archive name (monthly or daily), else None."""
    m = _DATED_STEM.search(stem(path))
    if not m:
        return None
    year, month, day = int(m.group(1)), int(m.group(2)), m.group(3)
    try:
        if day is None:
            start = pd.Timestamp(year=year, month=month, day=1, tz="UTC")
            end = start + pd.DateOffset(months=1)
        else:
            start = pd.Timestamp(year=year, month=month, day=int(day), tz="UTC")
            end = start + pd.Timedelta(days=1)
    except ValueError:
        return None
    return to_ms(start), to_ms(end)


# -- provider ------------------------------------------------------------------------------------------
class FilesProvider(MarketDataProvider):
    """Closed 5m candles from a folder of candle files (see the module docstring)."""

    kind = "files"
    synthetic = False

    def __init__(
        self,
        root: str | Path,
        exchange: str = "binance",
        pattern: str | Sequence[str] | None = None,
        clock: Clock | None = None,
        *,
        duplicates: str = "error",
    ) -> None:
        dirs = allowed_data_dirs()
        given = Path(root).expanduser()
        self.root = given.resolve()
        if not _inside(self.root, dirs):
            raise _not_allowed(given, dirs, "is not a directory under the allowed data folders")
        if not self.root.is_dir():
            raise ProviderError(f"{given}: not a directory")
        self._exchange = exchange
        patterns = DEFAULT_PATTERNS if pattern is None else pattern
        self.patterns: tuple[str, ...] = (patterns,) if isinstance(patterns, str) else tuple(patterns)
        for pat in self.patterns:
            if Path(pat).is_absolute() or ".." in Path(pat).parts:
                raise ProviderError(f"file pattern {pat!r} must be relative to the root, without '..'")
        if duplicates not in DUPLICATE_POLICIES:
            raise ProviderError(f"files option duplicates must be one of {list(DUPLICATE_POLICIES)}")
        self.duplicates = duplicates
        self._dirs = dirs
        self._clock = clock
        self._files: dict[Path, tuple[tuple[int, int], pd.DataFrame, tuple[str, ...]]] = {}
        #: number of files actually parsed (not served from the cache); handy in tests and logs
        self.parse_count = 0

    @property
    def exchange(self) -> str:
        return self._exchange

    def describe(self) -> str:
        return f"files:{self._exchange} ({self.root})"

    def symbols(self) -> list[str]:
        """Symbols with at least one supported file under the root (Binance names stay "ETHBTC")."""
        found = {
            symbol_from_path(p)
            for p in self.root.rglob("*-5m*")
            if _supported(p) and _SYMBOL_STEM.match(stem(p))
        }
        return sorted(found)

    def files_for(self, symbol: str) -> list[Path]:
        """Every supported file matching the patterns for `symbol`, sorted by path."""
        sym, pair = file_symbol(symbol), symbol.replace("/", "").replace("_", "")
        hits: set[Path] = set()
        for pat in self.patterns:
            hits.update(p for p in self.root.glob(pat.format(symbol=sym, pair=pair)) if _supported(p))
        return sorted(hits)

    def fetch_ohlcv(
        self, symbol: str, start: pd.Timestamp, end: pd.Timestamp, *, now: pd.Timestamp | None = None
    ) -> pd.DataFrame:
        start_ms, end_ms = to_ms(start), to_ms(end)
        now_ms = resolve_now(now, self._clock)
        files = self.files_for(symbol)
        if not files:
            raise BadSymbolError(
                f"no candle file for symbol {symbol!r} under {self.root} (patterns {list(self.patterns)})"
            )
        frames, confirmed, suspects, notes = [], [], [], []
        for path in files:
            span = _file_span_ms(path)
            if span is not None and (span[1] <= start_ms or span[0] >= end_ms):
                continue
            frame, file_notes = self._load(path, symbol)
            notes.extend(file_notes)
            if not len(frame):
                continue
            frames.append(frame.set_axis([path.name] * len(frame)))
            ms = timestamps_ms(frame)
            first, stop = int(ms[0]), int(ms[-1]) + BASE_MS
            confirmed.append((first, stop, f"{path.name}: no candle there in the file"))
            if span is not None:
                if span[0] < first:
                    suspects.append((span[0], first, f"{path.name} covers from {_iso(span[0])} by its name "
                                                     f"but its candles start at {_iso(first)}"))  # fmt: skip
                if stop < span[1]:
                    suspects.append((stop, span[1], f"{path.name} covers until {_iso(span[1])} by its name "
                                                   f"but its candles stop at {_iso(stop)} (truncated?)"))  # fmt: skip
        df = self._combine(frames, symbol, notes)
        df = finalize_candles(df, symbol, start_ms, end_ms, now_ms, coerce=False)
        df.attrs[COVERAGE_ATTR] = build_coverage(
            df, symbol=symbol, source=self.describe(), start_ms=start_ms, end_ms=end_ms, now_ms=now_ms,
            confirmed=confirmed, suspects=suspects, notes=notes,
        )  # fmt: skip
        return df

    def _combine(self, frames: list[pd.DataFrame], symbol: str, notes: list[str]) -> pd.DataFrame:
        """Several files of one symbol (rows labelled by file name) as one frame; overlapping candles
        follow the `duplicates` policy (exact repeats, e.g. a monthly and a daily archive, are dropped)."""
        if not frames:
            from engine.schemas import empty_candles

            return empty_candles()
        if len(frames) == 1:
            return frames[0].reset_index(drop=True)
        df = pd.concat(frames).sort_values("timestamp", kind="stable")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DuplicateCandlesWarning)
            df = resolve_duplicates(df, f"files of {symbol!r} under {self.root}", self.duplicates, "files")
        notes.extend(str(w.message) for w in caught if issubclass(w.category, DuplicateCandlesWarning))
        return df.reset_index(drop=True)

    def _load(self, path: Path, symbol: str) -> tuple[pd.DataFrame, tuple[str, ...]]:
        real = path.resolve()
        if not _inside(real, self._dirs):
            raise _not_allowed(path, self._dirs, "resolves to a file outside the allowed data folders")
        stat = real.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._files.get(real)
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DuplicateCandlesWarning)
            frame = read_candle_file(real, symbol, duplicates=self.duplicates)
        notes = tuple(str(w.message) for w in caught if issubclass(w.category, DuplicateCandlesWarning))
        for note in notes:
            warnings.warn(DuplicateCandlesWarning(note), stacklevel=2)
        self.parse_count += 1
        self._files[real] = (key, frame, notes)
        return frame, notes


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")
