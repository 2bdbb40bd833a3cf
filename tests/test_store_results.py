"""Results store: strategy registry, backtest runs (atomic, exactly-once requests), ranking snapshots."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline.store import RequestAlreadyRecorded, Store
from pipeline.store import runs as results_mod

UTC = "UTC"
T = pd.Timestamp("2024-03-01 10:00", tz=UTC)
H = pd.Timedelta("1h")


def count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()


def all_counts(store: Store) -> dict[str, int]:
    tables = ["backtest_runs", "backtest_trades", "backtest_windows", "strategy_performance"]
    return {t: count(store, t) for t in tables}


def trades_frame() -> pd.DataFrame:
    """Three engine trades at two decision times; the third is void (no candle in its window)."""
    return pd.DataFrame(
        {
            "decision_time": [T, T, T + 2 * H],
            "symbol": ["ETH/BTC", "XRP/BTC", "ETH/BTC"],
            "entry_time": [T, T, T + 2 * H],
            "exit_time": pd.Series([T + 4 * H, T + 4 * H, pd.NaT], dtype="datetime64[ns, UTC]"),
            "direction": ["long", "long", "long"],
            "entry_price": [0.05, 1.25e-5, 0.051],
            "exit_price": [0.0505, 1.2e-5, np.nan],
            "return_pct": [0.008, -0.042, np.nan],
            "max_drawdown": [-0.01, -0.05, np.nan],
            "weight": [0.5, 0.5, 1.0],
            "rank": np.array([1, 2, 1], dtype=np.int64),
            "score": [np.float32(2.5), 1.0, 0.75],
            "void": [False, False, True],
            "rsi": [55.5, 61.0, np.nan],
            "atr_pct": [0.012, 0.02, 0.011],
        }
    )


def windows_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "decision_time": [T, T + 2 * H],
            "n_selected": [2, 1],
            "selected": [["ETH/BTC", "XRP/BTC"], "ETH/BTC"],
            "window_return": [-0.017, np.nan],
            "ignored_extra": [1, 2],
        }
    )


METRICS = {
    "trade_count": np.int64(3),
    "win_rate": 0.5,
    "profit_factor": None,
    "avg_return": np.float64(-0.017),
    "median_return": float("nan"),
    "ci": {"low": -0.1, "high": np.float32(0.25)},
}


def record(store: Store, **overrides) -> int:
    kwargs = dict(
        strategy="macd_rsi_confluence",
        kind="scheduled",
        config={"window_hours": 4, "fee_bps": np.float64(10.0), "start": T, "nan": float("nan")},
        universe=["ETH/BTC", "XRP/BTC"],
        data_fingerprint="sha256:abc",
        code_version="git:1234567",
        trades=trades_frame(),
        windows=windows_frame(),
        metrics=METRICS,
    )
    kwargs.update(overrides)
    return store.record_backtest(**kwargs)


# --- strategies ---------------------------------------------------------------------------------------


def test_strategy_registry_sync(store):
    store.sync_strategies(
        [
            {
                "name": "macd_rsi_confluence",
                "description": "baseline",
                "parameters": {"rsi_low": 40},
                "active": True,
            },
            {
                "name": "momentum_rank",
                "description": "alt",
                "parameters": {"lookback": np.int64(24)},
                "active": False,
            },
        ]
    )
    active = store.active_strategies()
    assert [s["name"] for s in active] == ["macd_rsi_confluence"]
    assert active[0]["description"] == "baseline"
    assert active[0]["parameters"] == {"rsi_low": 40}
    assert active[0]["active"] is True
    stamp = active[0]["updated_at"]
    assert stamp.tzinfo is not None

    # unchanged rows keep updated_at; changed ones are updated; unlisted ones are deactivated
    store.sync_strategies(
        [
            {
                "name": "macd_rsi_confluence",
                "description": "baseline",
                "parameters": {"rsi_low": 40},
                "active": True,
            },
            {
                "name": "momentum_rank",
                "description": "alt v2",
                "parameters": {"lookback": 12},
                "active": True,
            },
        ]
    )
    active = {s["name"]: s for s in store.active_strategies()}
    assert set(active) == {"macd_rsi_confluence", "momentum_rank"}
    assert active["macd_rsi_confluence"]["updated_at"] == stamp
    assert active["momentum_rank"]["parameters"] == {"lookback": 12}
    store.sync_strategies(
        [{"name": "momentum_rank", "description": "alt v2", "parameters": {"lookback": 12}}]
    )
    assert [s["name"] for s in store.active_strategies()] == ["momentum_rank"]
    assert count(store, "strategies") == 2


def test_sync_without_active_keeps_the_operators_flag(store):
    store.sync_strategies([{"name": "a", "description": "x"}, {"name": "b", "description": "y"}])
    assert [s["name"] for s in store.active_strategies()] == ["a", "b"]  # new ones start active
    store.sync_strategies([{"name": "a", "description": "x", "active": False}, {"name": "b", "description": "y"}])
    store.sync_strategies([{"name": "a", "description": "x2"}, {"name": "b", "description": "y"}])
    assert [s["name"] for s in store.active_strategies()] == ["b"]  # "a" stays switched off


def test_strategy_rows_need_unique_names(store):
    with pytest.raises(ValueError, match="twice"):
        store.sync_strategies([{"name": "a"}, {"name": "a"}])
    with pytest.raises(ValueError, match="without a name"):
        store.sync_strategies([{"description": "x"}])
    assert count(store, "strategies") == 0


# --- backtests ----------------------------------------------------------------------------------------


def test_backtest_round_trip(store):
    run_id = record(store)
    runs = store.list_backtests()
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["id"] == run_id
    assert (run["strategy"], run["kind"], run["status"]) == ("macd_rsi_confluence", "scheduled", "success")
    assert (run["data_fingerprint"], run["code_version"]) == ("sha256:abc", "git:1234567")
    assert run["universe"] == ["ETH/BTC", "XRP/BTC"]
    assert run["config"] == {
        "window_hours": 4,
        "fee_bps": 10.0,
        "start": "2024-03-01T10:00:00+00:00",
        "nan": None,
    }
    assert run["error"] is None and run["request_key"] is None
    assert str(runs["created_at"].dtype) == "datetime64[ns, UTC]"
    assert run["finished_at"] >= run["created_at"]

    trades = store.backtest_trades(run_id)
    expected = trades_frame()
    expected["score"] = [2.5, 1.0, 0.75]
    pd.testing.assert_frame_equal(trades, expected)
    assert pd.isna(trades.loc[2, "exit_time"]) and pd.isna(trades.loc[2, "exit_price"])

    assert store.backtest_metrics(run_id) == {
        "avg_return": -0.017,
        "ci.high": 0.25,
        "ci.low": -0.1,
        "median_return": None,
        "profit_factor": None,
        "trade_count": 3.0,
        "win_rate": 0.5,
    }
    windows = store.backtest_windows(run_id)
    assert list(windows.columns) == ["decision_time", "n_selected", "selected", "window_return"]
    assert list(windows["decision_time"]) == [T, T + 2 * H]
    assert list(windows["n_selected"]) == [2, 1]
    assert list(windows["selected"]) == [["ETH/BTC", "XRP/BTC"], ["ETH/BTC"]]
    assert windows["window_return"].iloc[0] == -0.017 and np.isnan(windows["window_return"].iloc[1])
    with store.engine.connect() as conn:
        stored = (
            conn.exec_driver_sql("SELECT selected FROM backtest_windows ORDER BY decision_time")
            .scalars()
            .all()
        )
        perf = conn.exec_driver_sql("SELECT DISTINCT strategy FROM strategy_performance").scalars().all()
    assert stored == ["ETH/BTC, XRP/BTC", "ETH/BTC"]
    assert perf == ["macd_rsi_confluence"]


def test_trades_times_are_epoch_ms_and_features_are_json(store):
    run_id = record(store)
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT decision_time, exit_time, features FROM backtest_trades WHERE run_id = :r ORDER BY seq"
            ),
            {"r": run_id},
        ).all()
    assert rows[0][0] == 1_709_287_200_000  # 2024-03-01T10:00Z
    assert rows[2][1] is None
    features = [r[2] if isinstance(r[2], dict) else json.loads(r[2]) for r in rows]
    assert features == [
        {"rsi": 55.5, "atr_pct": 0.012},
        {"rsi": 61.0, "atr_pct": 0.02},
        {"rsi": None, "atr_pct": 0.011},
    ]


def test_empty_results_are_fine(store):
    run_id = record(store, trades=pd.DataFrame(), windows=None, metrics={})
    assert len(store.backtest_trades(run_id)) == 0
    assert store.backtest_metrics(run_id) == {}
    assert len(store.backtest_windows(run_id)) == 0


def test_failed_backtest_is_recorded(store):
    run_id = store.record_failed_backtest(
        strategy="momentum_rank",
        kind="adhoc",
        config={"window_hours": 4},
        universe=["ETH/BTC"],
        error="ValueError: no candles for ETH/BTC",
    )
    run = store.backtest_run(run_id)
    assert run["status"] == "failed"
    assert run["error"] == "ValueError: no candles for ETH/BTC"
    assert run["kind"] == "adhoc"
    assert store.backtest_metrics(run_id) == {}
    assert len(store.backtest_trades(run_id)) == 0
    assert list(store.list_backtests()["status"]) == ["failed"]


def test_request_keys_are_processed_exactly_once(store):
    assert not store.has_request("req-2024-03-01-a")
    run_id = record(store, kind="request", request_key="req-2024-03-01-a")
    assert store.has_request("req-2024-03-01-a")
    before = all_counts(store)
    with pytest.raises(RequestAlreadyRecorded):
        record(store, kind="request", request_key="req-2024-03-01-a")
    with pytest.raises(RequestAlreadyRecorded):
        store.record_failed_backtest(
            strategy="x", kind="request", config={}, universe=[], error="boom", request_key="req-2024-03-01-a"
        )
    assert all_counts(store) == before
    assert store.list_backtests()["id"].tolist() == [run_id]
    # a failed request counts as processed too; runs without a key never collide
    store.record_failed_backtest(
        strategy="x", kind="request", config={}, universe=[], error="e", request_key="b"
    )
    assert store.has_request("b")
    record(store)
    record(store)
    assert count(store, "backtest_runs") == 4


def test_request_key_race_maps_the_unique_violation(store, monkeypatch):
    record(store, kind="request", request_key="k1")
    real = results_mod.has_request
    calls = []

    def blind_first(conn, key):  # the other worker inserted between our check and our insert
        calls.append(key)
        return False if len(calls) == 1 else real(conn, key)

    monkeypatch.setattr(results_mod, "has_request", blind_first)
    with pytest.raises(RequestAlreadyRecorded):
        record(store, kind="request", request_key="k1")
    assert count(store, "backtest_runs") == 1


def test_failure_mid_record_leaves_nothing(store, monkeypatch):
    record(store)
    before = all_counts(store)

    def broken_windows(run_id, windows):
        raise RuntimeError("crash after the run and trades were built")

    monkeypatch.setattr(results_mod, "window_rows", broken_windows)
    with pytest.raises(RuntimeError, match="crash"):
        record(store, request_key="will-not-stick")
    monkeypatch.undo()
    assert all_counts(store) == before
    assert not store.has_request("will-not-stick")


@pytest.mark.parametrize(
    "overrides, error",
    [
        ({"kind": "weekly"}, ValueError),
        ({"metrics": {"sharpe": "high"}}, TypeError),
        ({"trades": trades_frame().assign(symbol=["ETH/BTC", None, "X"])}, ValueError),
        ({"windows": windows_frame().assign(decision_time=[T, T])}, sa.exc.IntegrityError),
    ],
    ids=["bad-kind", "text-metric", "missing-symbol", "duplicate-window"],
)
def test_invalid_results_write_nothing(store, overrides, error):
    with pytest.raises(error):
        record(store, **overrides)
    assert all_counts(store) == {t: 0 for t in all_counts(store)}


def test_list_backtests_filters_and_orders(store):
    a = record(store, strategy="a")
    b = record(store, strategy="b")
    c = record(store, strategy="a")
    assert store.list_backtests()["id"].tolist() == [c, b, a]
    assert store.list_backtests(strategy="a")["id"].tolist() == [c, a]
    assert store.list_backtests(limit=1)["id"].tolist() == [c]
    d = record(store, strategy="a", kind="adhoc")
    failed = store.record_failed_backtest(strategy="a", kind="scheduled", config={}, universe=[], error="boom")
    assert store.list_backtests(strategy="a", kind="scheduled", status="success")["id"].tolist() == [c, a]
    assert store.list_backtests(kind="adhoc")["id"].tolist() == [d]
    assert store.list_backtests(status="failed")["id"].tolist() == [failed]
    assert store.backtest_run(12345) is None


# --- rankings -----------------------------------------------------------------------------------------


def ranking_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": ["ETH/BTC", "XRP/BTC", "LTC/BTC"],
            "rank": [1.0, 2.0, np.nan],
            "score": [1.75, 0.5, np.nan],
            "eligible": [True, True, False],
            "selected": np.array([True, False, False]),
            "reasons": ["macd slope up; rsi 55", "rsi 63", "atr_pct 0.09 > 0.05"],
            "rsi": [55.0, 63.0, 71.5],
            "macd_hist_slope": [0.001, np.nan, -0.002],
        }
    )


def test_ranking_snapshot_round_trip(store):
    snap = store.save_ranking_snapshot(
        strategy="macd_rsi_confluence", decision_time=T, ranking=ranking_frame()
    )
    out = store.latest_ranking("macd_rsi_confluence")
    expected = ranking_frame()
    expected.insert(0, "decision_time", pd.Series([T] * 3, dtype="datetime64[ns, UTC]"))
    pd.testing.assert_frame_equal(out, expected)
    assert out.attrs["snapshot_id"] == snap
    assert out.attrs["decision_time"] == T
    assert out.attrs["strategy"] == "macd_rsi_confluence"


def test_latest_ranking_is_the_newest_decision_time(store):
    first = ranking_frame()
    store.save_ranking_snapshot(strategy="s", decision_time=T + H, ranking=first)
    later = ranking_frame().iloc[:1].assign(score=9.0)
    newest = store.save_ranking_snapshot(strategy="s", decision_time=T + 2 * H, ranking=later)
    store.save_ranking_snapshot(
        strategy="s", decision_time=T, ranking=first
    )  # a late backfill of an old hour
    store.save_ranking_snapshot(strategy="other", decision_time=T + 5 * H, ranking=first)
    out = store.latest_ranking("s")
    assert out.attrs["snapshot_id"] == newest
    assert out["symbol"].tolist() == ["ETH/BTC"] and out["score"].tolist() == [9.0]
    assert out["rank"].dtype == np.int64
    assert count(store, "ranking_snapshots") == 4


def test_latest_ranking_without_snapshots_is_empty(store):
    out = store.latest_ranking("nothing")
    assert len(out) == 0
    assert list(out.columns) == [
        "decision_time",
        "symbol",
        "rank",
        "score",
        "eligible",
        "selected",
        "reasons",
    ]


def test_ranking_snapshot_is_one_transaction(store):
    dup = pd.concat([ranking_frame(), ranking_frame().iloc[:1]], ignore_index=True)
    with pytest.raises(sa.exc.IntegrityError):
        store.save_ranking_snapshot(strategy="s", decision_time=T, ranking=dup)
    assert count(store, "ranking_snapshots") == 0
    assert count(store, "ranking_rows") == 0


def test_ranking_indexed_by_symbol_is_accepted(store):
    store.save_ranking_snapshot(strategy="s", decision_time=T, ranking=ranking_frame().set_index("symbol"))
    assert store.latest_ranking("s")["symbol"].tolist() == ["ETH/BTC", "XRP/BTC", "LTC/BTC"]
