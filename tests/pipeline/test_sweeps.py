"""The parameter_sweep job (plan -> chunk steps -> merge) and sweep request files: results equal the
engine's, the store records the sweep and every configuration (trials for later deflated Sharpes), each
sweep has a home in sweep_runs, requests are exactly-once and invalid ones list the valid choices."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml
from pipeline_helpers import QUIET, records

from pipeline.defs.sweeps.config import SweepRequest
from pipeline.defs.sweeps.jobs import parameter_sweep, sweep_run_config

GRID = {"rsi_low": [35, 40], "max_positions": [1, 2]}


@pytest.fixture(scope="module")
def store(ingested):
    from pipeline.store import Store

    s = Store(url=ingested["db_url"])
    yield s
    s.dispose()


def _sweep(defs, req: SweepRequest, **kwargs) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("parameter_sweep")
    return job.execute_in_process(run_config={**sweep_run_config(req).to_config_dict(), **QUIET}, **kwargs)


def test_sweep_job_equals_the_engine_and_is_recorded(ingested, store) -> None:
    from engine.backtest import WalkForwardConfig
    from engine.sweep import run_sweep
    from pipeline.universe import load_universe

    req = SweepRequest(strategy="macd_rsi_confluence", grid=GRID, start="2024-03-12")
    result = _sweep(ingested["defs"], req)
    assert result.success
    sweep_id = result.output_for_node("merge_sweep")
    sweep = store.sweeps.get(sweep_id)
    assert sweep["status"] == "success" and sweep["n_configs"] == 4 and sweep["pbo"] is not None
    # the same sweep through the engine alone, on the same stored candles
    uni = load_universe(ingested["universe"])
    candles = store.read_universe(uni.exchange, list(uni.symbols), end=pd.Timestamp(sweep["config"]["end"]))
    engine = run_sweep(candles, "macd_rsi_confluence", GRID, WalkForwardConfig(start="2024-03-12"),
                       n_trials=sweep["n_trials"])  # fmt: skip
    assert sweep["summary"]["best_config_id"] == engine.summary()["best_config_id"]
    from engine.fingerprint import data_fingerprint

    assert sweep["data_fingerprint"] == data_fingerprint({s: df for s, df in candles.items() if len(df)})
    assert sweep["pbo"] == pytest.approx(engine.pbo, abs=0) and sweep["spa_p_value"] == engine.spa_p_value
    # every configuration is recorded with its metrics (equal to the engine's rows)
    meta = [e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    [home] = [e.event_specific_data.materialization for e in meta]
    assert home.asset_key == dg.AssetKey("sweep_runs") and home.partition == f"{sweep_id:05d}-macd_rsi_confluence"
    assert "PBO" in home.metadata["verdict"].value and Path(home.metadata["report_file"].value).is_file()
    top = records(home.metadata["top_configurations"])
    assert len(top) == 4 and {"config_id", "rsi_low", "max_positions"} <= set(top[0])
    table = engine.table.set_index("config_id")
    for row in top:
        assert row["mean_window_return %"] == pytest.approx(table.loc[row["config_id"], "mean_window_return"] * 100,
                                                            abs=1e-3)  # fmt: skip


def test_chunks_ran_as_separate_steps(ingested) -> None:
    req = SweepRequest(strategy="momentum_rank", grid={"max_positions": [1, 2, 3]})
    result = _sweep(ingested["defs"], req)
    assert result.success
    steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    assert {"plan_sweep", "merge_sweep", "sweep_chunk_0", "sweep_chunk_1", "sweep_chunk_2", "sweep_chunk_3"} <= steps


def test_later_runs_count_the_sweeps_configurations_as_trials(ingested, store) -> None:
    from pipeline.defs.backtests.config import BacktestRequest
    from pipeline.defs.backtests.jobs import request_run_config

    grid = {"rsi_low": [30, 32, 34, 36, 38], "rsi_high": [60]}
    assert _sweep(ingested["defs"], SweepRequest(strategy="macd_rsi_confluence", grid=grid)).success
    job = ingested["defs"].resolve_job_def("adhoc_backtest")
    adhoc = job.execute_in_process(run_config={**request_run_config(BacktestRequest(
        strategy="macd_rsi_confluence", params={"rsi_low": 31})).to_config_dict(), **QUIET})  # fmt: skip
    metrics = store.backtest_metrics(adhoc.output_for_node("run_backtest"))
    assert metrics["n_trials"] >= 6  # five swept configurations + this one (+ earlier runs)


def test_sweep_request_is_exactly_once(ingested, store) -> None:
    req = SweepRequest(strategy="momentum_rank", grid={"max_positions": [1, 2]}, request_key="s.yaml:abc")
    first, second = _sweep(ingested["defs"], req), _sweep(ingested["defs"], req)
    assert first.success and second.success
    skipped = {e.step_key for e in second.all_events if e.event_type_value == "STEP_SKIPPED"}
    assert {"merge_sweep", "sweep_chunk_0"} <= skipped
    assert len(store.sweeps.list(limit=1000).query("request_key == 's.yaml:abc'")) == 1


@pytest.mark.parametrize(
    ("grid", "message"),
    [({"rsi_lo": [30]}, "rsi_low: float in [0, 100]"), ({"rsi_low": [130]}, "rsi_low"), ({}, "grid must map")],
)
def test_invalid_sweeps_fail_before_any_work_with_the_valid_choices(ingested, grid, message) -> None:
    result = _sweep(ingested["defs"], SweepRequest(strategy="macd_rsi_confluence", grid=grid), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "plan_sweep" and message in str(failure.step_failure_data.error)


def test_sweep_request_files_launch_the_sweep_job(env, requests_dir) -> None:
    from pipeline_helpers import make_defs

    defs = make_defs(env["universe"], env["db_url"])
    (requests_dir / "grid.yaml").write_text(yaml.safe_dump(
        {"kind": "sweep", "strategy": "momentum_rank", "grid": {"max_positions": [1, 2, 3]}, "sample": 2}))
    (requests_dir / "bad.yaml").write_text(yaml.safe_dump({"kind": "sweep", "strategy": "momentum_rank",
                                                           "grid": {"lookback": [1, 2]}}))  # fmt: skip
    (requests_dir / "odd.yaml").write_text(yaml.safe_dump({"kind": "sweeps", "strategy": "momentum_rank"}))
    sensor = defs.resolve_sensor_def("backtest_requests")
    with dg.instance_for_test() as instance:
        data = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def()))
    [req] = data.run_requests
    assert req.job_name == "parameter_sweep" and req.run_config["ops"]["plan_sweep"]["config"]["sample"] == 2
    assert dg.validate_run_config(parameter_sweep, req.run_config)
    log = " ".join(str(x) for x in (data.skip_message, data.cursor))
    assert "bad.yaml" in log and "lookback" in log and "require_positive_trend: bool" in log
    assert "odd.yaml" in log and "unknown kind 'sweeps'" in log


def _recorded_sweep(store, ingested, fingerprint: str | None) -> dict:
    from pipeline.universe import load_universe

    uni = load_universe(ingested["universe"])
    end = uni.reference_time().isoformat()
    sweep_id = store.sweeps.create(strategy="momentum_rank", universe=sorted(uni.symbols), grid={}, config={"end": end},
                                   plan=[{}], n_chunks=1, run_key=None, request_key=None,
                                   data_fingerprint=fingerprint, code_version=None)  # fmt: skip
    return store.sweeps.get(sweep_id)


def test_the_first_chunk_fixes_the_fingerprint_and_later_chunks_reuse_or_check_it(ingested, store, monkeypatch) -> None:
    from engine.backtest import WalkForwardConfig
    from engine.fingerprint import data_fingerprint
    from pipeline.defs.sweeps import jobs
    from pipeline.universe import load_universe

    uni, cfg, context = load_universe(ingested["universe"]), WalkForwardConfig(), dg.build_op_context()
    sweep = _recorded_sweep(store, ingested, None)
    loads = []
    real_load = jobs.load_candles
    monkeypatch.setattr(jobs, "load_candles", lambda *a, **k: loads.append(1) or real_load(*a, **k))
    jobs.PREPARED.clear()
    first = jobs._histories(context, store, uni, sweep, cfg)
    candles = store.read_universe(uni.exchange, sweep["universe"], end=pd.Timestamp(sweep["config"]["end"]))
    expected = data_fingerprint({s: df for s, df in candles.items() if len(df)})
    assert store.sweeps.get(sweep["id"])["data_fingerprint"] == expected
    assert store.sweeps.claim_fingerprint(sweep["id"], "another") == expected  # the first claim stays
    # the next chunk of the same sweep in this process reuses the prepared histories: no second load
    assert jobs._histories(context, store, uni, sweep, cfg) is first and len(loads) == 1
    # a process without them loads the candles again and finds the recorded fingerprint
    jobs.PREPARED.clear()
    assert set(jobs._histories(context, store, uni, sweep, cfg)) == set(first) and len(loads) == 2
    # another sweep does not reuse them; a recorded fingerprint the store's data no longer has fails loudly
    changed = _recorded_sweep(store, ingested, "0" * 16)
    with pytest.raises(dg.Failure, match="stored candles changed while sweep"):
        jobs._histories(context, store, uni, changed, cfg)
    assert len(loads) == 3
    jobs.PREPARED.clear()


def test_prepared_histories_are_dropped_after_the_idle_time(monkeypatch) -> None:
    import time

    from pipeline.defs.sweeps.jobs import _Prepared

    monkeypatch.setattr(_Prepared, "CACHE_SECONDS", 0.2)
    cache = _Prepared()
    cache.put(("db-a", 7, "1h"), {"A/USDT": "h"})
    assert cache.get(("db-a", 7, "1h")) == {"A/USDT": "h"}
    assert cache.get(("db-a", 7, "4h")) is None and cache.get(("db-b", 7, "1h")) is None
    time.sleep(0.6)
    assert cache.get(("db-a", 7, "1h")) is None and cache.histories is None
