"""Parameter sweeps: the sweep, its chunks (what the merge step reads, whichever worker ran them) and the
configurations it tried (which count as trials for the deflated Sharpe of later runs).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Sweep ids are never reused (SQLite AUTOINCREMENT), and deleting a sweep deletes its chunks and
configurations for any client (ON DELETE CASCADE, plus an AFTER DELETE trigger on SQLite, as 0002 does).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
TS = sa.DateTime(timezone=True)
TRIGGER = "trg_sweeps_delete_children"


def upgrade() -> None:
    """Create the three sweep tables (and the SQLite cascade trigger)."""
    op.create_table(
        "sweeps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("strategy", sa.String(128), nullable=False),
        sa.Column("universe", JSONType, nullable=True),
        sa.Column("grid", JSONType, nullable=True),
        sa.Column("config", JSONType, nullable=True),
        sa.Column("plan", JSONType, nullable=True),
        sa.Column("n_configs", sa.Integer(), nullable=False),
        sa.Column("n_chunks", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("run_key", sa.String(64), nullable=True),
        sa.Column("request_key", sa.String(255), nullable=True),
        sa.Column("data_fingerprint", sa.Text(), nullable=True),
        sa.Column("code_version", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("n_trials", sa.Integer(), nullable=True),
        sa.Column("best_config_id", sa.Integer(), nullable=True),
        sa.Column("pbo", sa.Double(), nullable=True),
        sa.Column("deflated_sharpe", sa.Double(), nullable=True),
        sa.Column("spa_p_value", sa.Double(), nullable=True),
        sa.Column("summary", JSONType, nullable=True),
        sa.CheckConstraint("status IN ('running', 'success', 'failed')", name="ck_sweeps_status"),
        sa.PrimaryKeyConstraint("id", name="pk_sweeps"),
        sa.UniqueConstraint("run_key", name="uq_sweeps_run_key"),
        sa.UniqueConstraint("request_key", name="uq_sweeps_request_key"),
        sqlite_autoincrement=True,
    )
    for name in ("sweep_chunks", "sweep_configs"):
        key = "chunk_index" if name == "sweep_chunks" else "config_id"
        extra = (
            [sa.Column("n_configs", sa.Integer(), nullable=False), sa.Column("payload", sa.LargeBinary(), nullable=False),
             sa.Column("created_at", TS, nullable=False)]
            if name == "sweep_chunks"
            else [sa.Column("params", JSONType, nullable=True), sa.Column("config", JSONType, nullable=True),
                  sa.Column("metrics", JSONType, nullable=True)]
        )  # fmt: skip
        op.create_table(
            name,
            sa.Column("sweep_id", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column(key, sa.Integer(), autoincrement=False, nullable=False),
            *extra,
            sa.ForeignKeyConstraint(["sweep_id"], ["sweeps.id"], name=f"fk_{name}_sweep_id_sweeps", ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("sweep_id", key, name=f"pk_{name}"),
        )
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON sweeps FOR EACH ROW BEGIN "
            "DELETE FROM sweep_chunks WHERE sweep_id = OLD.id; DELETE FROM sweep_configs WHERE sweep_id = OLD.id; END"
        )


def downgrade() -> None:
    """Drop the sweep tables (children first)."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER}")
    op.drop_table("sweep_configs")
    op.drop_table("sweep_chunks")
    op.drop_table("sweeps")
