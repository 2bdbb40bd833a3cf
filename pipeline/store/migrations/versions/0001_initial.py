"""Initial schema: candle series and candles, strategy registry, backtest results, ranking snapshots.

Revision ID: 0001
Revises:
Create Date: 2025-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
TS = sa.DateTime(timezone=True)


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["run_id"], ["backtest_runs.id"], name=f"fk_{table}_run_id_backtest_runs", ondelete="CASCADE"
    )


def upgrade() -> None:
    """Create every table.

    Candles are keyed by (series_id, open_time) with `candle_series` holding (exchange, symbol, timeframe):
    a clustered WITHOUT ROWID table on SQLite, a LIST-partitioned table on PostgreSQL whose partitions
    (one per series) the store creates and attaches when a series is first written.
    """
    op.create_table(
        "candle_series",
        sa.Column("id", sa.Integer(), sa.Identity(), nullable=False),
        sa.Column("exchange", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.CheckConstraint("timeframe = '5m'", name="base_timeframe"),  # named by the convention
        sa.PrimaryKeyConstraint("id", name="pk_candle_series"),
        sa.UniqueConstraint(
            "exchange", "symbol", "timeframe", name="uq_candle_series_exchange_symbol_timeframe"
        ),
    )
    op.create_table(
        "candles",
        sa.Column("series_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("open_time", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("open", sa.Double(), nullable=False),
        sa.Column("high", sa.Double(), nullable=False),
        sa.Column("low", sa.Double(), nullable=False),
        sa.Column("close", sa.Double(), nullable=False),
        sa.Column("volume", sa.Double(), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.Column("ingested_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("series_id", "open_time", name="pk_candles"),
        sqlite_with_rowid=False,
        postgresql_partition_by="LIST (series_id)",
    )
    op.create_table(
        "strategies",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("parameters", JSONType, nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_strategies"),
    )
    op.create_table(
        "backtest_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("strategy", sa.String(128), nullable=False),
        sa.Column("config", JSONType, nullable=True),
        sa.Column("universe", JSONType, nullable=True),
        sa.Column("data_fingerprint", sa.Text(), nullable=True),
        sa.Column("code_version", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("request_key", sa.String(255), nullable=True),
        sa.CheckConstraint("kind IN ('scheduled', 'adhoc', 'request')", name="ck_backtest_runs_kind"),
        sa.CheckConstraint("status IN ('success', 'failed')", name="ck_backtest_runs_status"),
        sa.PrimaryKeyConstraint("id", name="pk_backtest_runs"),
        sa.UniqueConstraint("request_key", name="uq_backtest_runs_request_key"),
    )
    op.create_index("ix_backtest_runs_strategy_created_at", "backtest_runs", ["strategy", "created_at"])
    op.create_table(
        "backtest_trades",
        sa.Column("run_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("decision_time", sa.BigInteger(), nullable=True),
        sa.Column("entry_time", sa.BigInteger(), nullable=True),
        sa.Column("exit_time", sa.BigInteger(), nullable=True),
        sa.Column("direction", sa.String(16), nullable=True),
        sa.Column("entry_price", sa.Double(), nullable=True),
        sa.Column("exit_price", sa.Double(), nullable=True),
        sa.Column("return_pct", sa.Double(), nullable=True),
        sa.Column("max_drawdown", sa.Double(), nullable=True),
        sa.Column("weight", sa.Double(), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("void", sa.Boolean(), nullable=False),
        sa.Column("features", JSONType, nullable=True),
        _run_fk("backtest_trades"),
        sa.PrimaryKeyConstraint("run_id", "seq", name="pk_backtest_trades"),
    )
    op.create_table(
        "backtest_windows",
        sa.Column("run_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("decision_time", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("n_selected", sa.Integer(), nullable=False),
        sa.Column("selected", sa.Text(), nullable=False),
        sa.Column("window_return", sa.Double(), nullable=True),
        _run_fk("backtest_windows"),
        sa.PrimaryKeyConstraint("run_id", "decision_time", name="pk_backtest_windows"),
    )
    op.create_table(
        "strategy_performance",
        sa.Column("run_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("metric", sa.String(128), nullable=False),
        sa.Column("strategy", sa.String(128), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        _run_fk("strategy_performance"),
        sa.PrimaryKeyConstraint("run_id", "metric", name="pk_strategy_performance"),
    )
    op.create_index("ix_strategy_performance_strategy_metric", "strategy_performance", ["strategy", "metric"])
    op.create_table(
        "ranking_snapshots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("strategy", sa.String(128), nullable=False),
        sa.Column("decision_time", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ranking_snapshots"),
    )
    op.create_index(
        "ix_ranking_snapshots_strategy_decision_time", "ranking_snapshots", ["strategy", "decision_time"]
    )
    op.create_table(
        "ranking_rows",
        sa.Column("snapshot_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("eligible", sa.Boolean(), nullable=False),
        sa.Column("selected", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=True),
        sa.Column("features", JSONType, nullable=True),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["ranking_snapshots.id"],
            name="fk_ranking_rows_snapshot_id_ranking_snapshots",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "symbol", name="pk_ranking_rows"),
    )


def downgrade() -> None:
    """Drop every table (children first)."""
    for table in (
        "ranking_rows",
        "ranking_snapshots",
        "strategy_performance",
        "backtest_windows",
        "backtest_trades",
        "backtest_runs",
        "strategies",
        "candles",  # drops its partitions too
        "candle_series",
    ):
        op.drop_table(table)
