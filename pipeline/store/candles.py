"""Candle writes and reads: validated idempotent upserts and range reads into the engine's frame.

Schema (see `models`): `candle_series` numbers each (exchange, symbol, timeframe) once; `candles` is keyed
by (series_id, open_time). The first write of a series creates its `candle_series` row in the same
transaction as its candles.

Writes validate first, then go through the raw DBAPI connection of the caller's SQLAlchemy transaction:
- SQLite: `INSERT .. SELECT .. FROM (VALUES ..) ON CONFLICT DO UPDATE` with up to 2000 candles per
  statement (constants bound once, 6 numbers per candle) - faster than `executemany`.
- PostgreSQL (`candles` is LIST-partitioned by series, one partition per series):
  - a series' first write builds its partition: `CREATE TABLE candles_s<id> (LIKE candles)` with the
    per-batch constants as column defaults, binary `COPY .. (FORMAT binary)` of just the open
    time and OHLCV (built with numpy, no per-row Python), then the primary key is built in one sorted
    pass and the table is attached (`ATTACH PARTITION`, validated by its CHECK constraint, no scan).
    Building an index after the load costs about a third of maintaining it row by row;
  - small increments (<= 1000 rows) are one `INSERT .. SELECT FROM unnest(arrays) ON CONFLICT`;
  - larger writes use binary `COPY`: straight into `candles` when the target range is empty (inside a
    savepoint; if a concurrent writer got there first it falls back), else into a temp table followed
    by `INSERT .. SELECT .. ON CONFLICT DO UPDATE`.
An upsert rewrites a row only when a value, the source or the synthetic flag changed (`ingested_at` is
the time of the last real change). Reads: a streamed sqlite3 cursor (SQLite) or, on PostgreSQL, one
`COPY (SELECT string_agg(int8send(open_time) || float8send(open) || ..)) TO STDOUT (FORMAT binary)` per
page of up to a million candles: the server packs fixed-width big-endian records into one value that
numpy reads in place (no per-row Python at all). Universe reads use parallel connections sharing one
exported snapshot. Open times are BIGINT epoch ms; reads cover `[start, end)`.
"""

from __future__ import annotations

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

from engine.schemas import (
    CANDLE_COLUMNS,
    OHLCV_COLUMNS,
    candles_look_valid,
    empty_candles,
    timestamps_ms,
    validate_candles,
)
from pipeline.store.convert import to_ms
from pipeline.store.models import BASE_TIMEFRAME

MIN_MS = -(2**62)
MAX_MS = 2**62
_VALUE_COLS = ", ".join(OHLCV_COLUMNS)
_BATCH_COLS = ("source", "synthetic", "ingested_at")  # per candle, the same for every row of one write
_INSERT_COLS = f"series_id, open_time, {_VALUE_COLS}, {', '.join(_BATCH_COLS)}"
_UPDATE_SET = ", ".join(f"{c} = excluded.{c}" for c in (*OHLCV_COLUMNS, *_BATCH_COLS))
_CHANGED = (*OHLCV_COLUMNS, "source", "synthetic")
_CONFLICT = (
    f"ON CONFLICT (series_id, open_time) DO UPDATE SET {_UPDATE_SET} "
    f"WHERE ({', '.join(f'candles.{c}' for c in _CHANGED)}) "
    f"<> ({', '.join(f'excluded.{c}' for c in _CHANGED)})"
)  # rows whose values did not change are left alone (no rewrite, ingested_at kept)
#: `.format(exchange_placeholder, symbol_placeholder)`
_SERIES_ID = (
    f"SELECT id FROM candle_series WHERE exchange = {{}} AND symbol = {{}} AND timeframe = '{BASE_TIMEFRAME}'"
)
_SERIES_NEW = (
    f"INSERT INTO candle_series (exchange, symbol, timeframe) VALUES ({{}}, {{}}, '{BASE_TIMEFRAME}') "
    "ON CONFLICT (exchange, symbol, timeframe) DO NOTHING RETURNING id"
)

SQLITE_ROWS_PER_STATEMENT = 2000
SQLITE_READ = (
    f"SELECT open_time, {_VALUE_COLS} FROM candles WHERE series_id = ({_SERIES_ID.format('?', '?')}) "
    "AND open_time >= ? AND open_time < ? ORDER BY open_time"
)
PG_RANGE_WHERE = "series_id = %s AND open_time >= %s AND open_time < %s"
#: one page of a PostgreSQL read: fixed 48-byte big-endian records packed into one bytea
PG_READ_COPY = (
    "COPY (SELECT string_agg(int8send(open_time) || "
    + " || ".join(f"float8send({c})" for c in OHLCV_COLUMNS)
    + f", ''::bytea) FROM (SELECT open_time, {_VALUE_COLS} FROM candles WHERE {PG_RANGE_WHERE} "
    "ORDER BY open_time LIMIT %s) AS page) TO STDOUT (FORMAT binary)"
)
PG_READ_PAGE_ROWS = 1_000_000  # 48 MB per page (a bytea value is limited to 1 GB)
#: range reads walk the primary key: rows come out ordered, no sort (fresh partitions have no statistics
#: yet, and the planner would otherwise pick a bitmap scan plus a sort, or a seq scan plus a sort)
PG_READ_SETTINGS = "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off"
PG_TEMP = "_crypto4h_candles_in"
PG_COPY_SIZE = 1 << 22
PG_SMALL_ROWS = 1000

_PG_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_PG_HEADER = _PG_SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_PG_TRAILER = b"\xff\xff"
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # PostgreSQL's timestamp epoch
_PG_RECORD = np.dtype([("t", ">i8")] + [(c, ">f8") for c in OHLCV_COLUMNS])  # int8send || float8send..


class CandleStoreError(ValueError):
    """A candle write was refused before touching the database (e.g. a non-base timeframe)."""


def validated(df: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """The engine's validation, with its numpy fast path.

    `engine.schemas.candles_look_valid` answers yes/no ~10x faster than pandera (the engine keeps the two
    in agreement with a property test); any "no" (or an unusual frame) goes through `validate_candles`,
    which coerces dtypes and raises `CandleValidationError` naming the symbol, rule and rows.
    """
    if isinstance(df, pd.DataFrame) and all(c in df.columns for c in CANDLE_COLUMNS) and candles_look_valid(df):
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


# --- series ---------------------------------------------------------------------------------------------


def find_series(cur: Any, exchange: str, symbol: str) -> int | None:
    """The id of the base-timeframe series (exchange, symbol) on a raw DBAPI cursor (None if unknown)."""
    p = "?" if isinstance(cur, sqlite3.Cursor) else "%s"
    cur.execute(_SERIES_ID.format(p, p), (exchange, symbol))
    row = cur.fetchone()
    return None if row is None else int(row[0])


def ensure_series(cur: Any, exchange: str, symbol: str) -> tuple[int, bool]:
    """(series id, created by this call) inside the caller's write transaction.

    A concurrent writer creating the same series makes the INSERT wait for it (unique constraint): if it
    commits, the series is found; if it rolls back, this call creates it.
    """
    found = find_series(cur, exchange, symbol)
    if found is not None:
        return found, False
    p = "?" if isinstance(cur, sqlite3.Cursor) else "%s"
    cur.execute(_SERIES_NEW.format(p, p), (exchange, symbol))
    row = cur.fetchone()
    if row is not None:
        return int(row[0]), True
    found = find_series(cur, exchange, symbol)  # another writer created it meanwhile
    if found is None:  # pragma: no cover - the conflicting row must be visible after the wait
        raise RuntimeError(f"candle series ({exchange!r}, {symbol!r}) vanished while being created")
    return found, False


# --- writes ---------------------------------------------------------------------------------------------


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
        f"INSERT INTO candles ({_INSERT_COLS}) SELECT ?, column1, column2, column3, column4, column5, "
        f"column6, ?, ?, ? FROM (VALUES {values}) WHERE true {_CONFLICT}"
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
    flat = list(chain.from_iterable(zip(ms.tolist(), *values.T.tolist(), strict=True)))
    cur = raw.cursor()
    try:
        series_id, _ = ensure_series(cur, exchange, symbol)
        head: list[Any] = [series_id, source, 1 if synthetic else 0, stamp]
        per = min(
            SQLITE_ROWS_PER_STATEMENT, (raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - len(head)) // 6
        )
        n = len(ms)
        full = _sqlite_upsert_sql(per) if n >= per else ""
        for i in range(0, n, per):
            k = min(per, n - i)
            cur.execute(full if k == per else _sqlite_upsert_sql(k), head + flat[i * 6 : (i + k) * 6])
    finally:
        cur.close()
    return n


_PG_BINARY = {"int4": (4, ">i4"), "int8": (8, ">i8"), "float8": (8, ">f8"), "bool": (1, "u1")}


def _pg_rows(
    ms: np.ndarray, values: np.ndarray, fields: list[tuple[str, str]], consts: dict[str, Any]
) -> np.ndarray:
    """Build a binary COPY payload (header, rows, trailer) as one uint8 array.

    Every row has the same layout (text values are constant per call), so the rows are one numpy record
    array: the constant prototype row is broadcast as raw bytes, then the varying columns are written.
    """
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
            size, code = _PG_BINARY[kind]
            spec += [(f"l_{name}", ">i4"), (name, code)]
            proto_values[f"l_{name}"] = size
            if name in consts:
                proto_values[name] = consts[name]
    dtype = np.dtype(spec)
    proto = np.zeros(1, dtype=dtype)
    for key, value in proto_values.items():
        proto[key] = value
    n, head = len(ms), len(_PG_HEADER)
    buf = np.empty(head + n * dtype.itemsize + len(_PG_TRAILER), dtype=np.uint8)
    buf[:head] = np.frombuffer(_PG_HEADER, dtype=np.uint8)
    buf[head + n * dtype.itemsize :] = np.frombuffer(_PG_TRAILER, dtype=np.uint8)
    rows = buf[head : head + n * dtype.itemsize]
    rows.reshape(n, dtype.itemsize)[:] = proto.view(np.uint8)  # a byte copy (a record broadcast is slow)
    rec = rows.view(dtype)
    rec["open_time"] = ms
    for i, c in enumerate(OHLCV_COLUMNS):
        rec[c] = values[:, i]
    return buf


class _BufferReader:
    """A read-only file object over a buffer: COPY FROM takes it in chunks, with one copy in all."""

    def __init__(self, buf: np.ndarray) -> None:
        self._view = memoryview(buf).cast("B")
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        chunk = self._view[self._pos : end].tobytes()
        self._pos = end
        return chunk


_PG_NUMERIC_FIELDS = [("int8", "open_time"), *(("float8", c) for c in OHLCV_COLUMNS)]
_PG_FULL_FIELDS = [
    ("int4", "series_id"), *_PG_NUMERIC_FIELDS,
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
        series_id, created = ensure_series(cur, exchange, symbol)
        if created:  # nobody else can write this series before we commit: build its partition
            _pg_new_partition(cur, series_id, ms, values, source, synthetic, ingested_at)
            return len(ms)
        if len(ms) <= PG_SMALL_ROWS:  # increments: one statement, no COPY round trips
            cur.execute(
                f"INSERT INTO candles ({_INSERT_COLS}) SELECT %s, t.*, %s, %s, %s FROM unnest("
                "%s::bigint[], %s::float8[], %s::float8[], %s::float8[], %s::float8[], %s::float8[]) "
                f"AS t(open_time, {_VALUE_COLS}) {_CONFLICT}",
                (series_id, source, bool(synthetic), ingested_at, ms.tolist(), *values.T.tolist()),
            )
            return len(ms)
        cur.execute(
            f"SELECT EXISTS (SELECT 1 FROM candles WHERE {PG_RANGE_WHERE})",
            (series_id, int(ms[0]), int(ms[-1]) + 1),
        )
        if not cur.fetchone()[0]:
            us = (ingested_at - _PG_EPOCH) // timedelta(microseconds=1)
            consts = {
                "series_id": series_id, "source": source, "synthetic": int(bool(synthetic)), "ingested_at": us,
            }  # fmt: skip
            payload = _pg_rows(ms, values, _PG_FULL_FIELDS, consts)
            cur.execute("SAVEPOINT crypto4h_copy")
            try:
                cur.copy_expert(
                    f"COPY candles ({_INSERT_COLS}) FROM STDIN (FORMAT binary)",
                    _BufferReader(payload),
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
        cur.copy_expert(f"COPY {PG_TEMP} FROM STDIN (FORMAT binary)", _BufferReader(payload), PG_COPY_SIZE)
        cur.execute(
            f"INSERT INTO candles ({_INSERT_COLS}) SELECT %s, open_time, {_VALUE_COLS}, %s, %s, %s "
            f"FROM {PG_TEMP} {_CONFLICT}",
            (series_id, source, bool(synthetic), ingested_at),
        )
        return len(ms)
    finally:
        cur.close()


def pg_partition_name(series_id: int) -> str:
    """The (unqualified) name of a series' partition of `candles` on PostgreSQL."""
    return f"candles_s{int(series_id)}"


def _pg_new_partition(
    cur: Any,
    series_id: int,
    ms: np.ndarray,
    values: np.ndarray,
    source: str,
    synthetic: bool,
    ingested_at: datetime,
) -> None:
    """Load a new series into a fresh table, index it in one pass, attach it as its partition.

    Everything happens in the caller's transaction: a failure leaves neither the table nor the series.
    The table lives in the schema of `candles`. Constants go in as column defaults, so COPY carries only
    the 6 numbers per candle. `ATTACH PARTITION` takes a SHARE UPDATE EXCLUSIVE lock on `candles` until
    commit (reads and writes go on; other new series wait to attach).
    """
    sid = int(series_id)
    name = pg_partition_name(sid)
    cur.execute("SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = 'candles'::regclass")
    table = f"{cur.fetchone()[0]}.{name}"  # the schema comes back quoted where needed
    escaped = table.replace("%", "%%")  # the next statement has parameters
    cur.execute(
        f"CREATE TABLE {escaped} (LIKE candles INCLUDING DEFAULTS, "
        f"CONSTRAINT {name}_series CHECK (series_id = {sid})); "
        f"ALTER TABLE {escaped} ALTER series_id SET DEFAULT {sid}, ALTER source SET DEFAULT %s, "
        "ALTER synthetic SET DEFAULT %s, ALTER ingested_at SET DEFAULT %s",
        (source, bool(synthetic), ingested_at),
    )
    cur.copy_expert(
        f"COPY {table} (open_time, {_VALUE_COLS}) FROM STDIN (FORMAT binary)",
        _BufferReader(_pg_rows(ms, values, _PG_NUMERIC_FIELDS, {})),
        PG_COPY_SIZE,
    )
    cur.execute(
        f"ALTER TABLE {table} ALTER series_id DROP DEFAULT, ALTER source DROP DEFAULT, "
        "ALTER synthetic DROP DEFAULT, ALTER ingested_at DROP DEFAULT; "
        # a single sorted pass is fastest for one series; parallel workers only add start-up cost
        "SET LOCAL max_parallel_maintenance_workers = 0; "
        f"ALTER TABLE {table} ADD CONSTRAINT {name}_pkey PRIMARY KEY (series_id, open_time); "
        f"ALTER TABLE candles ATTACH PARTITION {table} FOR VALUES IN ({sid})"
    )


# --- reads ----------------------------------------------------------------------------------------------


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
    """One symbol from a psycopg2 cursor (inside a transaction that ran `PG_READ_SETTINGS`).

    Each page is one packed bytea value read in place by numpy.
    """
    series_id = find_series(cur, exchange, symbol)
    if series_id is None:
        return empty_candles()
    pages: list[np.ndarray] = []
    while True:
        chunks: list[bytes] = []
        query = cur.mogrify(PG_READ_COPY, (series_id, lo, hi, PG_READ_PAGE_ROWS)).decode()
        cur.copy_expert(query, _ChunkSink(chunks), PG_COPY_SIZE)
        page = _parse_pg_packed(b"".join(chunks))
        if len(page):
            pages.append(page)
        if len(page) < PG_READ_PAGE_ROWS:
            break
        lo = int(page["t"].max()) + 1
    if not pages:
        return empty_candles()
    rec = pages[0] if len(pages) == 1 else np.concatenate(pages)
    ms = rec["t"].astype(np.int64)
    if len(ms) > 1 and not (ms[1:] > ms[:-1]).all():  # string_agg keeps the subquery's order in practice
        order = np.argsort(ms, kind="stable")
        rec, ms = rec[order], ms[order]
    block = np.empty((len(OHLCV_COLUMNS), len(rec)), dtype=np.float64)
    for i, c in enumerate(OHLCV_COLUMNS):
        block[i] = rec[c]
    return frame_from_arrays(ms, block)


def read(conn: sa.Connection, exchange: str, symbol: str, lo: int, hi: int) -> pd.DataFrame:
    """Candles of one symbol with open time in [lo, hi) (epoch ms) as the engine frame."""
    cur = conn.connection.driver_connection.cursor()
    try:
        if conn.dialect.name == "sqlite":
            return read_sqlite(cur, exchange, symbol, lo, hi)
        cur.execute(PG_READ_SETTINGS)
        return read_postgres(cur, exchange, symbol, lo, hi)
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
        cur.execute(PG_READ_SETTINGS)
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


def _parse_pg_packed(buf: bytes) -> np.ndarray:
    """The records of a one-row, one-column binary COPY holding the packed bytea (NULL = no rows)."""
    if not buf.startswith(_PG_SIGNATURE):
        raise RuntimeError("unexpected COPY output (not PGCOPY binary)")
    at = 19 + int.from_bytes(buf[15:19], "big")  # header extension
    if buf[at : at + 2] == _PG_TRAILER:  # no row at all
        return np.empty(0, dtype=_PG_RECORD)
    if int.from_bytes(buf[at : at + 2], "big") != 1:
        raise RuntimeError("unexpected COPY row layout")
    size = int.from_bytes(buf[at + 2 : at + 6], "big", signed=True)
    if size < 0:  # string_agg over no rows is NULL
        return np.empty(0, dtype=_PG_RECORD)
    if size % _PG_RECORD.itemsize:
        raise RuntimeError("unexpected packed candle size")
    return np.frombuffer(buf, dtype=_PG_RECORD, count=size // _PG_RECORD.itemsize, offset=at + 6)


def summary(conn: sa.Connection, exchange: str, symbol: str, lo: int, hi: int) -> dict[str, Any]:
    """Row count, first and last open time (UTC Timestamps or None) and synthetic row count."""
    series_id = conn.execute(sa.text(_SERIES_ID.format(":e", ":s")), {"e": exchange, "s": symbol}).scalar()
    count, first, last, n_synth = 0, None, None, 0
    if series_id is not None:
        count, first, last, n_synth = conn.execute(
            sa.text(
                "SELECT count(*), min(open_time), max(open_time), "
                "coalesce(sum(CASE WHEN synthetic THEN 1 ELSE 0 END), 0) FROM candles "
                "WHERE series_id = :sid AND open_time >= :lo AND open_time < :hi"
            ),
            {"sid": series_id, "lo": lo, "hi": hi},
        ).one()

    def ts(v: int | None) -> pd.Timestamp | None:
        return None if v is None else pd.Timestamp(int(v), unit="ms", tz="UTC")

    return {"rows": int(count), "first": ts(first), "last": ts(last), "synthetic_rows": int(n_synth)}
