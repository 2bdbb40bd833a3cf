"""PostgreSQL fast paths for candles (`candles` is LIST-partitioned by series, one partition per series).

Writes:
- a series' first write builds its partition: `CREATE TABLE candles_s<id> (LIKE candles)` with the
  per-batch constants as column defaults, binary `COPY .. (FORMAT binary)` of just the open time and
  OHLCV (built with numpy, no per-row Python), then the primary key is built in one sorted pass and the
  table is attached (`ATTACH PARTITION`, validated by its CHECK constraint, no scan). Building an index
  after the load costs about a third of maintaining it row by row;
- small increments (<= 1000 rows) are one `INSERT .. SELECT FROM unnest(arrays) ON CONFLICT`;
- larger writes use binary `COPY`: straight into `candles` when the target range is empty (inside a
  savepoint; if a concurrent writer got there first it falls back), else into a temp table followed by
  `INSERT .. SELECT .. ON CONFLICT DO UPDATE`.
Reads: one `COPY (SELECT string_agg(int8send(open_time) || float8send(open) || ..)) TO STDOUT (FORMAT
binary)` per page of up to a million candles: the server packs fixed-width big-endian records into one
value that numpy reads in place (no per-row Python at all). Universe reads use parallel connections
sharing one exported snapshot. Called through `pipeline.store.candles`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from engine.schemas import OHLCV_COLUMNS, empty_candles
from pipeline.store.candles import (
    _CONFLICT,
    _INSERT_COLS,
    _VALUE_COLS,
    ensure_series,
    find_series,
    frame_from_arrays,
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


def write(
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


def read(cur: Any, exchange: str, symbol: str, lo: int, hi: int) -> pd.DataFrame:
    """One symbol from a psycopg2 cursor, in the caller's transaction."""
    cur.execute(PG_READ_SETTINGS)
    return read_series(cur, exchange, symbol, lo, hi)


def read_series(cur: Any, exchange: str, symbol: str, lo: int, hi: int) -> pd.DataFrame:
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


def read_universe(
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
            out[symbol] = read_series(cur, exchange, symbol, lo, hi)

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
