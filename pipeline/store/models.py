"""Table definitions (SQLAlchemy 2 typed ORM models); the schema itself changes only via migrations.

Conventions:
- Market times (`open_time`, `decision_time`, `entry_time`, `exit_time`) are BIGINT epoch milliseconds
  (UTC), the same key the engine uses; bookkeeping times (`ingested_at`, `created_at`, ...) are
  timezone-aware timestamps.
- Candles are keyed by (series_id, open_time); `candle_series` maps (exchange, symbol, timeframe) to the
  series id, so the logical key stays (exchange, symbol, timeframe, open_time) with a narrow index.
- Only base 5m candles are stored (a CHECK constraint on the series enforces it); features never are.
- Per-run performance is stored long: one `strategy_performance` row per (run, metric) with a nullable
  float value, so strategies can be compared with plain SQL. Nested metric dicts are flattened to dotted
  names (`ci.low`).
- JSON columns use the portable `JSON` type (JSONB on PostgreSQL).
- Child rows (trades, windows, performance, ranking rows) are deleted with their parent (ON DELETE
  CASCADE), and on SQLite also by AFTER DELETE triggers, because clients such as the sqlite3 CLI run
  with foreign keys off. Run and snapshot ids are never reused (SQLite AUTOINCREMENT; PostgreSQL
  sequences never reuse), so a run deleted by hand cannot hand its id, and its leftovers, to the next.
- Paper trading (migration 0003): `paper_decisions` (one per strategy and decision time), their
  `paper_trades`, and `paper_candles`, the first-seen version of every candle they read; sweeps
  (migration 0004): `sweeps`, `sweep_chunks`, `sweep_configs`. Those tables are defined in
  `models_paper_sweeps.py` and re-exported here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

BASE_TIMEFRAME = "5m"
RUN_KINDS = ("scheduled", "adhoc", "request")
RUN_STATUSES = ("success", "failed")
PAPER_MODES = ("live", "late", "caught_up")
PAPER_STATUSES = ("open", "settled", "void")
SWEEP_STATUSES = ("running", "success", "failed")

#: widths of the symbol and exchange columns; the universe file is validated against them at load
SYMBOL_MAX_CHARS = 64
EXCHANGE_MAX_CHARS = 64

JSONType = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
Timestamp = sa.DateTime(timezone=True)
Key = sa.String(128)


class Base(DeclarativeBase):
    """Declarative base; `Base.metadata` is the migrations' target."""

    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class CandleSeries(Base):
    """One candle series: the (exchange, symbol, timeframe) part of the logical candle key, numbered once.

    Candles refer to their series by this small integer, so the candle key and its index stay narrow.
    """

    __tablename__ = "candle_series"
    __table_args__ = (
        sa.UniqueConstraint("exchange", "symbol", "timeframe"),
        sa.CheckConstraint(f"timeframe = '{BASE_TIMEFRAME}'", name="base_timeframe"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    exchange: Mapped[str] = mapped_column(sa.String(EXCHANGE_MAX_CHARS))
    symbol: Mapped[str] = mapped_column(sa.String(SYMBOL_MAX_CHARS))
    timeframe: Mapped[str] = mapped_column(sa.String(8))


class Candle(Base):
    """One base (5m) OHLCV candle, keyed by (series, open time); the primary key is the range-read index.

    The logical key (exchange, symbol, timeframe, open_time) is unique because `candle_series` is. On
    PostgreSQL the table is LIST-partitioned by `series_id`, one partition `candles_s<id>` per series
    (created by the store when the series is first written, see `candles`). There is deliberately no
    foreign key to `candle_series`: it would add a trigger call per inserted row; series ids only ever
    come from `candle_series` and each PostgreSQL partition carries a CHECK pinning its series id.
    `source`, `synthetic` and `ingested_at` are per candle (the last write that changed it).
    """

    __tablename__ = "candles"
    __table_args__ = ({"sqlite_with_rowid": False, "postgresql_partition_by": "LIST (series_id)"},)

    series_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    open_time: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    open: Mapped[float] = mapped_column(sa.Double)
    high: Mapped[float] = mapped_column(sa.Double)
    low: Mapped[float] = mapped_column(sa.Double)
    close: Mapped[float] = mapped_column(sa.Double)
    volume: Mapped[float] = mapped_column(sa.Double)
    source: Mapped[str] = mapped_column(sa.String(64))
    synthetic: Mapped[bool] = mapped_column(sa.Boolean)
    ingested_at: Mapped[datetime] = mapped_column(Timestamp)


class Strategy(Base):
    """Strategy registry: what exists, with which parameters, and whether it runs."""

    __tablename__ = "strategies"

    name: Mapped[str] = mapped_column(Key, primary_key=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    parameters: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    active: Mapped[bool] = mapped_column(sa.Boolean)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class BacktestRun(Base):
    """One walk-forward run, successful or failed, with everything needed to reproduce it."""

    __tablename__ = "backtest_runs"
    __table_args__ = (
        sa.CheckConstraint(f"kind IN {RUN_KINDS!r}", name="kind"),
        sa.CheckConstraint(f"status IN {RUN_STATUSES!r}", name="status"),
        sa.Index("ix_backtest_runs_strategy_created_at", "strategy", "created_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    strategy: Mapped[str] = mapped_column(Key)
    config: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    universe: Mapped[list[str] | None] = mapped_column(JSONType)
    data_fingerprint: Mapped[str | None] = mapped_column(sa.Text)
    code_version: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16))
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    request_key: Mapped[str | None] = mapped_column(sa.String(255), unique=True)


def _run_fk() -> sa.ForeignKey:
    return sa.ForeignKey("backtest_runs.id", ondelete="CASCADE")


class BacktestTrade(Base):
    """One (possibly void) trade of a run; `seq` keeps the engine's row order."""

    __tablename__ = "backtest_trades"

    run_id: Mapped[int] = mapped_column(_run_fk(), primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    symbol: Mapped[str] = mapped_column(sa.String(SYMBOL_MAX_CHARS))
    decision_time: Mapped[int | None] = mapped_column(sa.BigInteger)
    entry_time: Mapped[int | None] = mapped_column(sa.BigInteger)
    exit_time: Mapped[int | None] = mapped_column(sa.BigInteger)
    direction: Mapped[str | None] = mapped_column(sa.String(16))
    entry_price: Mapped[float | None] = mapped_column(sa.Double)
    exit_price: Mapped[float | None] = mapped_column(sa.Double)
    return_pct: Mapped[float | None] = mapped_column(sa.Double)
    max_drawdown: Mapped[float | None] = mapped_column(sa.Double)
    weight: Mapped[float | None] = mapped_column(sa.Double)
    rank: Mapped[int | None] = mapped_column(sa.Integer)
    score: Mapped[float | None] = mapped_column(sa.Double)
    void: Mapped[bool] = mapped_column(sa.Boolean)
    features: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class BacktestWindow(Base):
    """One decision time of a run: what was selected and the window's portfolio return."""

    __tablename__ = "backtest_windows"

    run_id: Mapped[int] = mapped_column(_run_fk(), primary_key=True, autoincrement=False)
    decision_time: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    n_selected: Mapped[int] = mapped_column(sa.Integer)
    selected: Mapped[str] = mapped_column(sa.Text)
    window_return: Mapped[float | None] = mapped_column(sa.Double)


class StrategyPerformance(Base):
    """Per-run performance rollup, one row per metric (NULL when undefined, e.g. no losses)."""

    __tablename__ = "strategy_performance"
    __table_args__ = (sa.Index("ix_strategy_performance_strategy_metric", "strategy", "metric"),)

    run_id: Mapped[int] = mapped_column(_run_fk(), primary_key=True, autoincrement=False)
    metric: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    strategy: Mapped[str] = mapped_column(Key)
    value: Mapped[float | None] = mapped_column(sa.Double)


class RankingSnapshot(Base):
    """The cross-sectional ranking of one strategy at one decision time."""

    __tablename__ = "ranking_snapshots"
    __table_args__ = (
        sa.Index("ix_ranking_snapshots_strategy_decision_time", "strategy", "decision_time"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    strategy: Mapped[str] = mapped_column(Key)
    decision_time: Mapped[int] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class RankingRow(Base):
    """One symbol of a ranking snapshot, with the reasons and the feature values behind it."""

    __tablename__ = "ranking_rows"

    snapshot_id: Mapped[int] = mapped_column(
        sa.ForeignKey("ranking_snapshots.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    symbol: Mapped[str] = mapped_column(sa.String(SYMBOL_MAX_CHARS), primary_key=True)
    seq: Mapped[int] = mapped_column(sa.Integer)
    rank: Mapped[int | None] = mapped_column(sa.Integer)
    score: Mapped[float | None] = mapped_column(sa.Double)
    eligible: Mapped[bool] = mapped_column(sa.Boolean)
    selected: Mapped[bool] = mapped_column(sa.Boolean)
    reasons: Mapped[str | None] = mapped_column(sa.Text)
    features: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


# paper trading and sweep tables live in their own module; imported here so `metadata` holds every table
from pipeline.store.models_paper_sweeps import (  # noqa: E402,F401 - needs Base above; re-exported
    PaperCandle,
    PaperDecision,
    PaperTrade,
    Sweep,
    SweepChunk,
    SweepConfig,
)

#: parent table -> (child tables, the child column holding the parent id): the cascade triggers
CASCADE_FAMILIES: dict[str, tuple[tuple[str, ...], str]] = {
    "backtest_runs": (("backtest_trades", "backtest_windows", "strategy_performance"), "run_id"),
    "ranking_snapshots": (("ranking_rows",), "snapshot_id"),
    "paper_decisions": (("paper_trades",), "decision_id"),
    "sweeps": (("sweep_chunks", "sweep_configs"), "sweep_id"),
}


def _cascade_trigger(parent: str) -> sa.DDL:
    """SQLite AFTER DELETE trigger deleting a parent's children (the same DDL as migrations 0002 to 0004)."""
    children, key = CASCADE_FAMILIES[parent]
    body = " ".join(f"DELETE FROM {child} WHERE {key} = OLD.id;" for child in children)
    ddl = (
        f"CREATE TRIGGER trg_{parent}_delete_children AFTER DELETE ON {parent} FOR EACH ROW BEGIN {body} END"
    )
    return sa.DDL(ddl).execute_if(dialect="sqlite")


for _parent in CASCADE_FAMILIES:
    # after the whole schema exists (a trigger body names the child tables)
    sa.event.listen(Base.metadata, "after_create", _cascade_trigger(_parent))

metadata = Base.metadata
