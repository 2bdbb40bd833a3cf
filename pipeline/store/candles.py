"""Candle writes and reads: validated idempotent upserts and range reads into the engine's frame.

Writes go through the raw DBAPI connection of a SQLAlchemy transaction for speed:
- SQLite: one prepared `INSERT .. ON CONFLICT DO UPDATE` run with `executemany`.
- PostgreSQL: binary `COPY` (rows built with numpy, no per-row Python). When the target range holds no
  rows yet the COPY goes straight into `candles` (inside a savepoint; a concurrent writer that got there
  first makes it fall back); otherwise it goes into a temp table followed by `INSERT .. SELECT ..
  ON CONFLICT DO UPDATE`.
Reads use a plain cursor (SQLite) or `COPY (SELECT ..) TO STDOUT` in binary (PostgreSQL) parsed with
numpy. Open times are BIGINT epoch ms; reads cover the half-open range `[start, end)`.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from engine.schemas import CANDLE_COLUMNS, OHLCV_COLUMNS, empty_candles, timestamps_ms, validate_candles
from pipeline.store.convert import to_ms
from pipeline.store.models import BASE_TIMEFRAME

MIN_MS = -(2**62)
MAX_MS = 2**62
_VALUE_COLS = ", ".join(OHLCV_COLUMNS)
_INSERT_COLS = f"exchange, symbol, timeframe, open_time, {_VALUE_COLS}, source, synthetic, ingested_at"
_UPDATE_SET = ", ".join(
    f"{c} = excluded.{c}" for c in (*OHLCV_COLUMNS, "source", "synthetic", "ingested_at")
)
_CONFLICT = f"ON CONFLICT (exchange, symbol, timeframe, open_time) DO UPDATE SET {_UPDATE_SET}"
_RANGE_WHERE = "exchange = {p} AND symbol = {p} AND timeframe = '5m' AND open_time >= {p} AND open_time < {p}"

SQLITE_UPSERT = f"INSERT INTO candles ({_INSERT_COLS}) VALUES (?, ?, '5m', ?, ?, ?, ?, ?, ?, ?, ?, ?) {_CONFLICT}"
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

_PG_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_PG_HEADER = _PG_SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_PG_TRAILER = b"\xff\xff"
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in Unix microseconds (PostgreSQL's timestamp epoch)
_PG_READ_DTYPE = np.dtype(
    [("n", ">i2"), ("l0", ">i4"), ("t", ">i8")]
    + [item for i, c in enumerate(OHLCV_COLUMNS, 1) for item in ((f"l{i}", ">i4"), (c, ">f8"))]
)


class CandleStoreError(ValueError):
    """A candle write was refused before touching the database (e.g. a non-base timeframe)."""


def prepare(df: pd.DataFrame, symbol: str, timeframe: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate first; return (open times as int64 epoch ms, float64 OHLCV matrix n x 5)."""
    if timeframe != BASE_TIMEFRAME:
        raise CandleStoreError(
            f"only base {BASE_TIMEFRAME} candles are stored (got timeframe {timeframe!r} for {symbol!r}); "
            "higher timeframes are aggregated in memory"
        )
    valid = validate_candles(df, symbol)
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


def _write_sqlite(
    raw: Any, ms: np.ndarray, values: np.ndarray, exchange: str, symbol: str, source: str,
    synthetic: bool, ingested_at: datetime,
) -> int:
    # the same text format SQLAlchemy's SQLite DateTime type writes and parses
    stamp = ingested_at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    cols = values.T.tolist()
    rows = zip(
        repeat(exchange), repeat(symbol), ms.tolist(), *cols,
        repeat(source), repeat(1 if synthetic else 0), repeat(stamp),
    )  # fmt: skip
    cur = raw.cursor()
    try:
        cur.executemany(SQLITE_UPSERT, rows)
    finally:
        cur.close()
    return len(ms)


def _pg_rows(
    ms: np.ndarray, values: np.ndarray, fields: list[tuple[str, Any]], texts: dict[str, str],
    flags: dict[str, int], ingested_us: int | None,
) -> bytes:
    """Build a binary COPY payload; every row has the same layout, so it is one numpy record array."""
    spec: list[tuple[str, Any]] = [("n", ">i2")]
    for kind, name in fields:
        if kind == "text":
            data = texts[name].encode()
            spec.append((f"l_{name}", ">i4"))
            if data:
                spec.append((name, f"S{len(data)}"))
        else:
            spec += [(f"l_{name}", ">i4"), (name, {"int8": ">i8", "float8": ">f8", "bool": "u1"}[kind])]
    rec = np.empty(len(ms), dtype=np.dtype(spec))
    rec["n"] = len(fields)
    for kind, name in fields:
        if kind == "text":
            data = texts[name].encode()
            rec[f"l_{name}"] = len(data)
            if data:
                rec[name] = data
        elif kind == "bool":
            rec[f"l_{name}"] = 1
            rec[name] = flags[name]
        else:
            rec[f"l_{name}"] = 8
    rec["open_time"] = ms
    for i, c in enumerate(OHLCV_COLUMNS):
        rec[c] = values[:, i]
    if ingested_us is not None:
        rec["ingested_at"] = ingested_us
    return _PG_HEADER + rec.tobytes() + _PG_TRAILER


_PG_NUMERIC_FIELDS = [("int8", "open_time"), *(("float8", c) for c in OHLCV_COLUMNS)]
_PG_FULL_FIELDS = [
    ("text", "exchange"), ("text", "symbol"), ("text", "timeframe"), *_PG_NUMERIC_FIELDS,
    ("text", "source"), ("bool", "synthetic"), ("int8", "ingested_at"),
]  # fmt: skip


def _write_postgres(
    raw: Any, ms: np.ndarray, values: np.ndarray, exchange: str, symbol: str, source: str,
    synthetic: bool, ingested_at: datetime,
) -> int:
    import psycopg2.errors

    cur = raw.cursor()
    try:
        cur.execute(
            f"SELECT EXISTS (SELECT 1 FROM candles WHERE {PG_RANGE_WHERE})",
            (exchange, symbol, int(ms[0]), int(ms[-1]) + 1),
        )
        if not cur.fetchone()[0]:
            us = int(ingested_at.timestamp() * 1_000_000) - _PG_EPOCH_US
            texts = {"exchange": exchange, "symbol": symbol, "timeframe": BASE_TIMEFRAME, "source": source}
            payload = _pg_rows(ms, values, _PG_FULL_FIELDS, texts, {"synthetic": int(synthetic)}, us)
            cur.execute("SAVEPOINT crypto4h_copy")
            try:
                cur.copy_expert(
                    f"COPY candles ({_INSERT_COLS}) FROM STDIN (FORMAT binary)", io.BytesIO(payload), PG_COPY_SIZE
                )
            except psycopg2.errors.UniqueViolation:
                cur.execute("ROLLBACK TO SAVEPOINT crypto4h_copy")  # someone else wrote the range: upsert
            else:
                cur.execute("RELEASE SAVEPOINT crypto4h_copy")
                return len(ms)
        payload = _pg_rows(ms, values, _PG_NUMERIC_FIELDS, {}, {}, None)
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


def frame_from_arrays(ms: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    """Build the engine candle frame (RangeIndex, UTC open times, float64 OHLCV) from raw arrays."""
    if len(ms) == 0:
        return empty_candles()
    ts = pd.DatetimeIndex(ms.astype("datetime64[ms]").astype("datetime64[ns]")).tz_localize("UTC")
    data: dict[str, Any] = {"timestamp": ts}
    for i, c in enumerate(OHLCV_COLUMNS):
        data[c] = np.ascontiguousarray(values[:, i]) if values.ndim == 2 else values[c]
    return pd.DataFrame(data, columns=list(CANDLE_COLUMNS))


def read(conn: sa.Connection, exchange: str, symbol: str, lo: int, hi: int) -> pd.DataFrame:
    """Candles of one symbol with open time in [lo, hi) (epoch ms) as the engine frame."""
    raw = conn.connection.driver_connection
    cur = raw.cursor()
    try:
        if conn.dialect.name == "sqlite":
            rows = cur.execute(SQLITE_READ, (exchange, symbol, lo, hi)).fetchall()
            if not rows:
                return empty_candles()
            arr = np.array(rows, dtype=np.float64)  # epoch ms < 2**53 is exact in float64
            return frame_from_arrays(arr[:, 0].astype(np.int64), arr[:, 1:])
        chunks: list[bytes] = []
        sink = _ChunkSink(chunks)
        cur.copy_expert(cur.mogrify(PG_READ_COPY, (exchange, symbol, lo, hi)).decode(), sink, PG_COPY_SIZE)
        return _parse_pg_binary(b"".join(chunks))
    finally:
        cur.close()


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
    values = np.empty((n, len(OHLCV_COLUMNS)), dtype=np.float64)
    for i, c in enumerate(OHLCV_COLUMNS):
        values[:, i] = rec[c]
    return frame_from_arrays(rec["t"].astype(np.int64), values)


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
