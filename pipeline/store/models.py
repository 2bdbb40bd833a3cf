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
  `paper_trades`, and `paper_candles`, the first-seen version of every candle they read.
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


class PaperDecision(Base):
    """One paper decision: a strategy's picks at one decision time, recorded exactly once (unique key).

    `recorded_at` is the tick's clock; `mode` says whether the tick of that decision time recorded it
    in time (`live`), late (`late`), or a later tick caught it up from the stored candles (`caught_up`).
    `history_start` is where the feature history began and `inputs` fingerprints, per symbol, the
    candles the decision read (`{"n": rows, "sha": hex}`), so a later difference can be traced to data.
    `window_return` and `settled_at` are set once every trade of the decision is settled.
    """

    __tablename__ = "paper_decisions"
    __table_args__ = (
        sa.UniqueConstraint("strategy", "decision_time"),
        sa.CheckConstraint(f"mode IN {PAPER_MODES!r}", name="mode"),
        sa.Index("ix_paper_decisions_decision_time", "decision_time"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    strategy: Mapped[str] = mapped_column(Key)
    decision_time: Mapped[int] = mapped_column(sa.BigInteger)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    config: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    exchange: Mapped[str] = mapped_column(sa.String(EXCHANGE_MAX_CHARS))
    history_start: Mapped[int] = mapped_column(sa.BigInteger)
    inputs: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    n_eligible: Mapped[int] = mapped_column(sa.Integer)
    n_candidates: Mapped[int] = mapped_column(sa.Integer)
    n_selected: Mapped[int] = mapped_column(sa.Integer)
    mode: Mapped[str] = mapped_column(sa.String(16))
    recorded_at: Mapped[datetime] = mapped_column(Timestamp)
    note: Mapped[str | None] = mapped_column(sa.Text)
    run_id: Mapped[str | None] = mapped_column(sa.String(64))
    window_return: Mapped[float | None] = mapped_column(sa.Double)
    settled_at: Mapped[datetime | None] = mapped_column(Timestamp)


class PaperTrade(Base):
    """One pick of a paper decision: entry at the decision time, then its settlement (SPEC section 3).

    `status` is `open` until the window has closed and its candles are stored, then `settled` or `void`
    (no candle in the window). `window_inputs` fingerprints the window candles the settlement read;
    `previous` keeps the earlier settlements a re-settlement replaced (after a candle revision).
    """

    __tablename__ = "paper_trades"
    __table_args__ = (
        sa.CheckConstraint(f"status IN {PAPER_STATUSES!r}", name="status"),
        sa.Index("ix_paper_trades_status", "status"),
    )

    decision_id: Mapped[int] = mapped_column(
        sa.ForeignKey("paper_decisions.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    symbol: Mapped[str] = mapped_column(sa.String(SYMBOL_MAX_CHARS), primary_key=True)
    rank: Mapped[int | None] = mapped_column(sa.Integer)
    weight: Mapped[float] = mapped_column(sa.Double)
    score: Mapped[float | None] = mapped_column(sa.Double)
    entry_price: Mapped[float] = mapped_column(sa.Double)
    features: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(sa.String(16))
    exit_time: Mapped[int | None] = mapped_column(sa.BigInteger)
    exit_price: Mapped[float | None] = mapped_column(sa.Double)
    return_pct: Mapped[float | None] = mapped_column(sa.Double)
    gross_return_pct: Mapped[float | None] = mapped_column(sa.Double)
    max_drawdown: Mapped[float | None] = mapped_column(sa.Double)
    n_candles: Mapped[int | None] = mapped_column(sa.Integer)
    window_inputs: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    settled_at: Mapped[datetime | None] = mapped_column(Timestamp)
    previous: Mapped[list[Any] | None] = mapped_column(JSONType)


class PaperCandle(Base):
    """The first-seen version of every candle a paper decision or settlement read (the revision ledger).

    Keyed like `candles`; `sha` hashes the five values. A later ingestion that changes, removes or fills
    in a candle inside the ledger's range shows up as a difference against it (`pipeline/store/paper.py`).
    """

    __tablename__ = "paper_candles"
    __table_args__ = ({"sqlite_with_rowid": False},)

    series_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    open_time: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    open: Mapped[float] = mapped_column(sa.Double)
    high: Mapped[float] = mapped_column(sa.Double)
    low: Mapped[float] = mapped_column(sa.Double)
    close: Mapped[float] = mapped_column(sa.Double)
    volume: Mapped[float] = mapped_column(sa.Double)
    sha: Mapped[str] = mapped_column(sa.String(16))
    first_seen_at: Mapped[datetime] = mapped_column(Timestamp)


class Sweep(Base):
    """One parameter sweep: its grid, base config and universe, then its overfitting figures once merged.

    A sweep is planned by one step, its configurations run as chunks in separate steps (each writes its
    `sweep_chunks` row), and one step merges them (`pbo`, `deflated_sharpe`, `spa_p_value`, best config).
    `run_key` (the Dagster root run id) lets those steps find their sweep; `request_key` makes a request
    file's sweep exactly-once.
    """

    __tablename__ = "sweeps"
    __table_args__ = (
        sa.CheckConstraint(f"status IN {SWEEP_STATUSES!r}", name="status"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    strategy: Mapped[str] = mapped_column(Key)
    universe: Mapped[list[str] | None] = mapped_column(JSONType)
    grid: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    config: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    plan: Mapped[list[Any] | None] = mapped_column(JSONType)
    n_configs: Mapped[int] = mapped_column(sa.Integer)
    n_chunks: Mapped[int] = mapped_column(sa.Integer)
    status: Mapped[str] = mapped_column(sa.String(16))
    error: Mapped[str | None] = mapped_column(sa.Text)
    run_key: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    request_key: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    data_fingerprint: Mapped[str | None] = mapped_column(sa.Text)
    code_version: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    n_trials: Mapped[int | None] = mapped_column(sa.Integer)
    best_config_id: Mapped[int | None] = mapped_column(sa.Integer)
    pbo: Mapped[float | None] = mapped_column(sa.Double)
    deflated_sharpe: Mapped[float | None] = mapped_column(sa.Double)
    spa_p_value: Mapped[float | None] = mapped_column(sa.Double)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


def _sweep_fk() -> sa.ForeignKey:
    return sa.ForeignKey("sweeps.id", ondelete="CASCADE")


class SweepChunk(Base):
    """One chunk of a sweep's configurations, as the engine's `SweepChunk` (pickled by `pipeline.store`,
    which alone writes it): what the merge step reads, whichever worker ran the chunk."""

    __tablename__ = "sweep_chunks"

    sweep_id: Mapped[int] = mapped_column(_sweep_fk(), primary_key=True, autoincrement=False)
    chunk_index: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    n_configs: Mapped[int] = mapped_column(sa.Integer)
    payload: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class SweepConfig(Base):
    """One configuration a sweep tried: its parameters, the full run config (what counts as a trial for
    the deflated Sharpe of later runs) and its headline metrics."""

    __tablename__ = "sweep_configs"

    sweep_id: Mapped[int] = mapped_column(_sweep_fk(), primary_key=True, autoincrement=False)
    config_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    config: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


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
