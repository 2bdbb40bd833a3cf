"""The pipeline on PostgreSQL: the candle/results store AND the Dagster instance (dagster-postgres, via the
shipped `dagster_home/dagster.postgres.yaml`) on fresh databases. Skipped when the server is unreachable,
unless REQUIRE_POSTGRES=1 (CI), which makes that a failure."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from pipeline_helpers import QUIET, ingest, make_defs, write_universe

from pipeline.universe import REPO_ROOT

pytestmark = pytest.mark.postgres
ADMIN_URL = os.environ.get("CRYPTO4H_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_databases() -> Iterator[tuple[sa.URL, sa.URL]]:
    """Two fresh databases (store, dagster), dropped afterwards."""
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    tag = uuid.uuid4().hex[:8]
    names = [f"crypto4h_pipe_store_{tag}", f"crypto4h_pipe_dagster_{tag}"]
    try:
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        msg = f"PostgreSQL unreachable at {sa.make_url(ADMIN_URL)!r}: {exc.orig}"
        if os.environ.get("REQUIRE_POSTGRES", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"REQUIRE_POSTGRES=1 but {msg}", pytrace=False)
        pytest.skip(msg)
    base = sa.make_url(ADMIN_URL)
    try:
        yield base.set(database=names[0]), base.set(database=names[1])
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_pipeline_on_postgres_store_and_instance(
    pg_databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.store import Store

    store_url, dagster_url = pg_databases
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster_home" / "dagster.postgres.yaml", home / "dagster.yaml")
    store_text = store_url.render_as_string(hide_password=False)
    for name, value in {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": dagster_url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(dagster_url.port or 5432),
        "DAGSTER_PG_USER": dagster_url.username or "postgres",
        "DAGSTER_PG_PASSWORD": dagster_url.password or "",
        "DAGSTER_PG_DB": dagster_url.database,
        "CRYPTO4H_DB_URL": store_text,
        "CRYPTO4H_REQUESTS_DIR": str(tmp_path / "requests"),
    }.items():
        monkeypatch.setenv(name, value)
    uni_path = write_universe(tmp_path / "universe.yaml")
    monkeypatch.setenv("CRYPTO4H_UNIVERSE", str(uni_path))
    defs = make_defs(uni_path)  # store URL from the environment, as in production

    with dg.DagsterInstance.get() as instance:
        assert "Postgres" in type(instance.run_storage).__name__
        assert ingest(defs, uni_path, instance).success

        sensor = defs.resolve_sensor_def("refresh_after_candles")
        tick = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def())
        )
        [req] = tick.run_requests
        refresh = defs.resolve_job_def("refresh_research").execute_in_process(
            instance=instance, run_config=QUIET, tags=req.tags
        )
        assert refresh.success
        assert len(instance.get_run_records()) == 2
        assert instance.get_latest_materialization_event(dg.AssetKey("strategy_comparison")) is not None
        again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=tick.cursor,
                                                             repository_def=defs.get_repository_def()))  # fmt: skip
        assert not again.run_requests

    store = Store(url=store_text)
    try:
        assert store.engine.dialect.name == "postgresql"
        assert store.candle_summary("synthetic", "AAA/USDT")["rows"] > 3900
        runs = store.list_backtests()
        assert set(runs["strategy"]) == {"macd_rsi_confluence", "momentum_rank"}
        assert (runs["status"] == "success").all()
        assert len(store.latest_ranking("momentum_rank")) == 3
    finally:
        store.dispose()


def test_long_provider_description_is_stored_short_on_postgres(
    pg_databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`candles.source` is VARCHAR(64): PostgreSQL refuses longer text (StringDataRightTruncation), so the
    store gets `kind:exchange` and the full `describe()` stays in the asset metadata."""
    from datetime import date

    from fake_market import DoctoredMarketData
    from pipeline_helpers import materialize

    from pipeline.defs.market_data.partitions import range_tags
    from pipeline.universe import load_universe

    store_url, _ = pg_databases
    store_text = store_url.render_as_string(hide_password=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    uni_path = write_universe(tmp_path / "universe.yaml")
    defs = make_defs(uni_path, store_text)
    tags = range_tags(load_universe(uni_path), date(2024, 3, 1), date(2024, 3, 1))
    result = materialize(defs, "candles", tags=tags, resources={"market_data": DoctoredMarketData(mode="verbose")})
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert len(meta["source"].value) > 200
    engine = sa.create_engine(store_text)
    try:
        with engine.connect() as conn:
            width = conn.execute(sa.text(
                "SELECT character_maximum_length FROM information_schema.columns "
                "WHERE table_name = 'candles' AND column_name = 'source'"
            )).scalar()  # fmt: skip
            sources = {r[0] for r in conn.execute(sa.text("SELECT DISTINCT source FROM candles"))}
            rows = conn.execute(sa.text("SELECT count(*) FROM candles")).scalar()
    finally:
        engine.dispose()
    assert width == 64 and sources == {"synthetic:synthetic"} and rows > 3 * 280
