"""Candles from local files: our CSV/Parquet format and Binance public-data kline archives.

Formats
- ours: header `timestamp,open,high,low,close,volume`, integer epoch-ms timestamps, one symbol per file
  named like `ETH_BTC-5m.csv` (`.csv.gz` and `.parquet` too); symbol "ETH/BTC" <-> "ETH_BTC".
- Binance public data (data.binance.vision): `ETHBTC-5m-2018-01.zip` holding a headerless 12-column
  CSV (or that CSV unzipped). Spot files from 2025 use microsecond timestamps; older ones milliseconds.
  The unit is detected per value (>= 1e14 means microseconds) so a file mixing both still reads right.

Why errors name lines: a bad file is a user problem, so the message says which file, which line and
what is wrong. Parsed files are cached per provider instance (keyed by path, size and mtime) so
fetching a month one day at a time parses each file once.
"""

from __future__ import annotations

import gzip
import io
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from engine.data._common import Clock, finalize_candles, resolve_now, to_ms
from engine.data.base import BadSymbolError, MarketDataProvider, ProviderError
from engine.schemas import OHLCV_COLUMNS, CandleValidationError, empty_candles, validate_candles
from engine.timeframes import ms_index

SUFFIXES = (".csv", ".csv.gz", ".parquet", ".zip")
#: glob patterns relative to the root; {symbol} is "ETH_BTC", {pair} is "ETHBTC"
DEFAULT_PATTERNS = ("**/{symbol}-5m.*", "**/{pair}-5m.*", "**/{pair}-5m-*")
BINANCE_KLINE_COLUMNS = (
    "open_time", "open", "high", "low", "close", "volume", "close_time",
    "quote_volume", "count", "taker_buy_base_volume", "taker_buy_quote_volume", "ignore",
)  # fmt: skip
MICROS_THRESHOLD = 10**14  # epoch ms stays below this until the year 5138; epoch us is above since 1973
MIN_MS = 10**11  # 1973-03-03 in ms: anything smaller is not a plausible ms/us timestamp
MAX_US = 10**17  # 5138 in us
_TIME_NAMES = ("timestamp", "open_time", "time")
_DATED_STEM = re.compile(r"-(\d{4})-(\d{2})(?:-(\d{2}))?$")
_SYMBOL_STEM = re.compile(r"^([A-Za-z0-9_]+)-5m(?:$|-)")


# -- names ---------------------------------------------------------------------------------------------
def file_symbol(symbol: str) -> str:
    """ "ETH/BTC" -> "ETH_BTC" (the symbol as it appears in our file names)."""
    return symbol.replace("/", "_")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _supported(path: Path) -> bool:
    return path.is_file() and any(path.name.lower().endswith(s) for s in SUFFIXES)


def symbol_from_path(path: str | Path) -> str:
    """ "ETH_BTC-5m.csv.gz" -> "ETH/BTC"; Binance "ETHBTC-5m-2018-01.zip" -> "ETHBTC" (no separator)."""
    stem = _stem(Path(path))
    m = _SYMBOL_STEM.match(stem)
    token = m.group(1) if m else stem.split("-")[0]
    return token.replace("_", "/")


def _file_span_ms(path: Path) -> tuple[int, int] | None:
    """[start, end) covered by a dated Binance archive name (monthly or daily), else None."""
    m = _DATED_STEM.search(_stem(path))
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


# -- parsing -------------------------------------------------------------------------------------------
def _first_line(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            members = [i for i in zf.infolist() if not i.is_dir()]
            if len(members) != 1:
                raise ProviderError(
                    f"{path}: expected exactly one file in the zip archive, found "
                    f"{[m.filename for m in members]}"
                )
            with zf.open(members[0]) as fh:
                return io.TextIOWrapper(fh, encoding="utf-8").readline()
    if name.endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return fh.readline()
    with open(path, encoding="utf-8") as fh:
        return fh.readline()


def _looks_numeric(field: str) -> bool:
    try:
        float(field.strip().strip('"'))
    except ValueError:
        return False
    return True


def _read_csv(path: Path) -> pd.DataFrame:
    """Raw table with columns timestamp + OHLCV, indexed by 1-based line numbers."""
    try:
        first = _first_line(path)
    except (OSError, UnicodeDecodeError, zipfile.BadZipFile, EOFError) as exc:
        raise ProviderError(f"{path}: cannot read file ({exc})") from exc
    if not first.strip():
        raise ProviderError(f"{path}: line 1: file is empty")
    headerless = _looks_numeric(first.split(",")[0])
    try:
        raw = pd.read_csv(
            path,
            header=None if headerless else 0,
            compression="infer",
            skip_blank_lines=False,
            low_memory=False,
        )
    except (pd.errors.ParserError, ValueError, OSError, UnicodeDecodeError, EOFError) as exc:
        raise ProviderError(f"{path}: cannot parse as CSV ({str(exc).strip()})") from exc
    first_data_line = 1 if headerless else 2
    if headerless:
        if raw.shape[1] < 6:
            raise ProviderError(
                f"{path}: line 1: expected at least 6 columns (open time, open, high, low, close, "
                f"volume; Binance klines have 12), found {raw.shape[1]}"
            )
        raw = raw.iloc[:, :6]
        raw.columns = ["timestamp", *OHLCV_COLUMNS]
    else:
        raw.columns = [str(c).strip().lower() for c in raw.columns]
        time_col = next((c for c in _TIME_NAMES if c in raw.columns), None)
        missing = [c for c in OHLCV_COLUMNS if c not in raw.columns]
        if time_col is None or missing:
            need = ["timestamp", *OHLCV_COLUMNS]
            raise ProviderError(
                f"{path}: line 1: header {list(raw.columns)} lacks columns "
                f"{missing + ([] if time_col else ['timestamp'])} (need {need})"
            )
        raw = raw[[time_col, *OHLCV_COLUMNS]].rename(columns={time_col: "timestamp"})
    blank = raw.isna().all(axis=1)
    raw = raw.loc[~blank]
    raw.index = raw.index + first_data_line  # row labels are now 1-based line numbers
    return raw


def _numeric(raw: pd.DataFrame, path: Path, where: str) -> pd.DataFrame:
    """Every value numeric and present, or a ProviderError naming the first bad line and column."""
    out = {}
    for col in raw.columns:
        values = raw[col]
        num = values if pd.api.types.is_numeric_dtype(values) else pd.to_numeric(values, errors="coerce")
        bad = num.isna()
        if bad.any():
            label = bad.idxmax()
            shown = values.loc[label]
            what = "missing value" if pd.isna(shown) else f"non-numeric value {shown!r}"
            raise ProviderError(f"{path}: {where} {label}: {what} in column {col!r}")
        out[col] = num
    return pd.DataFrame(out, index=raw.index)


def _epoch_ms(ts: pd.Series, path: Path, where: str) -> np.ndarray:
    """Integer epoch ms from ms or us values, decided per value."""
    values = ts.to_numpy()
    if not np.issubdtype(values.dtype, np.integer):
        frac = values != np.floor(values)
        if frac.any():
            label = ts.index[int(np.argmax(frac))]
            raise ProviderError(f"{path}: {where} {label}: timestamp {values[frac][0]!r} is not an integer")
    ints = values.astype(np.int64)
    bad = (ints < MIN_MS) | (ints >= MAX_US)
    if bad.any():
        label = ts.index[int(np.argmax(bad))]
        raise ProviderError(
            f"{path}: {where} {label}: timestamp {ints[bad][0]} is neither epoch milliseconds nor "
            f"microseconds"
        )
    return np.where(ints >= MICROS_THRESHOLD, ints // 1000, ints)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        raw = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise ProviderError(f"{path}: cannot read as Parquet ({exc})") from exc
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    time_col = next((c for c in _TIME_NAMES if c in raw.columns), None)
    missing = [c for c in OHLCV_COLUMNS if c not in raw.columns]
    if time_col is None or missing:
        raise ProviderError(f"{path}: columns {list(raw.columns)} lack {missing or ['timestamp']}")
    raw = raw[[time_col, *OHLCV_COLUMNS]].rename(columns={time_col: "timestamp"}).reset_index(drop=True)
    ts = raw["timestamp"]
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        raw["timestamp"] = ts.dt.tz_convert("UTC").to_numpy("datetime64[ms]").astype(np.int64)
    elif pd.api.types.is_datetime64_dtype(ts):
        raise ProviderError(f"{path}: timestamp column holds naive datetimes; store UTC epoch ms")
    raw.index = raw.index + 1  # 1-based row numbers
    return raw


def read_candle_file(path: str | Path, symbol: str | None = None) -> pd.DataFrame:
    """Read one candle file (any supported format) into a validated, sorted, de-duplicated frame.

    `symbol` only labels error messages; by default it comes from the file name.
    """
    path = Path(path)
    symbol = symbol or symbol_from_path(path)
    if not path.is_file():
        raise ProviderError(f"{path}: no such file")
    if path.name.lower().endswith(".parquet"):
        raw, where, labels = _read_parquet(path), "row", "1-based row numbers"
    else:
        raw = _read_csv(path)
        where, labels = "line", "line numbers in the file"
    num = _numeric(raw, path, where)
    ms = _epoch_ms(num["timestamp"], path, where)
    df = pd.DataFrame({"timestamp": ms_index(ms)}, index=num.index)
    for col in OHLCV_COLUMNS:
        df[col] = num[col].astype("float64")
    df = df.sort_values("timestamp", kind="stable")
    df = df[~df["timestamp"].duplicated(keep="last")]
    try:
        validate_candles(df, symbol, coerce=False)
    except CandleValidationError as exc:
        raise ProviderError(f"{path}: {exc}\n(row labels above are {labels})") from exc
    return df.reset_index(drop=True)


# -- provider ------------------------------------------------------------------------------------------
class FilesProvider(MarketDataProvider):
    """Closed 5m candles from a folder of candle files (see module docstring for formats)."""

    kind = "files"
    synthetic = False

    def __init__(
        self,
        root: str | Path,
        exchange: str = "binance",
        pattern: str | Sequence[str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ProviderError(f"{self.root}: not a directory")
        self._exchange = exchange
        patterns = DEFAULT_PATTERNS if pattern is None else pattern
        self.patterns: tuple[str, ...] = (patterns,) if isinstance(patterns, str) else tuple(patterns)
        self._clock = clock
        self._files: dict[Path, tuple[tuple[int, int], pd.DataFrame]] = {}
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
            if _supported(p) and _SYMBOL_STEM.match(_stem(p))
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
        frames = []
        for path in files:
            span = _file_span_ms(path)
            if span is not None and (span[1] <= start_ms or span[0] >= end_ms):
                continue
            frame = self._load(path, symbol)
            if len(frame):
                frames.append(frame)
        if not frames:
            return empty_candles()
        df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        return finalize_candles(df, symbol, start_ms, end_ms, now_ms, coerce=False)

    def _load(self, path: Path, symbol: str) -> pd.DataFrame:
        stat = path.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._files.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        frame = read_candle_file(path, symbol)
        self.parse_count += 1
        self._files[path] = (key, frame)
        return frame
