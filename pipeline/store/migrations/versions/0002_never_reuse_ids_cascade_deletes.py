"""Result ids are never reused and deleting a run or a ranking snapshot deletes its rows, for any client.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

Why: SQLite reuses the highest rowid after a delete, and clients such as the sqlite3 CLI run with
foreign keys off, so a run deleted by hand left its trades, windows and metrics behind and the next run
got the same id: every later `record_backtest` collided with those orphans. Now, on SQLite:
- `backtest_runs.id` and `ranking_snapshots.id` are AUTOINCREMENT (never reused; the tables are rebuilt
  in batch mode, children stashed first so the rebuild's DROP cannot cascade into them);
- AFTER DELETE triggers on both parents delete the child rows, with or without foreign keys;
- orphan rows already left by such deletes are removed, and the id sequence starts above every id
  seen (orphans included), so not even those ids come back.
PostgreSQL needs no change: serial ids are never reused and the child keys cascade since 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: parent table -> (child tables, the child column holding the parent id)
FAMILIES: dict[str, tuple[tuple[str, ...], str]] = {
    "backtest_runs": (("backtest_trades", "backtest_windows", "strategy_performance"), "run_id"),
    "ranking_snapshots": (("ranking_rows",), "snapshot_id"),
}


def trigger_name(parent: str) -> str:
    return f"trg_{parent}_delete_children"


def trigger_ddl(parent: str) -> str:
    """The SQLite trigger that deletes a parent's child rows (models.py creates the same one)."""
    children, key = FAMILIES[parent]
    body = " ".join(f"DELETE FROM {child} WHERE {key} = OLD.id;" for child in children)
    return f"CREATE TRIGGER {trigger_name(parent)} AFTER DELETE ON {parent} FOR EACH ROW BEGIN {body} END"


def _rebuild(parent: str, autoincrement: bool) -> None:
    """Recreate `parent` (batch mode) with or without AUTOINCREMENT, keeping every row of the family.

    With foreign keys on, dropping the old parent would cascade into the children, so their rows are
    stashed in plain tables and the children emptied first, then restored with the same ids.
    """
    children, _ = FAMILIES[parent]
    for child in children:
        op.execute(f"CREATE TABLE _c4h_0002_{child} AS SELECT * FROM {child}")
        op.execute(f"DELETE FROM {child}")
    with op.batch_alter_table(
        parent, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass
    for child in children:
        op.execute(f"INSERT INTO {child} SELECT * FROM _c4h_0002_{child}")
        op.execute(f"DROP TABLE _c4h_0002_{child}")


def _highest_id(parent: str) -> int:
    """The highest id the family has used: the parent's ids and the ids its child rows refer to."""
    children, key = FAMILIES[parent]
    parts = [f"SELECT max(id) AS m FROM {parent}"] + [f"SELECT max({key}) AS m FROM {c}" for c in children]
    query = f"SELECT coalesce(max(m), 0) FROM ({' UNION ALL '.join(parts)})"
    return int(op.get_bind().execute(sa.text(query)).scalar_one())


def _start_sequence_above(parent: str, highest: int) -> None:
    """Make AUTOINCREMENT hand out ids above `highest` (sqlite_sequence holds the last id used)."""
    bind = op.get_bind()
    stored = bind.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = :n"), {"n": parent}).scalar()
    if stored is None:
        bind.execute(
            sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:n, :s)"), {"n": parent, "s": highest}
        )
    elif stored < highest:
        bind.execute(
            sa.text("UPDATE sqlite_sequence SET seq = :s WHERE name = :n"), {"n": parent, "s": highest}
        )


def upgrade() -> None:
    """SQLite: delete orphans, rebuild the parents with AUTOINCREMENT, add the cascade triggers."""
    if op.get_bind().dialect.name != "sqlite":
        return
    for parent, (children, key) in FAMILIES.items():
        highest = _highest_id(parent)
        for child in children:
            op.execute(f"DELETE FROM {child} WHERE {key} NOT IN (SELECT id FROM {parent})")
        _rebuild(parent, autoincrement=True)
        op.execute(trigger_ddl(parent))
        _start_sequence_above(parent, highest)


def downgrade() -> None:
    """SQLite: drop the triggers and rebuild the parents without AUTOINCREMENT."""
    if op.get_bind().dialect.name != "sqlite":
        return
    for parent in FAMILIES:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger_name(parent)}")
        _rebuild(parent, autoincrement=False)
    op.get_bind().execute(
        sa.text("DELETE FROM sqlite_sequence WHERE name IN ('backtest_runs', 'ranking_snapshots')")
    )
