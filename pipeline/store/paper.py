"""Paper trading tables in Core SQL, inside the caller's transaction: decisions and their trades, the
settlement updates, and the ledger of first-seen candles with the revisions found against it.

Times are epoch ms like every market time in the store. The unique key (strategy, decision_time) is
what makes a decision exactly-once; settlement updates only rows still `open`, so two ticks racing to
settle the same trade settle it once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from pipeline.store.convert import float_column, int_column, json_safe, ms_to_timestamps, utc_series
from pipeline.store.models import Candle, CandleSeries, PaperCandle, PaperDecision, PaperTrade

decisions_t = PaperDecision.__table__
trades_t = PaperTrade.__table__
ledger_t = PaperCandle.__table__
series_t = CandleSeries.__table__
candles_t = Candle.__table__

BASE_MS = 300_000
OHLCV = ("open", "high", "low", "close", "volume")
DECISION_COLUMNS = (
    "id", "strategy", "decision_time", "params", "config", "exchange", "history_start", "inputs", "n_eligible",
    "n_candidates", "n_selected", "mode", "recorded_at", "note", "run_id", "window_return", "settled_at",
)  # fmt: skip
TRADE_COLUMNS = (
    "decision_id", "symbol", "rank", "weight", "score", "entry_price", "features", "status", "exit_time",
    "exit_price", "return_pct", "gross_return_pct", "max_drawdown", "n_candles", "window_inputs", "settled_at",
    "previous",
)  # fmt: skip
SETTLEMENT_FIELDS = ("status", "exit_time", "exit_price", "return_pct", "gross_return_pct", "max_drawdown",
                     "n_candles", "window_inputs", "settled_at")  # fmt: skip


class PaperAlreadyRecorded(ValueError):
    """A decision for this (strategy, decision time) is already in the store (exactly once)."""


def recorded_times(conn: sa.Connection) -> dict[str, list[int]]:
    """Decision times already recorded, per strategy (sorted epoch ms)."""
    out: dict[str, list[int]] = {}
    query = sa.select(decisions_t.c.strategy, decisions_t.c.decision_time).order_by(decisions_t.c.decision_time)
    for strategy, t in conn.execute(query):
        out.setdefault(strategy, []).append(int(t))
    return out


def series_ids(conn: sa.Connection, exchange: str, symbols: Sequence[str]) -> dict[str, int]:
    """Candle series id per symbol that has one (base timeframe)."""
    query = sa.select(series_t.c.symbol, series_t.c.id).where(
        series_t.c.exchange == exchange, series_t.c.symbol.in_(list(symbols))
    )
    return {s: int(i) for s, i in conn.execute(query)}


def latest_closed(conn: sa.Connection, exchange: str, symbols: Sequence[str], as_of_ms: int) -> dict[str, int | None]:
    """Per symbol, the open time of the newest stored candle closed by `as_of` (None: none stored).

    Candles stamped after the clock are ignored, so a simulated clock behaves like the real one even when
    the store already holds later data.
    """
    ids = series_ids(conn, exchange, symbols)
    out: dict[str, int | None] = dict.fromkeys(symbols)
    for symbol, sid in ids.items():
        query = sa.select(sa.func.max(candles_t.c.open_time)).where(
            candles_t.c.series_id == sid, candles_t.c.open_time <= int(as_of_ms) - BASE_MS
        )
        value = conn.execute(query).scalar()
        out[symbol] = None if value is None else int(value)
    return out


def insert_decision(conn: sa.Connection, row: Mapping[str, Any], trades: Sequence[Mapping[str, Any]]) -> int:
    """Insert one decision and its trades; raise `PaperAlreadyRecorded` when the key exists."""
    key = (row["strategy"], int(row["decision_time"]))
    exists = conn.execute(
        sa.select(decisions_t.c.id).where(decisions_t.c.strategy == key[0], decisions_t.c.decision_time == key[1])
    ).first()
    if exists is not None:
        raise PaperAlreadyRecorded(f"{key[0]} @ {pd.Timestamp(key[1], unit='ms', tz='UTC')} is already recorded")
    values = {c: row.get(c) for c in DECISION_COLUMNS if c != "id"}
    for c in ("params", "config", "inputs"):
        values[c] = json_safe(values[c])
    decision_id = int(conn.execute(decisions_t.insert().values(**values)).inserted_primary_key[0])
    if trades:
        conn.execute(trades_t.insert(), [
            {**{c: t.get(c) for c in TRADE_COLUMNS}, "decision_id": decision_id, "features": json_safe(t.get("features")),
             "status": "open"}
            for t in trades
        ])  # fmt: skip
    return decision_id


_LEDGER_COLUMNS = ("series_id", "open_time", *OHLCV, "sha", "first_seen_at")
_LEDGER_INSERT = (f"INSERT INTO paper_candles ({', '.join(_LEDGER_COLUMNS)}) VALUES {{}} "
                  "ON CONFLICT (series_id, open_time) DO NOTHING")  # fmt: skip


def _insert_ledger_rows(conn: sa.Connection, rows: list[tuple]) -> None:
    """Insert-or-ignore ledger rows through the DBAPI cursor of the caller's transaction (SQLAlchemy's
    per-row parameter processing would cost seconds for the first decision's ~10^5 candles)."""
    raw = conn.connection.driver_connection
    cur = raw.cursor()
    try:
        if conn.dialect.name == "postgresql":
            from psycopg2.extras import execute_values

            execute_values(cur, _LEDGER_INSERT.format("%s"), rows, page_size=5000)
        else:
            cur.executemany(_LEDGER_INSERT.format("(" + ",".join("?" * len(_LEDGER_COLUMNS)) + ")"), rows)
    finally:
        cur.close()


def extend_ledger(conn: sa.Connection, series_id: int, frame: pd.DataFrame, seen_at: datetime) -> int:
    """Add the candles of a read (an engine candle frame) that lie outside the ledger's range for the
    series: the ledger then holds, for every series, each candle present in `[min, max]` when it was first
    read, with the hash of its values. Returns the rows added."""
    from engine.paper import candle_hashes
    from engine.schemas import timestamps_ms

    ms = timestamps_ms(frame) if len(frame) else np.array([], dtype=np.int64)
    lo, hi = conn.execute(
        sa.select(sa.func.min(ledger_t.c.open_time), sa.func.max(ledger_t.c.open_time)).where(
            ledger_t.c.series_id == series_id
        )
    ).one()
    new = np.ones(len(ms), dtype=bool) if lo is None else (ms < int(lo)) | (ms > int(hi))
    idx = np.flatnonzero(new)
    if len(idx) == 0:
        return 0
    part = frame.iloc[idx]
    if conn.dialect.name == "sqlite":  # the text format SQLAlchemy's SQLite DateTime writes and parses
        seen: Any = seen_at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    else:
        seen = seen_at
    columns = [[series_id] * len(idx), ms[idx].tolist(), *(part[k].to_numpy(np.float64).tolist() for k in OHLCV),
               candle_hashes(part), [seen] * len(idx)]  # fmt: skip
    rows = list(zip(*columns, strict=True))
    _insert_ledger_rows(conn, rows)
    return len(rows)


def _decision_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(DECISION_COLUMNS))
    df["decision_time"] = ms_to_timestamps(df["decision_time"].tolist())
    df["history_start"] = ms_to_timestamps(df["history_start"].tolist())
    df["recorded_at"] = utc_series(df["recorded_at"].tolist())
    df["settled_at"] = utc_series(df["settled_at"].tolist())
    df["window_return"] = float_column(df["window_return"].tolist())
    return df


def decisions(conn: sa.Connection, strategy: str | None = None, since_ms: int | None = None) -> pd.DataFrame:
    """Decisions by strategy and time (times as UTC timestamps, JSON columns as dicts)."""
    query = sa.select(decisions_t).order_by(decisions_t.c.strategy, decisions_t.c.decision_time)
    if strategy is not None:
        query = query.where(decisions_t.c.strategy == strategy)
    if since_ms is not None:
        query = query.where(decisions_t.c.decision_time >= int(since_ms))
    return _decision_frame([dict(r) for r in conn.execute(query).mappings()])


def trades(conn: sa.Connection, *, status: Sequence[str] | None = None, strategy: str | None = None,
           since_ms: int | None = None) -> pd.DataFrame:  # fmt: skip
    """Trades with their decision's strategy, time, mode and config, by strategy, time and rank."""
    d = decisions_t.c
    query = (
        sa.select(trades_t, d.strategy, d.decision_time, d.mode, d.config, d.exchange)
        .join(decisions_t, decisions_t.c.id == trades_t.c.decision_id)
        .order_by(d.strategy, d.decision_time, trades_t.c.rank, trades_t.c.symbol)
    )
    if status is not None:
        query = query.where(trades_t.c.status.in_(list(status)))
    if strategy is not None:
        query = query.where(d.strategy == strategy)
    if since_ms is not None:
        query = query.where(d.decision_time >= int(since_ms))
    rows = [dict(r) for r in conn.execute(query).mappings()]
    columns = ["strategy", "decision_time", "mode", "config", "exchange", *TRADE_COLUMNS]
    df = pd.DataFrame(rows, columns=columns)
    df["decision_time"] = ms_to_timestamps(df["decision_time"].tolist())
    df["exit_time"] = ms_to_timestamps(df["exit_time"].tolist())
    df["settled_at"] = utc_series(df["settled_at"].tolist())
    df["rank"] = int_column(df["rank"].tolist())
    for c in ("weight", "score", "entry_price", "exit_price", "return_pct", "gross_return_pct", "max_drawdown"):
        df[c] = float_column(df[c].tolist())
    return df


def settle_trade(conn: sa.Connection, decision_id: int, symbol: str, values: Mapping[str, Any], *,
                 previous: list[Any] | None = None) -> bool:  # fmt: skip
    """Write a settlement. A first settlement only touches an `open` row (False when another tick already
    settled it); with `previous` (a re-settlement) the earlier settlements are kept in that column."""
    update = {c: values.get(c) for c in SETTLEMENT_FIELDS}
    update["window_inputs"] = json_safe(update["window_inputs"])
    where = [trades_t.c.decision_id == int(decision_id), trades_t.c.symbol == symbol]
    if previous is None:
        where.append(trades_t.c.status == "open")
    else:
        update["previous"] = json_safe(previous)
    return conn.execute(trades_t.update().where(*where).values(**update)).rowcount == 1


def decision_trades(conn: sa.Connection, decision_id: int) -> pd.DataFrame:
    """One decision's trades in symbol order (status, weight, return, void) for its window return."""
    query = (
        sa.select(trades_t.c.symbol, trades_t.c.status, trades_t.c.weight, trades_t.c.return_pct)
        .where(trades_t.c.decision_id == int(decision_id))
        .order_by(trades_t.c.symbol)
    )
    rows = [dict(r) for r in conn.execute(query).mappings()]
    return pd.DataFrame(rows, columns=["symbol", "status", "weight", "return_pct"])


def finish_decision(conn: sa.Connection, decision_id: int, window_return: float, settled_at: datetime) -> None:
    conn.execute(
        decisions_t.update().where(decisions_t.c.id == int(decision_id)).values(
            window_return=float(window_return), settled_at=settled_at
        )
    )


def unsettled_decisions(conn: sa.Connection, before_ms: int) -> pd.DataFrame:
    """Decisions not finished yet whose decision time is before `before_ms` (candidates for settling)."""
    query = (
        sa.select(decisions_t)
        .where(decisions_t.c.settled_at.is_(None), decisions_t.c.decision_time < int(before_ms))
        .order_by(decisions_t.c.decision_time, decisions_t.c.strategy)
    )
    return _decision_frame([dict(r) for r in conn.execute(query).mappings()])


def revisions(conn: sa.Connection, exchange: str) -> pd.DataFrame:
    """Candles that differ from their first-seen version: `changed` (values differ), `removed` (no longer
    stored) or `added` (stored now inside the ledger's range of the series, absent when it was read).

    Columns: symbol, open_time (UTC), kind, old_<ohlcv>, old_sha, first_seen_at, new_<ohlcv>.
    """
    s, c, ledger = series_t.c, candles_t.c, ledger_t.c
    differs = sa.or_(c.open_time.is_(None), *[getattr(c, k) != getattr(ledger, k) for k in OHLCV])
    changed = (
        sa.select(s.symbol, ledger.open_time, *[getattr(ledger, k).label(f"old_{k}") for k in OHLCV], ledger.sha,
                  ledger.first_seen_at, *[getattr(c, k).label(f"new_{k}") for k in OHLCV],
                  c.open_time.label("stored_time"))
        .select_from(ledger_t.join(series_t, series_t.c.id == ledger.series_id)
                     .outerjoin(candles_t, sa.and_(c.series_id == ledger.series_id, c.open_time == ledger.open_time)))
        .where(s.exchange == exchange, differs)
    )  # fmt: skip
    span = (
        sa.select(ledger.series_id, sa.func.min(ledger.open_time).label("lo"), sa.func.max(ledger.open_time).label("hi"))
        .group_by(ledger.series_id)
        .subquery()
    )  # fmt: skip
    inner = ledger_t.alias("seen")
    added = (
        sa.select(s.symbol, c.open_time, *[getattr(c, k).label(f"new_{k}") for k in OHLCV])
        .select_from(candles_t.join(span, span.c.series_id == c.series_id).join(series_t, series_t.c.id == c.series_id))
        .where(s.exchange == exchange, c.open_time >= span.c.lo, c.open_time <= span.c.hi,
               ~sa.exists().where(inner.c.series_id == c.series_id, inner.c.open_time == c.open_time))
    )  # fmt: skip
    rows = []
    for r in conn.execute(changed).mappings():
        rows.append({**dict(r), "kind": "removed" if r["stored_time"] is None else "changed"})
    for r in conn.execute(added).mappings():
        rows.append({**dict(r), "kind": "added"})
    columns = ["symbol", "open_time", "kind", *[f"old_{k}" for k in OHLCV], "sha", "first_seen_at",
               *[f"new_{k}" for k in OHLCV]]  # fmt: skip
    df = pd.DataFrame(rows, columns=columns).rename(columns={"sha": "old_sha"})
    df["open_time"] = ms_to_timestamps(df["open_time"].tolist())
    df["first_seen_at"] = utc_series(df["first_seen_at"].tolist())
    for k in OHLCV:
        df[f"old_{k}"] = float_column(df[f"old_{k}"].tolist())
        df[f"new_{k}"] = float_column(df[f"new_{k}"].tolist())
    return df.sort_values(["symbol", "open_time"]).reset_index(drop=True)
