"""Deleting runs or ranking snapshots by hand (any client, foreign keys on or off) leaves no orphan rows,
and ids are never reused, so later writes keep working (migration 0002).

The issue: the sqlite3 CLI runs with foreign keys off and SQLite reused the highest id, so after a run was
deleted by hand its trades/windows/metrics stayed and the next `record_backtest` got the same id and
failed on them.
"""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command

from pipeline.store import Store
from pipeline.store.migrate import alembic_config

T = pd.Timestamp("2024-03-01 10:00", tz="UTC")
CHILDREN = ("backtest_trades", "backtest_windows", "strategy_performance")


def record(store: Store) -> int:
    trades = pd.DataFrame({"decision_time": [T, T], "symbol": ["ETH/BTC", "XRP/BTC"], "entry_time": [T, T],
                           "exit_time": [T, T], "entry_price": [1.0, 2.0], "exit_price": [1.1, 2.2],
                           "return_pct": [0.1, 0.1], "void": [False, False]})  # fmt: skip
    windows = pd.DataFrame({"decision_time": [T], "n_selected": [2], "selected": ["ETH/BTC,XRP/BTC"],
                            "window_return": [0.1]})  # fmt: skip
    return store.record_backtest(
        strategy="momentum_rank", kind="scheduled", config={"w": 4}, universe=["ETH/BTC", "XRP/BTC"],
        data_fingerprint="f", code_version="c", trades=trades, windows=windows,
        metrics={"trade_count": 2, "win_rate": 1.0},
    )  # fmt: skip


def snapshot(store: Store) -> int:
    ranking = pd.DataFrame({"symbol": ["ETH/BTC", "XRP/BTC"], "rank": [1, 2], "score": [2.0, 1.0],
                            "eligible": [True, True], "selected": [True, False]})  # fmt: skip
    return store.save_ranking_snapshot(strategy="momentum_rank", decision_time=T, ranking=ranking)


def counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {t: conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one()
                for t in ("backtest_runs", *CHILDREN, "ranking_snapshots", "ranking_rows")}  # fmt: skip


def orphans(store: Store) -> int:
    with store.engine.connect() as conn:
        n = sum(conn.exec_driver_sql(f"SELECT count(*) FROM {t} WHERE run_id NOT IN (SELECT id FROM backtest_runs)")
                .scalar_one() for t in CHILDREN)  # fmt: skip
        return (
            n
            + conn.exec_driver_sql(
                "SELECT count(*) FROM ranking_rows WHERE snapshot_id NOT IN (SELECT id FROM ranking_snapshots)"
            ).scalar_one()
        )


def sqlite_path(store: Store) -> str:
    return sa.make_url(store.url).database


def test_a_run_deleted_with_the_sqlite3_cli_leaves_nothing_and_its_id_is_not_reused(sqlite_url):
    store = Store(sqlite_url)
    store.migrate()
    first, second = record(store), record(store)
    snap = snapshot(store)
    store.dispose()
    cli = sqlite3.connect(sqlite_path(store))  # a plain client: foreign keys are OFF
    assert cli.execute("PRAGMA foreign_keys").fetchone() == (0,)
    cli.execute("DELETE FROM backtest_runs WHERE id = ?", (second,))
    cli.execute("DELETE FROM ranking_snapshots WHERE id = ?", (snap,))
    cli.commit()
    cli.close()
    store = Store(sqlite_url)
    assert orphans(store) == 0
    assert counts(store) == {"backtest_runs": 1, "backtest_trades": 2, "backtest_windows": 1,
                             "strategy_performance": 2, "ranking_snapshots": 0, "ranking_rows": 0}  # fmt: skip
    third = record(store)  # used to fail: id 2 again, colliding with run 2's leftover trades
    assert third > second > first
    assert snapshot(store) > snap
    assert len(store.backtest_trades(third)) == 2 and orphans(store) == 0
    store.dispose()


@pytest.mark.postgres
def test_postgres_cascades_and_never_reuses_ids(postgres_url):
    store = Store(postgres_url)
    store.migrate()
    first, second = record(store), record(store)
    snap = snapshot(store)
    with store.engine.begin() as conn:  # plain SQL, as from psql
        conn.exec_driver_sql(f"DELETE FROM backtest_runs WHERE id = {second}")
        conn.exec_driver_sql(f"DELETE FROM ranking_snapshots WHERE id = {snap}")
    assert orphans(store) == 0 and counts(store)["backtest_trades"] == 2
    assert record(store) > second > first and snapshot(store) > snap
    store.dispose()


def _at(store: Store, revision: str, down: bool = False) -> None:
    cfg = alembic_config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def test_upgrading_an_old_sqlite_store_removes_orphans_keeps_data_and_skips_used_ids(sqlite_url):
    store = Store(sqlite_url)
    _at(store, "0001")
    ids = [record(store) for _ in range(3)]
    snap = snapshot(store)
    store.dispose()
    cli = sqlite3.connect(sqlite_path(store))
    cli.execute("DELETE FROM backtest_runs WHERE id = ?", (ids[2],))  # 0001: leaves orphans behind
    cli.commit()
    cli.close()
    store = Store(sqlite_url)
    assert orphans(store) == 5  # 2 trades, 1 window, 2 metrics
    store.migrate()
    # upgraded to the head revision (0002 and every later migration) with models and schema equal
    assert store.is_current() and store.schema_revision() >= "0002" and store.schema_diff() == []
    assert orphans(store) == 0
    assert counts(store)["backtest_runs"] == 2 and counts(store)["ranking_rows"] == 2
    assert len(store.backtest_trades(ids[0])) == 2 and not store.latest_ranking("momentum_rank").empty
    assert record(store) == ids[2] + 1  # the orphans' id is not handed out again
    assert snapshot(store) == snap + 1
    store.dispose()


def test_downgrade_and_upgrade_keep_every_row(db_url):
    store = Store(db_url)
    store.migrate()
    run, snap = record(store), snapshot(store)
    before = counts(store)
    _at(store, "0001", down=True)
    assert counts(store) == before
    store.migrate()
    assert counts(store) == before and store.schema_diff() == []
    assert len(store.backtest_trades(run)) == 2 and snap
    store.dispose()
