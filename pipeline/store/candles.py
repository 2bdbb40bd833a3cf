"""Candle writes and reads behind one interface: validated idempotent upserts, range reads into the engine's
frame, and series bookkeeping. The dialect-specific fast paths live apart in `candles_sqlite` and
`candles_postgres`, which expose the same two functions:

    write(raw_connection, ms, values, exchange, symbol, source, synthetic, ingested_at) -> rows
    read(cursor, exchange, symbol, lo, hi) -> engine candle frame

Schema (see `models`): `candle_series` numbers each (exchange, symbol, timeframe) once; `candles` is keyed
by (series_id, open_time). The first write of a series creates its `candle_series` row in the same
transaction as its candles. Writes validate first, then go through the raw DBAPI connection of the
caller's SQLAlchemy transaction. An upsert rewrites a row only when a value, the source or the synthetic
flag changed (`ingested_at` is the time of the last real change). Open times are BIGINT epoch ms; reads
cover `[start, end)`.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
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
    return backend(conn.dialect.name).write(raw, ms, values, exchange, symbol, source, synthetic, ingested_at)


def backend(dialect: str) -> Any:
    """The module holding the dialect's `write` and `read` (imported on first use)."""
    if dialect == "sqlite":
        from pipeline.store import candles_sqlite

        return candles_sqlite
    if dialect == "postgresql":
        from pipeline.store import candles_postgres

        return candles_postgres
    raise CandleStoreError(f"unsupported database dialect {dialect!r}: use SQLite or PostgreSQL")


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


def read(conn: sa.Connection, exchange: str, symbol: str, lo: int, hi: int) -> pd.DataFrame:
    """Candles of one symbol with open time in [lo, hi) (epoch ms) as the engine frame."""
    cur = conn.connection.driver_connection.cursor()
    try:
        return backend(conn.dialect.name).read(cur, exchange, symbol, lo, hi)
    finally:
        cur.close()


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


def has_rows(conn: sa.Connection, exchange: str, symbol: str, lo: int, hi: int) -> bool:
    """Whether any candle of the series lies in [lo, hi): one index probe, not a count."""
    series_id = conn.execute(sa.text(_SERIES_ID.format(":e", ":s")), {"e": exchange, "s": symbol}).scalar()
    if series_id is None:
        return False
    query = "SELECT 1 FROM candles WHERE series_id = :sid AND open_time >= :lo AND open_time < :hi LIMIT 1"
    return conn.execute(sa.text(query), {"sid": series_id, "lo": lo, "hi": hi}).first() is not None
