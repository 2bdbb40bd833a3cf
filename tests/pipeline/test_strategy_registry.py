"""The strategy registry page, the configure_strategy job and the CLI: switch strategies on/off and set
the parameters the scheduled backtests and rankings use, validated by the engine registry."""

from __future__ import annotations

import dagster as dg
import pytest
from pipeline_helpers import QUIET, cells, ingest, make_defs, materialized_keys, open_store, records


def _configure(defs, instance, **config):
    job = defs.resolve_job_def("configure_strategy")
    return job.execute_in_process(instance=instance, raise_on_error=False,
                                  run_config={"ops": {"strategies": {"config": config}}, **QUIET})  # fmt: skip


def test_configure_switches_off_and_sets_parameters_used_by_the_refresh(env, instance) -> None:
    defs = make_defs(env["universe"], env["db_url"])
    assert ingest(defs, env["universe"], instance).success
    off = _configure(defs, instance, strategy="momentum_rank", active=False)
    assert off.success
    page = records(off.asset_materializations_for_node("strategies")[0].metadata["registry"])
    assert {r["strategy"]: r["active"] for r in page} == {"macd_rsi_confluence": True, "momentum_rank": False}
    tuned = _configure(defs, instance, strategy="macd_rsi_confluence", params={"rsi_low": 35, "max_atr_pct": 0.08})
    assert tuned.success
    refresh = defs.resolve_job_def("refresh_research").execute_in_process(instance=instance, run_config=QUIET)
    assert refresh.success
    done = materialized_keys(refresh)
    assert "backtests/macd_rsi_confluence" in done and "backtests/momentum_rank" not in done  # switched off
    store = open_store(env["db_url"])
    try:
        run = store.list_backtests(strategy="macd_rsi_confluence", kind="scheduled", limit=1).iloc[0]
        assert run["config"]["params"]["rsi_low"] == 35 and run["config"]["params"]["max_atr_pct"] == 0.08
        assert run["config"]["params"]["rsi_high"] == 65  # untouched parameters keep their value
        assert store.latest_ranking("momentum_rank").attrs.get("snapshot_id") is None  # no new ranking
    finally:
        store.dispose()
    # the registry page was refreshed with the run's verdict too
    registry = next(e for e in refresh.get_asset_materialization_events() if e.asset_key.to_user_string() == "strategies")
    assert "per window" in cells(registry.materialization.metadata["registry"])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"strategy": "macd_rsi_confluence", "params": {"rsi_lo": 30}},
         "rsi_low: float in [0, 100], default 40.0"),
        ({"strategy": "macd_rsi_confluence", "params": {"rsi_low": 130}}, "must be <= 100"),
        ({"strategy": "macd_rsi_confluence", "params": {"rsi_low": 70}}, "rsi_low (70.0) must be <= rsi_high"),
    ],
)
def test_invalid_parameters_are_refused_with_the_valid_choices(env, instance, config, message) -> None:
    defs = make_defs(env["universe"], env["db_url"])
    result = _configure(defs, instance, **config)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert message in str(failure.step_failure_data.error)
    store = open_store(env["db_url"])
    try:
        params = {r["name"]: r["parameters"] for r in store.all_strategies()}
        assert params["macd_rsi_confluence"]["rsi_low"] == 40.0  # nothing stored
    finally:
        store.dispose()


def test_unknown_strategy_is_refused_before_a_run_starts(env) -> None:
    job = make_defs(env["universe"], env["db_url"]).resolve_job_def("configure_strategy")
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(job, {"ops": {"strategies": {"config": {"strategy": "buy_the_rumour"}}}})


def test_cli_lists_and_sets(env, capsys) -> None:
    from pipeline.strategies import main

    assert main(["set", "momentum_rank", "--inactive", "--param", "max_atr_pct=0.04"]) == 0
    assert "momentum_rank: inactive" in capsys.readouterr().out
    assert main(["set", "momentum_rank", "--param", "nope=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown parameters ['nope']" in err and "require_positive_trend: bool" in err and err[-1] == "\n"
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "momentum_rank          inactive max_atr_pct=0.04" in out and "no scheduled run yet" in out
    assert main(["set", "momentum_rank", "--active", "--reset-params"]) == 0
    assert "max_atr_pct': 0.05" in capsys.readouterr().out
