"""The code location loads, is complete, and the instance/workspace files are valid."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from pipeline.universe import REPO_ROOT


@pytest.fixture
def default_defs(monkeypatch: pytest.MonkeyPatch) -> dg.Definitions:
    """`pipeline.definitions.defs` as the webserver loads it: default universe, no test overrides."""
    import importlib

    import pipeline.definitions

    monkeypatch.delenv("CRYPTO4H_UNIVERSE", raising=False)
    return importlib.reload(pipeline.definitions).defs


EXPECTED_ASSETS = {
    "candles",
    "features",
    "rankings",
    "backtests/macd_rsi_confluence",  # one scheduled backtest per registered strategy
    "backtests/momentum_rank",
    "strategy_performance",
    "strategy_comparison",
    "backtest_runs",  # the home of every recorded run (one partition each)
    "strategies",  # the strategy registry page
    "sweep_runs",  # the home of every parameter sweep
    "paper_trades",  # the paper book, one tick per run
    "paper_performance",
}


def test_default_definitions_load_and_validate(default_defs: dg.Definitions) -> None:
    defs = default_defs
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    assert {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()} == EXPECTED_ASSETS
    assert {"ingest_candles", "refresh_research", "adhoc_backtest", "configure_strategy", "paper_trading",
            "parameter_sweep"} <= {
        j.name for j in repo.get_all_jobs()
    }
    assert sorted(s.name for s in repo.schedule_defs) == ["hourly_ingest", "paper_tick"]
    assert {s.name for s in repo.sensor_defs} == {"refresh_after_candles", "backtest_requests"}
    for s in [*repo.schedule_defs, *repo.sensor_defs]:
        assert s.default_status.value == "RUNNING", s.name
    checks = {k.name for k in repo.asset_graph.asset_check_keys}
    assert checks == {"schema", "duplicates", "gaps", "ohlc_sanity", "freshness", "paper_parity",
                      "paper_candle_revisions"}
    blocking = {
        k.name for k in repo.asset_graph.asset_check_keys if repo.asset_graph.get_check_spec(k).blocking
    }
    assert blocking == {"schema", "duplicates", "gaps", "ohlc_sanity", "paper_parity"}


def test_candles_partitions_come_from_the_default_universe(default_defs: dg.Definitions) -> None:
    candles = default_defs.resolve_assets_def("candles")
    pdef = candles.partitions_def
    assert isinstance(pdef, dg.MultiPartitionsDefinition)
    symbols = pdef.get_partitions_def_for_dimension("symbol").get_partition_keys()
    assert sorted(symbols) == ["ADA-BTC", "DASH-BTC", "ETH-BTC", "LTC-BTC", "NXT-BTC", "XLM-BTC"]
    dates = pdef.get_partitions_def_for_dimension("date").get_partition_keys()
    assert dates[0] == "2018-01-10" and dates[-1] == "2018-01-30"
    assert candles.backfill_policy == dg.BackfillPolicy.single_run()


def test_resources_have_offline_env_overridable_defaults(default_defs: dg.Definitions) -> None:
    res = default_defs.resources
    assert res["store"].db_url == "" and res["market_data"].kind == ""
    assert Path(res["universe"].path) == REPO_ROOT / "config" / "universe.yaml"


def test_embedded_instance_config(tmp_path: Path) -> None:
    shutil.copy(REPO_ROOT / "dagster_home" / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 2
        assert instance.run_monitoring_enabled
        assert not instance.telemetry_enabled
        assert "sqlite" in type(instance.run_storage).__name__.lower()


def test_postgres_instance_config_is_valid() -> None:
    """The file's shape (the live check that Dagster accepts it is tests/pipeline/test_postgres_pipeline.py,
    which runs ingestion and a refresh on an instance built from exactly this file)."""
    config = yaml.safe_load((REPO_ROOT / "dagster_home" / "dagster.postgres.yaml").read_text())
    pg = config["storage"]["postgres"]["postgres_db"]
    assert pg["scheme"] == "postgresql+psycopg2"
    assert pg["hostname"] == {"env": "DAGSTER_PG_HOST"}


def test_workspace_points_at_the_code_location() -> None:
    doc = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    [entry] = doc["load_from"]
    assert entry["python_module"]["module_name"] == "pipeline.definitions"
    assert entry["python_module"]["working_directory"] == "."


def test_build_defs_for_another_universe(tmp_path: Path) -> None:
    from pipeline_helpers import make_defs, write_universe

    defs = make_defs(write_universe(tmp_path / "u.yaml"))
    dg.Definitions.validate_loadable(defs)
    symbols = defs.resolve_assets_def("candles").partitions_def.get_partitions_def_for_dimension("symbol")
    assert symbols.get_partition_keys() == ["AAA-USDT", "BBB-USDT", "CCC-USDT"]


def test_pipeline_holds_no_indicator_logic() -> None:
    """Features and strategies come from the engine: no TA-Lib or indicator maths in pipeline/."""
    for path in (REPO_ROOT / "pipeline").rglob("*.py"):
        text = path.read_text()
        for banned in ("import talib", "ewm(", ".rolling("):
            assert banned not in text, f"{path}: {banned}"
