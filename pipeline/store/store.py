"""`Store`: candles, the strategy registry, backtest results, ranking snapshots and the paper book behind one
SQL URL.

Every write is one transaction: validation happens before anything is sent, and a failure anywhere rolls
the whole write back. The SQL of each table family lives in its own module (`candles`, `registry`,
`runs`, `rankings`, `paper`); this class owns connections and transactions.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd
import sqlalchemy as sa

from pipeline.store import candles as _candles
from pipeline.store import rankings as _rankings
from pipeline.store import runs as _runs
from pipeline.store import strategy_table as _registry
from pipeline.store.engine_url import (
    ENV_VAR,
    SQLITE_BEGIN_OPTION,
    describe_db_error,
    make_engine,
    resolve_url,
    safe_url,
)
from pipeline.store.migrate import current_revision, head_revision, schema_diff, upgrade
from pipeline.store.paper_book import PaperBook
from pipeline.store.runs import RequestAlreadyRecorded
from pipeline.store.sweep_book import SweepBook


class Store:
    """Candles, strategy registry, backtest results and ranking snapshots behind one SQL URL."""

    def __init__(self, url: str | None = None) -> None:
        self.url: str = resolve_url(url)
        self.engine: sa.Engine = make_engine(self.url)
        self.dialect: str = self.engine.dialect.name
        #: parallel connections for `read_universe` on PostgreSQL (1 = serial)
        self.read_workers: int = min(4, os.cpu_count() or 1)

    @classmethod
    def from_env(cls) -> Store:
        """A store for `$CRYPTO4H_DB_URL` (or the default SQLite file)."""
        return cls(None)

    def __repr__(self) -> str:
        return f"Store({safe_url(self.url)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()

    # --- plumbing -------------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE, so writers queue on the busy timeout)."""
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # --- schema ---------------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Upgrade the schema to the newest migration (no-op when already there)."""
        upgrade(self.engine)

    def schema_revision(self) -> str | None:
        """The database's migration revision (None before `migrate`)."""
        return current_revision(self.engine)

    def is_current(self) -> bool:
        """True when the database is at the code's head revision."""
        return self.schema_revision() == head_revision()

    def schema_diff(self) -> list:
        """Differences between the ORM models and the live schema (empty when they agree)."""
        return schema_diff(self.engine)

    # --- candles --------------------------------------------------------------------------------------

    def upsert_candles(
        self,
        df: pd.DataFrame,
        *,
        exchange: str,
        symbol: str,
        source: str,
        synthetic: bool = False,
        timeframe: str = "5m",
    ) -> int:
        """Validate, then insert-or-update the candles of one symbol in one transaction; return the count.

        Raises `engine.schemas.CandleValidationError` (nothing written) on bad rows and
        `CandleStoreError` for a non-base timeframe or empty identifiers.
        """
        _candles.check_key(exchange, symbol, source)
        ms, values = _candles.prepare(df, symbol, timeframe)
        if len(ms) == 0:
            return 0
        with self._write() as conn:
            return _candles.write(
                conn, ms, values, exchange=exchange, symbol=symbol, source=source, synthetic=synthetic
            )

    def upsert_candles_many(
        self,
        frames: Mapping[str, pd.DataFrame],
        *,
        exchange: str,
        source: str,
        synthetic: bool = False,
    ) -> int:
        """Several symbols in ONE transaction: every frame is validated before the first row is written.

        Symbols are written in sorted order, so concurrent batches lock series in the same order.
        """
        prepared = []
        for symbol, df in frames.items():
            _candles.check_key(exchange, symbol, source)
            prepared.append((symbol, *_candles.prepare(df, symbol, "5m")))
        total = 0
        with self._write() as conn:
            # symbols in sorted order: concurrent batches take their locks in the same order (no deadlock)
            for symbol, ms, values in sorted(prepared, key=lambda p: p[0]):
                total += _candles.write(
                    conn, ms, values, exchange=exchange, symbol=symbol, source=source, synthetic=synthetic
                )
        return total

    def read_candles(self, exchange: str, symbol: str, start: Any = None, end: Any = None) -> pd.DataFrame:
        """The engine candle frame for one symbol, open time in [start, end) (UTC; None = open-ended)."""
        lo, hi = _candles.bounds(start, end)
        with self._read() as conn:
            return _candles.read(conn, exchange, symbol, lo, hi)

    def read_universe(
        self, exchange: str, symbols: Sequence[str], start: Any = None, end: Any = None
    ) -> dict[str, pd.DataFrame]:
        """`{symbol: engine frame}` for every requested symbol (an empty frame when nothing is stored).

        All symbols are read as of one snapshot (one transaction; on PostgreSQL up to `read_workers`
        connections sharing an exported snapshot read in parallel).
        """
        lo, hi = _candles.bounds(start, end)
        wanted = list(dict.fromkeys(symbols))
        if self.dialect == "postgresql":
            workers = max(1, min(self.read_workers, len(wanted)))
            from pipeline.store import candles_postgres

            return candles_postgres.read_universe(self.engine, exchange, wanted, lo, hi, workers)
        with self._read() as conn:
            return {s: _candles.read(conn, exchange, s, lo, hi) for s in wanted}

    def candle_summary(
        self, exchange: str, symbol: str, start: Any = None, end: Any = None
    ) -> dict[str, Any]:
        """`{rows, first, last, synthetic_rows}` over [start, end) with one SQL aggregate."""
        lo, hi = _candles.bounds(start, end)
        with self._read() as conn:
            return _candles.summary(conn, exchange, symbol, lo, hi)

    def symbols_with_candles(
        self, exchange: str, symbols: Sequence[str], start: Any = None, end: Any = None
    ) -> list[str]:
        """The symbols (in the given order) with at least one candle in [start, end), without reading them."""
        lo, hi = _candles.bounds(start, end)
        with self._read() as conn:
            return [s for s in dict.fromkeys(symbols) if _candles.has_rows(conn, exchange, s, lo, hi)]

    # --- strategies -----------------------------------------------------------------------------------

    def sync_strategies(self, rows: list[dict]) -> None:
        """Registry := rows (name, description, parameters, active); unlisted strategies are deactivated."""
        with self._write() as conn:
            _registry.sync_strategies(conn, rows)

    def set_strategy(self, name: str, *, active: bool | None = None, parameters: dict | None = None) -> dict:
        """Switch a strategy on/off and/or set its parameters (validate them with the engine first)."""
        with self._write() as conn:
            return _registry.set_strategy(conn, name, active=active, parameters=parameters)

    def all_strategies(self) -> list[dict]:
        """Every registry row, active or not, by name."""
        with self._read() as conn:
            return _registry.all_strategies(conn)

    def active_strategies(self) -> list[dict]:
        """Active registry entries, by name."""
        with self._read() as conn:
            return _registry.active_strategies(conn)

    # --- backtests ------------------------------------------------------------------------------------

    @contextmanager
    def _run_write(self, request_key: str | None) -> Iterator[sa.Connection]:
        try:
            with self._write() as conn:
                yield conn
        except sa.exc.IntegrityError as exc:  # lost a race on the unique request key
            if request_key is not None and self.has_request(request_key):
                raise RequestAlreadyRecorded(
                    f"backtest request {request_key!r} was already recorded"
                ) from exc
            raise

    def record_backtest(
        self,
        *,
        strategy: str,
        kind: str,
        config: dict,
        universe: list[str],
        data_fingerprint: str | None,
        code_version: str | None,
        trades: pd.DataFrame,
        windows: pd.DataFrame,
        metrics: dict,
        request_key: str | None = None,
    ) -> int:
        """Record a successful run with its trades, windows and metrics in ONE transaction; return its id.

        Raises `RequestAlreadyRecorded` when `request_key` was used before (nothing is written).
        """
        with self._run_write(request_key) as conn:
            return _runs.record_backtest(
                conn,
                strategy=strategy,
                kind=kind,
                config=config,
                universe=universe,
                data_fingerprint=data_fingerprint,
                code_version=code_version,
                trades=trades,
                windows=windows,
                metrics=metrics,
                request_key=request_key,
            )

    def record_failed_backtest(
        self,
        *,
        strategy: str,
        kind: str,
        config: dict,
        universe: list[str],
        error: str,
        request_key: str | None = None,
    ) -> int:
        """Record a failed run (status 'failed', error text, no results); return its id."""
        with self._run_write(request_key) as conn:
            return _runs.insert_run(
                conn,
                strategy=strategy,
                kind=kind,
                config=config,
                universe=universe,
                status="failed",
                error=str(error),
                request_key=request_key,
            )

    def has_request(self, request_key: str) -> bool:
        """True when a run (successful or failed) exists for this request key."""
        with self._read() as conn:
            return _runs.has_request(conn, request_key)

    def list_backtests(
        self,
        strategy: str | None = None,
        limit: int = 50,
        *,
        kind: str | None = None,
        status: str | None = None,
        data_fingerprint: str | None = None,
        code_version: str | None = None,
    ) -> pd.DataFrame:
        """Most recent runs first, optionally filtered by strategy, kind, status, data and code version."""
        with self._read() as conn:
            return _runs.list_backtests(conn, strategy, limit, kind=kind, status=status,
                                        data_fingerprint=data_fingerprint, code_version=code_version)

    def backtest_run(self, run_id: int) -> dict[str, Any] | None:
        """One run's row as a dict (None if unknown)."""
        with self._read() as conn:
            return _runs.backtest_run(conn, run_id)

    def backtest_trades(self, run_id: int) -> pd.DataFrame:
        """A run's trades (engine columns, UTC times, feature columns expanded from JSON)."""
        with self._read() as conn:
            return _runs.backtest_trades(conn, run_id)

    def backtest_windows(self, run_id: int) -> pd.DataFrame:
        """A run's windows (decision_time, n_selected, selected as a list, window_return)."""
        with self._read() as conn:
            return _runs.backtest_windows(conn, run_id)

    def backtest_metrics(self, run_id: int) -> dict[str, float | None]:
        """A run's metrics (nested dicts flattened to dotted names; NULL -> None)."""
        with self._read() as conn:
            return _runs.backtest_metrics(conn, run_id)

    # --- paper trading --------------------------------------------------------------------------------

    @property
    def paper(self) -> PaperBook:
        """Paper decisions, trades and the candle ledger (`pipeline.store.paper_book`)."""
        return PaperBook(self)

    @property
    def sweeps(self) -> SweepBook:
        """Parameter sweeps, their chunks and the configurations they tried (`pipeline.store.sweep_book`)."""
        return SweepBook(self)

    # --- rankings -------------------------------------------------------------------------------------

    def save_ranking_snapshot(self, *, strategy: str, decision_time: Any, ranking: pd.DataFrame) -> int:
        """Store one ranking (header + rows) in one transaction; return the snapshot id."""
        with self._write() as conn:
            return _rankings.save_ranking_snapshot(
                conn, strategy=strategy, decision_time=decision_time, ranking=ranking
            )

    def latest_ranking(self, strategy: str) -> pd.DataFrame:
        """The newest ranking snapshot of a strategy (empty frame when none)."""
        with self._read() as conn:
            return _rankings.latest_ranking(conn, strategy)


class StoreOpenError(RuntimeError):
    """The store cannot be opened (bad URL, unsupported database, server unreachable); one-line message."""


def open_store(url: str | None = None) -> Store:
    """A migrated store for `url` (default `$CRYPTO4H_DB_URL`, else the SQLite file), for command lines.

    Raises `StoreOpenError` with a one-line message naming the URL (password hidden) and the cause.
    """
    raw = url or os.environ.get(ENV_VAR) or "the default SQLite file"
    try:
        store = Store(url)
    except (sa.exc.SQLAlchemyError, ValueError) as exc:
        raise StoreOpenError(f"cannot open the store {safe_url(raw)}: {describe_db_error(exc)}") from exc
    try:
        store.migrate()
    except sa.exc.SQLAlchemyError as exc:
        store.dispose()
        raise StoreOpenError(f"cannot open the store {safe_url(store.url)}: {describe_db_error(exc, store.url)}") from exc
    return store
