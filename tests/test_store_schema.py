"""Store schema: URL resolution, SQLite settings, migrations (idempotent, matching the models)."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from pipeline.store import Store
from pipeline.store.engine_url import DEFAULT_DB_PATH, ENV_VAR, REPO_ROOT, resolve_url
from pipeline.store.migrate import head_revision
from pipeline.store.models import metadata

TABLES = {
    "candle_series",
    "candles",
    "strategies",
    "backtest_runs",
    "backtest_trades",
    "backtest_windows",
    "strategy_performance",
    "ranking_snapshots",
    "ranking_rows",
    "paper_decisions",
    "paper_trades",
    "paper_candles",
    "sweeps",
    "sweep_chunks",
    "sweep_configs",
}


def _schema_snapshot(store: Store) -> dict:
    insp = sa.inspect(store.engine)
    return {
        t: (
            [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)],
            insp.get_pk_constraint(t)["constrained_columns"],
            sorted(i["name"] for i in insp.get_indexes(t)),
        )
        for t in sorted(insp.get_table_names())
    }


def test_url_comes_from_env_var(monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv(ENV_VAR, url)
    store = Store.from_env()
    assert store.url == url
    assert store.dialect == "sqlite"
    store.dispose()


def test_default_url_is_the_sqlite_file_in_data(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_url(None) == f"sqlite:///{REPO_ROOT / 'data' / 'crypto4h.db'}"
    assert DEFAULT_DB_PATH.parent.is_dir()


def test_bare_postgres_url_uses_psycopg2():
    assert resolve_url("postgresql://u:p@db:5432/x") == "postgresql+psycopg2://u:p@db:5432/x"


def test_migrate_creates_every_table_and_twice_is_a_noop(empty_store):
    assert empty_store.schema_revision() is None
    empty_store.migrate()
    first = _schema_snapshot(empty_store)
    assert set(first) >= TABLES
    assert empty_store.schema_revision() == head_revision() == "0004"
    empty_store.migrate()
    assert _schema_snapshot(empty_store) == first
    with empty_store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar_one() == 1
    assert empty_store.is_current()


def test_models_match_migrations(store):
    assert store.schema_diff() == []
    assert set(metadata.tables) == TABLES


def test_candles_primary_key_is_the_range_index(store):
    """Narrow physical key (series_id, open_time); the logical key (exchange, symbol, timeframe,
    open_time) is unique through the series table."""
    insp = sa.inspect(store.engine)
    pk = insp.get_pk_constraint("candles")["constrained_columns"]
    assert pk == ["series_id", "open_time"]
    assert insp.get_pk_constraint("candle_series")["constrained_columns"] == ["id"]
    uniques = [u["column_names"] for u in insp.get_unique_constraints("candle_series")]
    assert uniques == [["exchange", "symbol", "timeframe"]]


def test_sqlite_connection_settings(sqlite_url):
    store = Store(sqlite_url)
    store.migrate()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 30_000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 1  # NORMAL
        ddl = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'candles'").scalar_one()
    assert "WITHOUT ROWID" in ddl
    store.dispose()


def test_sqlite_transactions_are_real(sqlite_url):
    """DDL and DML inside one transaction roll back together (pysqlite's implicit handling is off)."""
    store = Store(sqlite_url)
    try:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE probe (x INTEGER)")
            conn.exec_driver_sql("INSERT INTO probe VALUES (1)")
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    assert "probe" not in sa.inspect(store.engine).get_table_names()
    store.dispose()


def test_downgrade_removes_candles_with_their_partitions(store):
    from alembic import command

    from pipeline.store.migrate import alembic_config

    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-01", periods=3, freq="5min", tz="UTC"),
            **dict.fromkeys(["open", "high", "low", "close", "volume"], 1.0),
        }
    )
    store.upsert_candles(frame, exchange="binance", symbol="ETH/BTC", source="ccxt")
    store.upsert_candles(frame, exchange="binance", symbol="XRP/BTC", source="ccxt")
    cfg = alembic_config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(sa.inspect(store.engine).get_table_names()) <= {"alembic_version"}
    store.migrate()
    assert store.schema_diff() == []
    assert store.candle_summary("binance", "ETH/BTC")["rows"] == 0
