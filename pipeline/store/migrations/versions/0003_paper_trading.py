"""Paper trading: decisions (exactly one per strategy and decision time), their trades, and the ledger of
the first-seen version of every candle a decision or settlement read.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09

Why: paper trades must be recorded once whatever the schedule does (the unique key is the guard), be
settled later in place (status, exit, return), and stay explainable when an exchange revises a candle
after a decision used it (`paper_candles` keeps the values first read; see docs/paper.md). Decision ids
are never reused (SQLite AUTOINCREMENT), and deleting a decision deletes its trades for any client
(foreign key with ON DELETE CASCADE, plus an AFTER DELETE trigger on SQLite, as migration 0002 does).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
TS = sa.DateTime(timezone=True)
TRIGGER = "trg_paper_decisions_delete_children"


def upgrade() -> None:
    """Create the three paper tables (and the SQLite cascade trigger)."""
    op.create_table(
        "paper_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("strategy", sa.String(128), nullable=False),
        sa.Column("decision_time", sa.BigInteger(), nullable=False),
        sa.Column("params", JSONType, nullable=True),
        sa.Column("config", JSONType, nullable=True),
        sa.Column("exchange", sa.String(64), nullable=False),
        sa.Column("history_start", sa.BigInteger(), nullable=False),
        sa.Column("inputs", JSONType, nullable=True),
        sa.Column("n_eligible", sa.Integer(), nullable=False),
        sa.Column("n_candidates", sa.Integer(), nullable=False),
        sa.Column("n_selected", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("window_return", sa.Double(), nullable=True),
        sa.Column("settled_at", TS, nullable=True),
        sa.CheckConstraint("mode IN ('live', 'late', 'caught_up')", name="ck_paper_decisions_mode"),
        sa.PrimaryKeyConstraint("id", name="pk_paper_decisions"),
        sa.UniqueConstraint("strategy", "decision_time", name="uq_paper_decisions_strategy_decision_time"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_paper_decisions_decision_time", "paper_decisions", ["decision_time"])
    op.create_table(
        "paper_trades",
        sa.Column("decision_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("weight", sa.Double(), nullable=False),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("entry_price", sa.Double(), nullable=False),
        sa.Column("features", JSONType, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("exit_time", sa.BigInteger(), nullable=True),
        sa.Column("exit_price", sa.Double(), nullable=True),
        sa.Column("return_pct", sa.Double(), nullable=True),
        sa.Column("gross_return_pct", sa.Double(), nullable=True),
        sa.Column("max_drawdown", sa.Double(), nullable=True),
        sa.Column("n_candles", sa.Integer(), nullable=True),
        sa.Column("window_inputs", JSONType, nullable=True),
        sa.Column("settled_at", TS, nullable=True),
        sa.Column("previous", JSONType, nullable=True),
        sa.CheckConstraint("status IN ('open', 'settled', 'void')", name="ck_paper_trades_status"),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["paper_decisions.id"], name="fk_paper_trades_decision_id_paper_decisions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("decision_id", "symbol", name="pk_paper_trades"),
    )
    op.create_index("ix_paper_trades_status", "paper_trades", ["status"])
    op.create_table(
        "paper_candles",
        sa.Column("series_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("open_time", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("open", sa.Double(), nullable=False),
        sa.Column("high", sa.Double(), nullable=False),
        sa.Column("low", sa.Double(), nullable=False),
        sa.Column("close", sa.Double(), nullable=False),
        sa.Column("volume", sa.Double(), nullable=False),
        sa.Column("sha", sa.String(16), nullable=False),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("series_id", "open_time", name="pk_paper_candles"),
        sqlite_with_rowid=False,
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON paper_decisions FOR EACH ROW BEGIN "
            "DELETE FROM paper_trades WHERE decision_id = OLD.id; END"
        )


def downgrade() -> None:
    """Drop the paper tables (children first)."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER}")
    op.drop_table("paper_candles")
    op.drop_index("ix_paper_trades_status", table_name="paper_trades")
    op.drop_table("paper_trades")
    op.drop_index("ix_paper_decisions_decision_time", table_name="paper_decisions")
    op.drop_table("paper_decisions")
