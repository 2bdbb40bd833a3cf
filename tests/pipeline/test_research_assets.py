"""Research assets on a small ingested history: features/rankings, backtests, performance, comparison,
and the ad-hoc backtest job with its typed config."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from pipeline_helpers import QUIET, cells, materialize, materialized_keys, records

from pipeline.defs.backtests.config import BacktestRequest
from pipeline.defs.backtests.jobs import adhoc_backtest, request_run_config


@pytest.fixture(scope="module")
def store(ingested):
    from pipeline.store import Store

    s = Store(url=ingested["db_url"])
    yield s
    s.dispose()


@pytest.fixture(scope="module")
def refreshed(ingested):
    """The refresh job once over the shared history (features -> ... -> comparison)."""
    result = ingested["defs"].resolve_job_def("refresh_research").execute_in_process(run_config=QUIET)
    assert result.success
    return result


def _meta(result: dg.ExecuteInProcessResult, key: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key]
    return event.materialization.metadata


def _run_ids(result: dg.ExecuteInProcessResult) -> dict[str, int]:
    """Strategy -> the store run id its scheduled backtest asset reports."""
    from engine.strategies import list_strategies

    return {i.name: _meta(result, f"backtests/{i.name}")["store_run_id"].value for i in list_strategies()}


def test_features_are_in_lineage_but_never_persisted(ingested) -> None:
    from engine.strategies import list_strategies

    refresh = ingested["defs"].resolve_assets_def("features")
    specs = {s.key.to_user_string(): s for s in refresh.specs}
    assert specs["features"].metadata["persisted"] is False
    assert dg.AssetKey("candles") in {d.asset_key for d in specs["features"].deps}
    assert dg.AssetKey("features") in {d.asset_key for d in specs["rankings"].deps}
    graph = ingested["defs"].resolve_asset_graph()
    for info in list_strategies():
        assert dg.AssetKey("features") in graph.get(dg.AssetKey(["backtests", info.name])).parent_keys


def test_rankings_snapshot_per_active_strategy(refreshed, store) -> None:
    from engine.strategies import list_strategies

    assert {"features", "rankings"} <= materialized_keys(refreshed)
    feats = _meta(refreshed, "features")
    assert feats["symbols"].value == 3 and "rsi" in cells(feats["momentum_features"])
    assert "atr_pct %" in cells(feats["trend_and_volatility_features"])
    assert "closed 1h bars only" in feats["bars_used"].value  # the preview is what the decision could see
    gates = _meta(refreshed, "rankings")["gates_macd_rsi_confluence"].value
    assert "`atr_pct <= 5.00%" in gates and "`40 <= rsi <= 65`" in gates  # thresholds next to the values
    ranks = _meta(refreshed, "rankings")
    for info in list_strategies():
        table = cells(ranks[f"ranking_{info.name}"])
        assert "reasons" in table and "AAA/USDT" in table
        snap = store.latest_ranking(info.name)
        assert set(snap["symbol"]) == {"AAA/USDT", "BBB/USDT", "CCC/USDT"}
        assert snap["decision_time"].iloc[0].hour % 2 == 0
        assert (snap.loc[~snap["eligible"], "reasons"] != "").all()  # a failed gate always says why


def test_backtests_are_recorded_with_provenance(refreshed, store) -> None:
    from engine.strategies import list_strategies

    run_ids = _run_ids(refreshed)
    assert set(run_ids) == {i.name for i in list_strategies()}
    for name, run_id in run_ids.items():
        run = store.backtest_run(run_id)
        assert run["status"] == "success" and run["kind"] == "scheduled" and run["strategy"] == name
        assert len(run["data_fingerprint"]) == 64 and run["code_version"]
        assert run["config"]["window_hours"] == 4 and sorted(run["universe"]) == [
            "AAA/USDT",
            "BBB/USDT",
            "CCC/USDT",
        ]
        metrics = store.backtest_metrics(run_id)
        assert metrics["trade_count"] == len(store.backtest_trades(run_id).query("~void"))
        meta = _meta(refreshed, f"backtests/{name}")
        headline = {r["metric"]: r["value"] for r in records(meta["headline"])}
        assert headline["completed trades"] == str(int(metrics["trade_count"]))  # the number the store holds
        # the plot is shown inline (a short markdown image served with the reports) and the report exists
        assert meta["equity_plot"].value.startswith("![") and meta["equity_plot"].value.endswith("-equity.png)")
        assert Path(meta["report_file"].value).is_file() and meta["report"].value.endswith(".html")
        # the report's verdict paragraph, in words with the interval
        assert "mean return per 4 h window" in meta["verdict"].value and "interval" in meta["verdict"].value


def test_performance_and_comparison_read_back_the_store(refreshed) -> None:
    perf = _meta(refreshed, "strategy_performance")
    assert "mean return / window" in cells(perf["statistics"]) and " .. " in cells(perf["statistics"])
    assert any(k.startswith("by_symbol_") for k in perf)
    comp = _meta(refreshed, "strategy_comparison")
    assert "macd_rsi_confluence" in cells(comp["comparison"]) and "momentum_rank" in cells(comp["comparison"])
    assert "[" in cells(comp["comparison"])  # every value with its interval
    assert comp["equity_plot"].value.startswith("![") and comp["equity_plot"].value.endswith(".png)")
    assert Path(comp["report_file"].value).is_file()  # the engine's side-by-side HTML report
    # the leader is named together with whether its lead is significant (never a bare "best")
    leader = comp["leader"].value
    assert any(f"**{n}**" in leader for n in ("macd_rsi_confluence", "momentum_rank"))
    assert "significant" in leader


def test_performance_and_comparison_find_scheduled_runs_behind_many_newer_runs(ingested, refreshed, store) -> None:
    """More than 50 newer ad-hoc runs (and a newer failed scheduled run) per strategy must not hide the
    latest successful scheduled run from the performance and comparison assets."""
    scheduled = _run_ids(refreshed)
    for name in scheduled:
        for _ in range(60):
            store.record_failed_backtest(strategy=name, kind="adhoc", config={}, universe=["AAA/USDT"],
                                         error="user typo")  # fmt: skip
        store.record_failed_backtest(strategy=name, kind="scheduled", config={}, universe=[], error="crash")
    result = materialize(ingested["defs"], dg.AssetSelection.assets("strategy_performance", "strategy_comparison"))
    assert result.success
    perf = records(_meta(result, "strategy_performance")["runs"])
    comp = records(_meta(result, "strategy_comparison")["runs"])
    for name, run_id in scheduled.items():
        assert {"strategy": name, "run_id": run_id}.items() <= next(r for r in perf if r["strategy"] == name).items()
        assert {"strategy": name, "run_id": run_id}.items() <= next(r for r in comp if r["strategy"] == name).items()


def test_comparison_ranks_by_mean_window_return_with_missing_values_last() -> None:
    from pipeline.defs.backtests.assets import best_first

    rows = [{"strategy": "loses", "mean_window_return": -0.001}, {"strategy": "no_data", "mean_window_return": None},
            {"strategy": "flat", "mean_window_return": 0.0}, {"strategy": "wins", "mean_window_return": 0.002}]
    assert [r["strategy"] for r in best_first(rows)] == ["wins", "flat", "loses", "no_data"]


def test_comparison_curves_use_the_engine_sleeve_factor(refreshed, store) -> None:
    from engine.backtest import WalkForwardConfig
    from pipeline.results import stored_walk_forward_config

    run_id = next(iter(_run_ids(refreshed).values()))
    cfg = stored_walk_forward_config(store.backtest_run(run_id)["config"])
    assert cfg == WalkForwardConfig(window_hours=4, shift_hours=2, fee_bps=10, max_positions=3)
    assert cfg.sleeve_factor == 0.5


def test_research_assets_fail_clearly_without_data(env) -> None:
    from pipeline_helpers import make_defs

    result = materialize(
        make_defs(env["universe"], env["db_url"]), dg.AssetSelection.assets("features", "rankings")
    )
    assert not result.success
    failure = [e for e in result.all_events if e.is_step_failure][0]
    assert "materialise `candles` first" in str(failure.step_failure_data.error)


def test_adhoc_backtest_with_typed_config(ingested, store) -> None:
    req = BacktestRequest(strategy="momentum_rank", params={"max_atr_pct": 0.08}, universe=["AAA/USDT", "BBB/USDT"],
                          fee_bps=5, slippage_bps=1, max_positions=1, start="2024-03-12")  # fmt: skip
    run_config = request_run_config(req)
    assert dg.validate_run_config(adhoc_backtest, run_config)
    job = ingested["defs"].resolve_job_def("adhoc_backtest")
    result = job.execute_in_process(run_config={**run_config.to_config_dict(), **QUIET})
    assert result.success
    run_id = result.output_for_node("run_backtest")
    run = store.backtest_run(run_id)
    assert run["kind"] == "adhoc" and sorted(run["universe"]) == ["AAA/USDT", "BBB/USDT"]
    assert run["config"]["fee_bps"] == 5 and run["config"]["params"]["max_atr_pct"] == 0.08
    trades = store.backtest_trades(run_id)
    assert trades.groupby("decision_time").size().max() <= 1
    assert trades["decision_time"].min() >= pd.Timestamp("2024-03-12", tz="UTC")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"params": {"rsi_lo": 3}}, "unknown parameters"),
        ({"universe": ["ZZZ/USDT"]}, "not in universe"),
        ({"window_hours": 4, "shift_hours": 2, "fee_bps": -1}, "fee_bps"),
        ({"start": "2024-03-10", "end": "2024-03-09"}, "must be after start"),
    ],
)
def test_adhoc_backtest_rejects_bad_requests_and_records_them(ingested, store, config, message) -> None:
    job = ingested["defs"].resolve_job_def("adhoc_backtest")
    result = job.execute_in_process(
        run_config={"ops": {"run_backtest": {"config": config}}, **QUIET}, raise_on_error=False
    )
    assert not result.success
    failure = [e for e in result.all_events if e.is_step_failure][0]
    assert message in str(failure.step_failure_data.error)
    latest = store.list_backtests(limit=1).iloc[0]
    assert latest["status"] == "failed" and message in latest["error"]


def test_launchpad_config_schema_is_typed() -> None:
    assert dg.validate_run_config(adhoc_backtest, {"ops": {"run_backtest": {"config": {"fee_bps": 3.5}}}})
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(adhoc_backtest, {"ops": {"run_backtest": {"config": {"fee_bps": "cheap"}}}})
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(adhoc_backtest, {"ops": {"run_backtest": {"config": {"colour": "red"}}}})


def test_unknown_strategy_is_rejected_before_a_run_starts(ingested) -> None:
    """The strategy is an enum of the engine registry: the Launchpad lists the strategies and the daemon's
    config validation refuses an unknown one (no run, nothing recorded)."""
    from engine.strategies import list_strategies
    from pipeline.defs.backtests.config import StrategyName

    assert sorted(StrategyName.__members__) == sorted(i.name for i in list_strategies())
    for name in StrategyName.__members__:
        assert dg.validate_run_config(adhoc_backtest, {"ops": {"run_backtest": {"config": {"strategy": name}}}})
    with pytest.raises(dg.DagsterInvalidConfigError, match="not in enum type StrategyName got buy_the_rumour"):
        dg.validate_run_config(adhoc_backtest, {"ops": {"run_backtest": {"config": {"strategy": "buy_the_rumour"}}}})
    job = ingested["defs"].resolve_job_def("adhoc_backtest")
    with pytest.raises(dg.DagsterInvalidConfigError):
        job.execute_in_process(run_config={"ops": {"run_backtest": {"config": {"strategy": "buy_the_rumour"}}}})


def test_refresh_computes_features_once_per_symbol(ingested, monkeypatch) -> None:
    """Features are computed once per symbol for the preview, every ranking and every backtest."""
    import engine.backtest.panel as panel

    calls = []
    real = panel.prepare_history

    def counting(symbol, *args, **kwargs):
        calls.append(symbol)
        return real(symbol, *args, **kwargs)

    monkeypatch.setattr(panel, "prepare_history", counting)
    result = ingested["defs"].resolve_job_def("refresh_research").execute_in_process(run_config=QUIET)
    assert result.success
    assert sorted(calls) == ["AAA/USDT", "BBB/USDT", "CCC/USDT"]


def test_an_unchanged_refresh_reuses_the_stored_runs(ingested, refreshed, store) -> None:
    """Same data fingerprint, config and code version: the stored run is reused, nothing new is written."""
    before = _run_ids(refreshed)
    n_runs = len(store.list_backtests(kind="scheduled", status="success", limit=1000))
    again = ingested["defs"].resolve_job_def("refresh_research").execute_in_process(run_config=QUIET)
    assert again.success
    assert _run_ids(again) == before
    for name in before:
        assert _meta(again, f"backtests/{name}")["reused_identical_run"].value is True
    assert len(store.list_backtests(kind="scheduled", status="success", limit=1000)) == n_runs
    # another config is another run
    other = ingested["defs"].resolve_job_def("refresh_research").execute_in_process(
        run_config={"ops": {"research_refresh": {"config": {"fee_bps": 3}}}, **QUIET}
    )
    assert other.success and set(_run_ids(other).values()).isdisjoint(before.values())
    # the deflated Sharpe counts the configurations tried for the strategy and universe (the store knows)
    for name, run_id in _run_ids(other).items():
        metrics = store.backtest_metrics(run_id)
        assert metrics["n_trials"] == 2 and metrics["deflated_sharpe"] is not None, name
        assert store.backtest_metrics(before[name])["n_trials"] == 1


def test_one_strategy_failing_does_not_stop_the_others(ingested, store, monkeypatch) -> None:
    """A strategy with a bug is recorded as failed; the other strategies' backtests are still recorded
    and materialised, then the refresh fails naming the broken strategy."""
    from pipeline_helpers import make_defs

    from engine.strategies import MomentumRank
    from engine.strategies import registry as strategy_registry

    class Broken(MomentumRank):
        name = "broken_strategy"

        def score(self, panel):
            raise RuntimeError("division by zero in my new idea")

    monkeypatch.setitem(strategy_registry._REGISTRY, Broken.name, Broken)
    defs = make_defs(ingested["universe"], ingested["db_url"])
    result = defs.resolve_job_def("refresh_research").execute_in_process(run_config=QUIET, raise_on_error=False)
    assert not result.success
    done = materialized_keys(result)
    assert {"backtests/macd_rsi_confluence", "backtests/momentum_rank", "strategy_performance"} <= done
    assert "backtests/broken_strategy" not in done
    failure = [e for e in result.all_events if e.is_step_failure][0]
    assert "broken_strategy" in str(failure.step_failure_data.error)
    latest = store.list_backtests(strategy="broken_strategy", limit=1).iloc[0]
    assert latest["status"] == "failed" and "division by zero in my new idea" in latest["error"]
    assert "broken_strategy" in _meta(result, "strategy_performance")["failed_this_refresh"].value


def test_portfolio_mode_from_the_launchpad_is_recorded_and_compared(ingested, store) -> None:
    """Ad-hoc runs accept the portfolio fields (typed), the store records them with the run, and the
    comparison shows the sizing and the compounded figures side by side."""
    job = ingested["defs"].resolve_job_def("adhoc_backtest")
    plain = job.execute_in_process(run_config={**request_run_config(BacktestRequest(
        strategy="momentum_rank")).to_config_dict(), **QUIET})  # fmt: skip
    req = BacktestRequest(strategy="momentum_rank", sizing="inverse_volatility", max_weight=0.5, compounding=True,
                          initial_capital=1000.0)  # fmt: skip
    assert dg.validate_run_config(adhoc_backtest, request_run_config(req))
    sized = job.execute_in_process(run_config={**request_run_config(req).to_config_dict(), **QUIET})
    assert plain.success and sized.success
    run_id = sized.output_for_node("run_backtest")
    config = store.backtest_run(run_id)["config"]
    assert (config["sizing"], config["max_weight"], config["compounding"], config["initial_capital"]) == (
        "inverse_volatility", 0.5, True, 1000.0)
    metrics = store.backtest_metrics(run_id)
    assert metrics["final_equity"] > 0 and metrics["cagr"] is not None
    headline = {r["metric"]: r["value"] for r in records(_output_meta(sized)["headline"])}
    assert headline["sizing (portfolio mode)"] == "inverse_volatility, cap 50%, compounding"
    assert "final equity" in headline and "max drawdown (compounded)" in headline
    assert not any(k.startswith("CAGR") for k in headline)  # 14 days annualised would mislead: not shown
    compare = materialize(ingested["defs"], dg.AssetSelection.assets("strategy_comparison"), run_config={
        "ops": {"research_refresh": {"config": {"compare_run_ids": [plain.output_for_node("run_backtest"), run_id]}}}})
    assert compare.success
    table = records(_meta(compare, "strategy_comparison")["comparison"])
    sizing = next(r for r in table if r["metric"] == "sizing (portfolio mode)")
    assert sorted(v for k, v in sizing.items() if k != "metric") == [
        "equal, not compounded", "inverse_volatility, cap 50%, compounding"]


def _output_meta(result: dg.ExecuteInProcessResult) -> dict:
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return event.event_specific_data.metadata


def test_bad_registry_parameters_or_an_unwritable_reports_folder_stop_only_that_strategy(
        ingested, store, monkeypatch, tmp_path) -> None:  # fmt: skip
    """Stored parameters the engine refuses fail one strategy only; report files that cannot be written fail
    that strategy's step but keep its run, and the next refresh publishes it (files and home)."""
    from pipeline.results import strategy_rows

    store.sync_strategies(strategy_rows())
    store.set_strategy("macd_rsi_confluence", parameters={"rsi_low": 70.0, "rsi_high": 65.0})
    try:
        result = ingested["defs"].resolve_job_def("refresh_research").execute_in_process(
            run_config=QUIET, raise_on_error=False)  # fmt: skip
    finally:
        store.set_strategy("macd_rsi_confluence", parameters={"rsi_low": 40.0, "rsi_high": 65.0})
    assert not result.success
    done = materialized_keys(result)
    assert {"features", "rankings", "backtests/momentum_rank", "strategy_comparison"} <= done
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "invalid parameters in the registry" in str(failure.step_failure_data.error)

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the reports folder should be")
    monkeypatch.setenv("CRYPTO4H_REPORTS_DIR", str(blocked))
    again = ingested["defs"].resolve_job_def("refresh_research").execute_in_process(
        run_config={"ops": {"research_refresh": {"config": {"fee_bps": 7}}}, **QUIET}, raise_on_error=False)
    assert not again.success
    assert "report files could not be written" in str(next(e for e in again.all_events if e.is_step_failure)
                                                      .step_failure_data.error)  # fmt: skip
    recorded = store.list_backtests(kind="scheduled", status="success", limit=2)
    assert all(c["fee_bps"] == 7 for c in recorded["config"])  # both runs were recorded
    monkeypatch.setenv("CRYPTO4H_REPORTS_DIR", str(tmp_path / "reports"))
    fixed = ingested["defs"].resolve_job_def("refresh_research").execute_in_process(
        run_config={"ops": {"research_refresh": {"config": {"fee_bps": 7}}}, **QUIET})
    assert fixed.success
    for name in ("macd_rsi_confluence", "momentum_rank"):
        meta = _meta(fixed, f"backtests/{name}")
        assert Path(meta["report_file"].value).is_file() and meta["home_partition"].value.startswith("backtest_runs")
