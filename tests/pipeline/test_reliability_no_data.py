"""Issue 9, item 4: a backtest that measured nothing is a failure, never a success with 0 trades.

A period with no data (a 2020 range on a 2024 store) and too little history for the warm-up
(`feature_timeframe: 4h` needs ~43 days of 4h bars; the store has 14 days) fail through the ad-hoc job
and through a request file alike: the Dagster run fails, the store records a failed run with the same
message, and the message says what data the store has and what the run needed.
"""

from __future__ import annotations

import dagster as dg
import pytest
from pipeline_helpers import QUIET

from pipeline.defs.backtests.config import BacktestRequest
from pipeline.store import Store

CASES = {
    "no_data": (
        {"strategy": "momentum_rank", "start": "2020-01-01", "end": "2020-02-01"},
        ["2020-01-01", "2020-02-01", "2024-03-01", "2024-03-14 23:55"],
    ),
    "short_warmup": (
        {"strategy": "momentum_rank", "feature_timeframe": "4h"},
        ["warm-up", "4h bars", "about 43.3 days", "2024-03-01", "2024-03-14 23:55"],
    ),
}


def _failure(result: dg.ExecuteInProcessResult) -> str:
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return event.step_failure_data.user_failure_data.description


def _failed_rows(url: str, key: str | None = None):
    store = Store(url=url)
    try:
        runs = store.list_backtests(limit=100, status="failed")
    finally:
        store.dispose()
    return runs if key is None else runs[runs["request_key"] == key]


@pytest.mark.parametrize("case", sorted(CASES))
def test_adhoc_run_without_usable_data_fails_and_is_recorded_failed(ingested, case) -> None:
    settings, words = CASES[case]
    job = ingested["defs"].resolve_job_def("adhoc_backtest")
    before = len(_failed_rows(ingested["db_url"]))
    result = job.execute_in_process(
        run_config={**dg.RunConfig(ops={"run_backtest": BacktestRequest(**settings)}).to_config_dict(), **QUIET},
        raise_on_error=False,
    )
    assert not result.success
    message = _failure(result)
    for word in words:
        assert word in message, message
    failed = _failed_rows(ingested["db_url"])
    assert len(failed) == before + 1
    assert failed.iloc[0]["error"] in message and failed.iloc[0]["kind"] == "adhoc"


@pytest.mark.parametrize("case", sorted(CASES))
def test_request_file_without_usable_data_fails_once_and_is_recorded(ingested, case, tmp_path, monkeypatch) -> None:
    import yaml

    settings, words = CASES[case]
    folder = tmp_path / "requests"
    folder.mkdir()
    monkeypatch.setenv("CRYPTO4H_REQUESTS_DIR", str(folder))
    (folder / f"{case}.yaml").write_text(yaml.safe_dump(settings))
    defs = ingested["defs"]
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        ctx = dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def())
        [req] = defs.resolve_sensor_def("backtest_requests").evaluate_tick(ctx).run_requests
        job = defs.resolve_job_def("adhoc_backtest")
        result = job.execute_in_process(run_config={**req.run_config, **QUIET}, tags=req.tags, instance=instance,
                                        raise_on_error=False)  # fmt: skip
        assert not result.success and instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.FAILURE
        message = _failure(result)
        for word in words:
            assert word in message, message
        [row] = _failed_rows(ingested["db_url"], req.run_key).to_dict("records")
        assert row["kind"] == "request" and row["error"] in message
        # launched again (a daemon retry, a second sensor): recorded once, nothing new
        again = job.execute_in_process(run_config={**req.run_config, **QUIET}, tags=req.tags, instance=instance)
        assert again.success and again.output_for_node("run_backtest") == -1
        assert len(_failed_rows(ingested["db_url"], req.run_key)) == 1
