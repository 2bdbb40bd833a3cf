"""Reading one candle file: our CSV/Parquet format and Binance public-data kline archives.

Formats
- ours: header `timestamp,open,high,low,close,volume`, integer epoch-ms timestamps, one symbol per file
  named like `ETH_BTC-5m.csv` (`.csv.gz` and `.parquet` too); symbol "ETH/BTC" <-> "ETH_BTC".
- Binance public data (data.binance.vision): `ETHBTC-5m-2018-01.zip` holding a headerless 12-column
  CSV (or that CSV unzipped). Spot files from 2025 use microsecond timestamps; older ones milliseconds.
  The unit is detected per value (>= 1e14 means microseconds) so a file mixing both still reads right.

Errors are `MalformedDataError`s that name the file, the line (or Parquet row) and what is wrong. They
never echo the file's text (a misconfigured path can point at any file; its first line may be a
secret): a bad value is described by its column and line, not shown.

Duplicates: rows repeating an open time with the same values are dropped. Rows repeating an open
time with *different* values are an error naming the lines (`duplicates="error"`, the default), or,
with `duplicates="last"`, the later line wins and a `DuplicateCandlesWarning` names the lines.
"""

from __future__ import annotations

import gzip
import io
import re
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from engine.data.base import MalformedDataError, ProviderError
from engine.schemas import OHLCV_COLUMNS, CandleValidationError, validate_candles
from engine.timeframes import ms_index

SUFFIXES = (".csv", ".csv.gz", ".parquet", ".zip")
DUPLICATE_POLICIES = ("error", "last")
MICROS_THRESHOLD = 10**14  # epoch ms stays below this until the year 5138; epoch us is above since 1973
MIN_MS = 10**11  # 1973-03-03 in ms: anything smaller is not a plausible ms/us timestamp
MAX_US = 10**17  # 5138 in us
MAX_LINES_SHOWN = 5
_TIME_NAMES = ("timestamp", "open_time", "time")
_SYMBOL_STEM = re.compile(r"^([A-Za-z0-9_]+)-5m(?:$|-)")
_READ_ERRORS = (OSError, EOFError, UnicodeDecodeError, zipfile.BadZipFile, zlib.error, ValueError)


class DuplicateCandlesWarning(UserWarning):
    """A file repeats an open time with different values and the later line was kept."""


def stem(path: Path) -> str:
    """File name without its candle-file suffix ("ETH_BTC-5m.csv.gz" -> "ETH_BTC-5m")."""
    name = path.name
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def symbol_from_path(path: str | Path) -> str:
    """ "ETH_BTC-5m.csv.gz" -> "ETH/BTC"; Binance "ETHBTC-5m-2018-01.zip" -> "ETHBTC" (no separator)."""
    s = stem(Path(path))
    m = _SYMBOL_STEM.match(s)
    token = m.group(1) if m else s.split("-")[0]
    return token.replace("_", "/")


def _read_error(path: Path, exc: BaseException, what: str) -> MalformedDataError:
    """A read failure named by file and exception type; the pandas tokenizer message (line numbers and
    field counts, no content) is the only library text passed through."""
    detail = type(exc).__name__
    if isinstance(exc, pd.errors.ParserError):
        detail = " ".join(str(exc).split())[:200]
    elif isinstance(exc, zipfile.BadZipFile | zlib.error | EOFError | gzip.BadGzipFile):
        detail = f"{type(exc).__name__}: the archive is corrupt or truncated; download it again"
    elif isinstance(exc, UnicodeDecodeError):
        detail = "the file is not UTF-8 text"
    return MalformedDataError(f"{path}: cannot {what} ({detail})")


# -- parsing -------------------------------------------------------------------------------------------
def _first_line(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            members = [i for i in zf.infolist() if not i.is_dir()]
            if len(members) != 1:
                raise MalformedDataError(
                    f"{path}: expected exactly one file in the zip archive, found {len(members)}"
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
    except ProviderError:
        raise
    except _READ_ERRORS as exc:
        raise _read_error(path, exc, "read file") from None
    if not first.strip():
        raise MalformedDataError(f"{path}: line 1: file is empty")
    headerless = _looks_numeric(first.split(",")[0])
    try:
        raw = pd.read_csv(
            path, header=None if headerless else 0, compression="infer", skip_blank_lines=False,
            low_memory=False,
        )  # fmt: skip
    except _READ_ERRORS as exc:
        raise _read_error(path, exc, "parse as CSV") from None
    first_data_line = 1 if headerless else 2
    if headerless:
        if raw.shape[1] < 6:
            raise MalformedDataError(
                f"{path}: line 1: expected at least 6 columns (open time, open, high, low, close, "
                f"volume; Binance klines have 12), found {raw.shape[1]}"
            )
        raw = raw.iloc[:, :6]
        raw.columns = ["timestamp", *OHLCV_COLUMNS]
    else:
        raw.columns = [str(c).strip().lower() for c in raw.columns]
        raw = _pick_columns(raw, path, "line 1: header")
    blank = raw.isna().all(axis=1)
    raw = raw.loc[~blank]
    raw.index = raw.index + first_data_line  # row labels are now 1-based line numbers
    return raw


def _pick_columns(raw: pd.DataFrame, path: Path, where: str) -> pd.DataFrame:
    """timestamp (or open_time/time) + OHLCV, or an error listing what is missing (not what is there)."""
    time_col = next((c for c in _TIME_NAMES if c in raw.columns), None)
    missing = [c for c in OHLCV_COLUMNS if c not in raw.columns] + ([] if time_col else ["timestamp"])
    if missing:
        need = ["timestamp", *OHLCV_COLUMNS]
        raise MalformedDataError(
            f"{path}: {where} of {raw.shape[1]} columns lacks columns {missing} (need {need})"
        )
    return raw[[time_col, *OHLCV_COLUMNS]].rename(columns={time_col: "timestamp"})


def _numeric(raw: pd.DataFrame, path: Path, where: str) -> pd.DataFrame:
    """Every value numeric and present, or an error naming the first bad line and column."""
    out = {}
    for col in raw.columns:
        values = raw[col]
        num = values if pd.api.types.is_numeric_dtype(values) else pd.to_numeric(values, errors="coerce")
        bad = num.isna()
        if bad.any():
            label = bad.idxmax()
            what = "missing value" if pd.isna(values.loc[label]) else "value that is not a number"
            raise MalformedDataError(f"{path}: {where} {label}: {what} in column {col!r}")
        out[col] = num
    return pd.DataFrame(out, index=raw.index)


def _epoch_ms(ts: pd.Series, path: Path, where: str) -> np.ndarray:
    """Integer epoch ms from ms or us values, decided per value."""
    values = ts.to_numpy()
    if not np.issubdtype(values.dtype, np.integer):
        frac = values != np.floor(values)
        if frac.any():
            label = ts.index[int(np.argmax(frac))]
            raise MalformedDataError(f"{path}: {where} {label}: timestamp is not a whole number")
    ints = values.astype(np.int64)
    bad = (ints < MIN_MS) | (ints >= MAX_US)
    if bad.any():
        label = ts.index[int(np.argmax(bad))]
        raise MalformedDataError(
            f"{path}: {where} {label}: timestamp {ints[bad][0]} is neither epoch milliseconds nor "
            f"microseconds"
        )
    return np.where(ints >= MICROS_THRESHOLD, ints // 1000, ints)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        raw = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise MalformedDataError(f"{path}: cannot read as Parquet ({type(exc).__name__})") from None
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    raw = _pick_columns(raw, path, "the table").reset_index(drop=True)
    ts = raw["timestamp"]
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        raw["timestamp"] = ts.dt.tz_convert("UTC").to_numpy("datetime64[ms]").astype(np.int64)
    elif pd.api.types.is_datetime64_dtype(ts):
        raise MalformedDataError(f"{path}: timestamp column holds naive datetimes; store UTC epoch ms")
    raw.index = raw.index + 1  # 1-based row numbers
    return raw


def _lines(labels: list) -> str:
    shown = ", ".join(str(x) for x in labels[:MAX_LINES_SHOWN])
    return shown + (f" and {len(labels) - MAX_LINES_SHOWN} more" if len(labels) > MAX_LINES_SHOWN else "")


def resolve_duplicates(df: pd.DataFrame, where: str, duplicates: str, what: str = "lines") -> pd.DataFrame:
    """Drop exact repeats of an open time; conflicting repeats raise (or, with "last", keep the later
    row and warn). `df` is sorted by time (stable), its index labels name the rows (`what`)."""
    if duplicates not in DUPLICATE_POLICIES:
        raise ProviderError(f"duplicates must be one of {list(DUPLICATE_POLICIES)}, got {duplicates!r}")
    dup = df["timestamp"].duplicated(keep=False)
    if not dup.any():
        return df
    groups = df.loc[dup].groupby("timestamp", sort=True)
    conflicts = [(ts, list(g.index)) for ts, g in groups if len(g.drop_duplicates(list(OHLCV_COLUMNS))) > 1]
    if conflicts:
        detail = "; ".join(f"{what} {_lines(rows)} at {ts.isoformat()}" for ts, rows in conflicts[:3])
        more = f" (and {len(conflicts) - 3} more open times)" if len(conflicts) > 3 else ""
        msg = f"{where}: {len(conflicts)} open time(s) appear more than once with different values: {detail}{more}"
        if duplicates == "error":
            raise MalformedDataError(
                msg + "; remove the wrong rows, or set duplicates: last to keep the later"
            )
        warnings.warn(DuplicateCandlesWarning(msg + "; kept the later row"), stacklevel=3)
    return df[~df["timestamp"].duplicated(keep="last")]


def read_candle_file(
    path: str | Path, symbol: str | None = None, *, duplicates: str = "error"
) -> pd.DataFrame:
    """Read one candle file (any supported format) into a validated, sorted, de-duplicated frame.

    `symbol` only labels error messages; by default it comes from the file name. See the module
    docstring for `duplicates`. This function reads any path it is given; `FilesProvider` is the
    confined entry point for configured sources.
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
    df = resolve_duplicates(df, str(path), duplicates, what=f"{where}s")
    try:
        validate_candles(df, symbol, coerce=False)
    except CandleValidationError as exc:
        raise MalformedDataError(f"{path}: {exc}\n(row labels above are {labels})") from None
    return df.reset_index(drop=True)
