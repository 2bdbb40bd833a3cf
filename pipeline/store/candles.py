"""Candle writes and reads: validated idempotent upserts and range reads into the engine's frame.

Writes validate first, then go through the raw DBAPI connection of the caller's SQLAlchemy transaction:
- SQLite: `INSERT .. SELECT .. FROM (VALUES ..) ON CONFLICT DO UPDATE` with up to 2000 candles per
  statement (constants bound once, 6 numbers per candle) - faster than `executemany`.
- PostgreSQL: small increments (<= 1000 rows) are one `INSERT .. SELECT FROM unnest(arrays) ON CONFLICT`.
  Bulk loads use binary `COPY` built with numpy (no per-row Python): straight into `candles` when the
  target range is empty (inside a savepoint; if a concurrent writer got there first it falls back), else
  into a temp table followed by `INSERT .. SELECT .. ON CONFLICT DO UPDATE`.
An upsert rewrites a row only when a value, the source or the synthetic flag changed (`ingested_at` is
the time of the last real change). Reads: a streamed sqlite3 cursor (SQLite) or binary
`COPY (SELECT ..) TO STDOUT` parsed with numpy (PostgreSQL; universe reads use parallel connections
sharing one exported snapshot). Open times are BIGINT epoch ms; reads cover `[start, end)`.
"""

from __future__ import annotations

import io
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from engine import schemas
from engine.schemas import CANDLE_COLUMNS, OHLCV_COLUMNS, empty_candles, timestamps_ms, validate_candles
from pipeline.store.convert import to_ms
from pipeline.store.models import BASE_TIMEFRAME

MIN_MS = -(2**62)
MAX_MS = 2**62
_VALUE_COLS = ", ".join(OHLCV_COLUMNS)
_INSERT_COLS = f"exchange, symbol, timeframe, open_time, {_VALUE_COLS}, source, synthetic, ingested_at"
_UPDATE_SET = ", ".join(f"{c} = excluded.{c}" for c in (*OHLCV_COLUMNS, "source", "synthetic", "ingested_at"))
_CHANGED = ", ".join((*OHLCV_COLUMNS, "source", "synthetic"))
_CONFLICT = (
    f"ON CONFLICT (exchange, symbol, timeframe, open_time) DO UPDATE SET {_UPDATE_SET} "
    f"WHERE ({', '.join(f'candles.{c}' for c in _CHANGED.split(', '))}) "
    f"<> ({', '.join(f'excluded.{c}' for c in _CHANGED.split(', '))})"
)  # rows whose values did not change are left alone (no rewrite, ingested_at kept)
_RANGE_WHERE = "exchange = {p} AND symbol = {p} AND timeframe = '5m' AND open_time >= {p} AND open_time < {p}"

SQLITE_ROWS_PER_STATEMENT = 2000
SQLITE_READ = (
    f"SELECT open_time, {_VALUE_COLS} FROM candles WHERE {_RANGE_WHERE.format(p='?')} ORDER BY open_time"
)
PG_RANGE_WHERE = _RANGE_WHERE.format(p="%s")
PG_READ_COPY = (
    f"COPY (SELECT open_time, {_VALUE_COLS} FROM candles WHERE {PG_RANGE_WHERE} ORDER BY open_time) "
    "TO STDOUT (FORMAT binary)"
)
PG_TEMP = "_crypto4h_candles_in"
PG_COPY_SIZE = 1 << 22
PG_SMALL_ROWS = 1000

_PG_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_PG_HEADER = _PG_SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_PG_TRAILER = b"\xff\xff"
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # PostgreSQL's timestamp epoch
_PG_READ_DTYPE = np.dtype(
    [("n", ">i2"), ("l0", ">i4"), ("t", ">i8")]
    + [item for i, c in enumerate(OHLCV_COLUMNS, 1) for item in ((f"l{i}", ">i4"), (c, ">f8"))]
)


class CandleStoreError(ValueError):
    """A candle write was refused before touching the database (e.g. a non-base timeframe)."""


def validated(df: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """The engine's validation, with its numpy fast path when the engine provides one.

    `engine.schemas.candles_look_valid` answers yes/no ~10x faster than pandera (the engine keeps the two
    in agreement with a property test); any "no" (or an unusual frame) goes through `validate_candles`,
    which coerces dtypes and raises `CandleValidationError` naming the symbol, rule and rows.
    """
    fast = getattr(schemas, "candles_look_valid", None)
    if (
        fast is not None
        and isinstance(df, pd.DataFrame)
        and all(c in df.columns for c in CANDLE_COLUMNS)
        and fast(df)
    ):
        return df
    return validate_candles(df, symbol)


def prepare(df: pd.DataFrame, symbol: str, timeframe: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate first; return (open times as int64 epoch ms, float64 OHLCV matrix n x 5)."""
    if timeframe != BASE_TIMEFRAME:
        raise CandleStoreError(
            f"only base {BASE_TIMEFRAME} candles are stored (got timeframe {timeframe!r} for {symbol!r}); "
            "higher timeframes are aggregated in memory"
        )
    valid = validated(df, symbol)
    ms = timestamps_ms(valid)
    values = np.ascontiguousarray(valid.loc[:, list(OHLCV_COLUMNS)].to_numpy(dtype=np.float64))
    return ms, values


def check_key(exchange: str, symbol: str, source: str) -> None:
    """Refuse empty identifiers (they would make unreadable keys)."""
    for name, value in (("exchange", exchange), ("symbol", symbol), ("source", source)):
        if not isinstance(value, str) or not value:
            raise CandleStoreError(f"{name} must be a non-empty string, got {value!r}")


def write(
    conn: sa.Connection,
    ms: np.ndarray,
    values: np.ndarray,
    *,
    exchange: str,
    symbol: str,
    source: str,
    synthetic: bool,
    ingested_at: datetime | None = None,
) -> int:
    """Upsert prepared candles inside the caller's transaction; return the row count."""
    if len(ms) == 0:
        return 0
    ingested_at = ingested_at or datetime.now(UTC)
    raw = conn.connection.driver_connection
    if conn.dialect.name == "sqlite":
        return _write_sqlite(raw, ms, values, exchange, symbol, source, synthetic, ingested_at)
    return _write_postgres(raw, ms, values, exchange, symbol, source, synthetic, ingested_at)


def _sqlite_upsert_sql(k: int) -> str:
    """INSERT .. SELECT over a k-row VALUES list: constants bound once, 6 numbers per candle."""
    values = ",".join(["(?,?,?,?,?,?)"] * k)
    return (
        f"INSERT INTO candles ({_INSERT_COLS}) SELECT ?, ?, '5m', column1, column2, column3, column4, "
        f"column5, column6, ?, ?, ? FROM (VALUES {values}) WHERE true {_CONFLICT}"
    )


def _write_sqlite(
    raw: Any,
    ms: np.ndarray,
    values: np.ndarray,
    exchange: str,
    symbol: str,
    source: str,
    synthetic: bool,
    ingested_at: datetime,
) -> int:
    # the same text format SQLAlchemy's SQLite DateTime type writes and parses
    stamp = ingested_at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    head: list[Any] = [exchange, symbol, source, 1 if synthetic else 0, stamp]
    flat = list(chain.from_iterable(zip(ms.tolist(), *values.T.tolist(), strict=True)))
    per = min(
        SQLITE_ROWS_PER_STATEMENT, (raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - len(head)) // 6
    )
    n = len(ms)
    full = _sqlite_upsert_sql(per) if n >= per else ""
    cur = raw.cursor()
    try:
        for i in range(0, n, per):
            k = min(per, n - i)
            cur.execute(full if k == per else _sqlite_upsert_sql(k), head + flat[i * 6 : (i + k) * 6])
    finally:
        cur.close()
    return n


def _pg_rows(
    ms: np.ndarray, values: np.ndarray, fields: list[tuple[str, str]], consts: dict[str, Any]
) -> bytes:
    """Build a binary COPY payload. Every row has the same layout (text values are constant per call),
    so the rows are one numpy record array: a constant prototype row, then the varying columns."""
    spec: list[tuple[str, Any]] = [("n", ">i2")]
    proto_values: dict[str, Any] = {"n": len(fields)}
    for kind, name in fields:
        if kind == "text":
            data = str(consts[name]).encode()
            spec.append((f"l_{name}", ">i4"))
            proto_values[f"l_{name}"] = len(data)
            if data:
                spec.append((name, f"S{len(data)}"))
                proto_values[name] = data
        else:
            size, code = {"int8": (8, ">i8"), "float8": (8, ">f8"), "bool": (1, "u1")}[kind]
            spec += [(f"l_{name}", ">i4"), (name, code)]
            proto_values[f"l_{name}"] = size
            if name in consts:
                proto_values[name] = consts[name]
    dtype = np.dtype(spec)
    proto = np.zeros((), dtype=dtype)
    for key, value in proto_values.items():
        proto[key] = value
    rec = np.empty(len(ms), dtype=dtype)
    rec[...] = proto
    rec["open_time"] = ms
    for i, c in enumerate(OHLCV_COLUMNS):
        rec[c] = values[:, i]
    return _PG_HEADER + rec.tobytes() + _PG_TRAILER


_PG_NUMERIC_FIELDS = [("int8", "open_time"), *(("float8", c) for c in OHLCV_COLUMNS)]
_PG_FULL_FIELDS = [
    ("text", "exchange"), ("text", "symbol"), ("text", "timeframe"), *_PG_NUMERIC_FIELDS,
    ("text", "source"), ("bool", "synthetic"), ("int8", "ingested_at"),
]  # fmt: skip


def _write_postgres(
    raw: Any,
    ms: np.ndarray,
    values: np.ndarray,
    exchange: str,
    symbol: str,
    source: str,
    synthetic: bool,
    ingested_at: datetime,
) -> int:
    import psycopg2.errors

    cur = raw.cursor()
    try:
        if len(ms) <= PG_SMALL_ROWS:  # increments: one statement, no COPY round trips
            cur.execute(
                f"INSERT INTO candles ({_INSERT_COLS}) SELECT %s, %s, '5m', t.*, %s, %s, %s FROM unnest("
                "%s::bigint[], %s::float8[], %s::float8[], %s::float8[], %s::float8[], %s::float8[]) "
                f"AS t(open_time, {_VALUE_COLS}) {_CONFLICT}",
                (exchange, symbol, source, bool(synthetic), ingested_at, ms.tolist(), *values.T.tolist()),
            )
            return len(ms)
        cur.execute(
            f"SELECT EXISTS (SELECT 1 FROM candles WHERE {PG_RANGE_WHERE})",
            (exchange, symbol, int(ms[0]), int(ms[-1]) + 1),
        )
        if not cur.fetchone()[0]:
            us = (ingested_at - _PG_EPOCH) // timedelta(microseconds=1)
            consts = {
                "exchange": exchange, "symbol": symbol, "timeframe": BASE_TIMEFRAME, "source": source,
                "synthetic": int(bool(synthetic)), "ingested_at": us,
            }  # fmt: skip
            payload = _pg_rows(ms, values, _PG_FULL_FIELDS, consts)
            cur.execute("SAVEPOINT crypto4h_copy")
            try:
                cur.copy_expert(
                    f"COPY candles ({_INSERT_COLS}) FROM STDIN (FORMAT binary)",
                    io.BytesIO(payload),
                    PG_COPY_SIZE,
                )
            except psycopg2.errors.UniqueViolation:
                cur.execute("ROLLBACK TO SAVEPOINT crypto4h_copy")  # someone else wrote the range: upsert
            else:
                cur.execute("RELEASE SAVEPOINT crypto4h_copy")
                return len(ms)
        payload = _pg_rows(ms, values, _PG_NUMERIC_FIELDS, {})
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {PG_TEMP} (open_time bigint, open float8, high float8, "
            "low float8, close float8, volume float8) ON COMMIT DROP"
        )
        cur.execute(f"TRUNCATE {PG_TEMP}")
        cur.copy_expert(f"COPY {PG_TEMP} FROM STDIN (FORMAT binary)", io.BytesIO(payload), PG_COPY_SIZE)
        cur.execute(
            f"INSERT INTO candles ({_INSERT_COLS}) SELECT %s, %s, '5m', open_time, {_VALUE_COLS}, %s, %s, %s "
            f"FROM {PG_TEMP} {_CONFLICT}",
            (exchange, symbol, source, bool(synthetic), ingested_at),
        )
        return len(ms)
    finally:
        cur.close()


def bounds(start: Any = None, end: Any = None) -> tuple[int, int]:
    """Query bounds as epoch ms for the half-open range [start, end) (None = unbounded)."""
    lo, hi = to_ms(start), to_ms(end)
    return (MIN_MS if lo is None else lo), (MAX_MS if hi is None else hi)


def frame_from_arrays(ms: np.ndarray, block: np.ndarray) -> pd.DataFrame:
    """Build the engine candle frame (RangeIndex, UTC open times, float64 OHLCV) from raw arrays.

    `block` is the (5, n) float64 array pandas keeps internally, so every column ends up a contiguous
    float64 array (what TA-Lib wants) without further copies.
    """
    if len(ms) == 0:
        return empty_candles()
    block = np.ascontiguousarray(block, dtype=np.float64)
    df = pd.DataFrame(block.T, columns=list(OHLCV_COLUMNS), copy=False)
    ts = pd.DatetimeIndex(ms.astype("datetime64[ms]").astype("datetime64[ns]")).tz_localize("UTC")
    df.insert(0, "timestamp", ts)
    return df


def read_sqlite(cur: Any, exchange: str, symbol: str, lo: int, hi: int) -> pd.DataFrame:
    """One symbol from a sqlite3 cursor: rows stream into one float64 buffer (no list of tuples)."""
    # epoch ms < 2**53, so the float64 round trip of open_time is exact
    flat = np.fromiter(chain.from_iterable(cur.execute(SQLITE_READ, (exchange, symbol, lo, hi))), np.float64)
    if not len(flat):
        return empty_candles()
    arr = flat.reshape(-1, 6)
    return frame_from_arrays(arr[:, 0].astype(np.int64), arr[:, 1:].T)


def read_postgres(cur: Any, exchange: str, symbol: str, lo: int, hi: int) -> pd.DataFrame:
    """One symbol from a psycopg2 cursor: binary COPY TO STDOUT parsed with numpy."""
    chunks: list[bytes] = []
    cur.copy_expert(
        cur.mogrify(PG_READ_COPY, (exchange, symbol, lo, hi)).decode(), _ChunkSink(chunks), PG_COPY_SIZE
    )
    return _parse_pg_binary(b"".join(chunks))


def read(conn: sa.Connection, exchange: str, symbol: str, lo: int, hi: int) -> pd.DataFrame:
    """Candles of one symbol with open time in [lo, hi) (epoch ms) as the engine frame."""
    cur = conn.connection.driver_connection.cursor()
    try:
        reader = read_sqlite if conn.dialect.name == "sqlite" else read_postgres
        return reader(cur, exchange, symbol, lo, hi)
    finally:
        cur.close()


def read_universe_postgres(
    engine: sa.Engine, exchange: str, symbols: list[str], lo: int, hi: int, workers: int
) -> dict[str, pd.DataFrame]:
    """Read many symbols as of ONE snapshot, over `workers` connections.

    The leader opens a REPEATABLE READ transaction and exports its snapshot; helper threads import it
    (`SET TRANSACTION SNAPSHOT`), so every symbol is read as of the same instant. psycopg2 releases the
    GIL while the server streams COPY data, so the server backends work in parallel.
    """
    todo = list(symbols)
    lock = threading.Lock()
    out: dict[str, pd.DataFrame] = {}

    def drain(cur: Any) -> None:
        while True:
            with lock:
                if not todo:
                    return
                symbol = todo.pop(0)
            out[symbol] = read_postgres(cur, exchange, symbol, lo, hi)

    def helper(snapshot: str) -> None:
        with _manual_transaction(engine) as cur:
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
            drain(cur)

    with _manual_transaction(engine) as cur:
        cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cur.execute("SELECT pg_export_snapshot()")
        snapshot = cur.fetchone()[0]
        if workers <= 1:
            drain(cur)
        else:
            with ThreadPoolExecutor(max_workers=workers - 1, thread_name_prefix="store-read") as pool:
                futures = [pool.submit(helper, snapshot) for _ in range(workers - 1)]
                try:
                    drain(cur)
                except BaseException:
                    with lock:
                        todo.clear()  # stop the helpers early
                    raise
                finally:
                    for f in futures:
                        f.result()  # re-raises a helper's error (after every helper has finished)
    return {s: out[s] for s in symbols}


@contextmanager
def _manual_transaction(engine: sa.Engine) -> Iterator[Any]:
    """A pooled psycopg2 connection in autocommit mode (we issue BEGIN/COMMIT), restored afterwards."""
    proxy = engine.raw_connection()
    raw = proxy.driver_connection
    try:
        raw.rollback()  # end anything a pool ping may have started
        raw.autocommit = True
        cur = raw.cursor()
        try:
            yield cur
            cur.execute("COMMIT")
        except BaseException:
            if not raw.closed:
                with suppress(Exception):  # keep the original error
                    cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()
    finally:
        if not raw.closed:
            raw.autocommit = False
        proxy.close()


class _ChunkSink:
    """A write-only file object collecting COPY TO output without copying it twice."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.write = chunks.append


def _parse_pg_binary(buf: bytes) -> pd.DataFrame:
    if not buf.startswith(_PG_SIGNATURE):
        raise RuntimeError("unexpected COPY output (not PGCOPY binary)")
    ext = int.from_bytes(buf[15:19], "big")
    start = 19 + ext
    n = (len(buf) - start - len(_PG_TRAILER)) // _PG_READ_DTYPE.itemsize
    if n <= 0:
        return empty_candles()
    rec = np.frombuffer(buf, dtype=_PG_READ_DTYPE, count=n, offset=start)
    if (rec["n"] != 6).any() or (rec["l1"] != 8).any():  # NOT NULL columns: fixed-width rows
        raise RuntimeError("unexpected COPY row layout")
    block = np.empty((len(OHLCV_COLUMNS), n), dtype=np.float64)
    for i, c in enumerate(OHLCV_COLUMNS):
        block[i] = rec[c]
    return frame_from_arrays(rec["t"].astype(np.int64), block)


def summary(conn: sa.Connection, exchange: str, symbol: str, lo: int, hi: int) -> dict[str, Any]:
    """Row count, first and last open time (UTC Timestamps or None) and synthetic row count."""
    row = conn.execute(
        sa.text(
            "SELECT count(*), min(open_time), max(open_time), "
            "coalesce(sum(CASE WHEN synthetic THEN 1 ELSE 0 END), 0) FROM candles "
            "WHERE exchange = :e AND symbol = :s AND timeframe = '5m' AND open_time >= :lo AND open_time < :hi"
        ),
        {"e": exchange, "s": symbol, "lo": lo, "hi": hi},
    ).one()
    count, first, last, n_synth = row

    def ts(v: int | None) -> pd.Timestamp | None:
        return None if v is None else pd.Timestamp(int(v), unit="ms", tz="UTC")

    return {"rows": int(count), "first": ts(first), "last": ts(last), "synthetic_rows": int(n_synth)}
