"""The `candles` asset (partition-range runs, idempotency, all-or-nothing writes) and its checks."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import pandas as pd
import pytest
from fake_market import DoctoredMarketData
from pipeline_helpers import SMALL_SYMBOLS, cells, materialize, materialized_keys

from pipeline.defs.market_data.partitions import range_tags
from pipeline.universe import load_universe

DAY0 = date(2024, 3, 1)


def _tags(universe_path, first: date, days: int) -> dict:
    return range_tags(load_universe(universe_path), first, first + timedelta(days=days - 1))


def _rows(store, symbols=SMALL_SYMBOLS) -> dict[str, int]:
    return {s: store.candle_summary("synthetic", s)["rows"] for s in symbols}


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_partition_range_run_ingests_every_partition_in_one_run(env, defs_and_store) -> None:
    defs, store = defs_and_store
    result = materialize(defs, "candles", tags=_tags(env["universe"], DAY0, 3))
    assert result.success
    events = result.get_asset_materialization_events()
    assert len(events) == 3 * 3  # 3 days x 3 symbols, one run
    partitions = {e.partition for e in events}
    assert "2024-03-02|BBB-USDT" in partitions
    meta = {e.partition: e.materialization.metadata for e in events}
    day = meta["2024-03-02|BBB-USDT"]
    assert day["expected_rows"].value == 288
    assert 280 <= day["rows"].value <= 288
    assert day["first_open_time"].value.startswith("2024-03-02")
    assert "SYNTHETIC" in day["source"].value
    assert 0 <= day["gaps"].value <= 288 - day["rows"].value
    assert day["synthetic"].value is True and day["run_partitions"].value == 9
    stored = _rows(store)
    assert all(820 <= n <= 864 for n in stored.values()), stored
    assert sum(stored.values()) == day["run_rows"].value
    # the checks ran in the same run, on this run's partitions
    checks = _checks(result)
    assert set(checks) == {"schema", "duplicates", "gaps", "ohlc_sanity", "freshness"}
    assert checks["schema"].passed and checks["duplicates"].passed and checks["ohlc_sanity"].passed
    assert checks["schema"].metadata["scope"].value == "9 partitions of this run"


def test_rerunning_partitions_is_idempotent(env, defs_and_store) -> None:
    defs, store = defs_and_store
    tags = _tags(env["universe"], DAY0, 2)
    assert materialize(defs, "candles", tags=tags).success
    first = {s: store.read_candles("synthetic", s) for s in SMALL_SYMBOLS}
    assert materialize(defs, "candles", tags=tags).success
    again = {s: store.read_candles("synthetic", s) for s in SMALL_SYMBOLS}
    for s in SMALL_SYMBOLS:
        pd.testing.assert_frame_equal(first[s], again[s])
    # a single partition also works (the UI's "materialize one partition")
    single = materialize(defs, "candles", tags={"dagster/partition": "2024-03-03|AAA-USDT"})
    assert single.success and len(single.get_asset_materialization_events()) == 1


def test_provider_failure_writes_nothing_for_the_partition_set(env, defs_and_store) -> None:
    defs, store = defs_and_store
    result = materialize(
        defs,
        "candles",
        tags=_tags(env["universe"], DAY0, 2),
        resources={"market_data": DoctoredMarketData(mode="fail")},
    )
    assert not result.success
    failure = [e for e in result.all_events if e.is_step_failure][0]
    text = str(failure.step_failure_data.error)
    assert "BBB/USDT" in text and "nothing was written" in text and "exchange said no" in text
    assert _rows(store) == dict.fromkeys(SMALL_SYMBOLS, 0)  # AAA was fetched fine, but not written


def test_exchange_mismatch_is_refused(env, defs_and_store) -> None:
    defs, store = defs_and_store
    res = DoctoredMarketData(mode="none", fake_exchange="binance")
    result = materialize(
        defs, "candles", tags=_tags(env["universe"], DAY0, 1), resources={"market_data": res}
    )
    assert not result.success
    assert _rows(store) == dict.fromkeys(SMALL_SYMBOLS, 0)


def _full_selection() -> dg.AssetSelection:
    return dg.AssetSelection.assets("candles", "features", "rankings")


def _failure_text(result: dg.ExecuteInProcessResult) -> str:
    [failure] = [e for e in result.all_events if e.is_step_failure]
    return str(failure.step_failure_data.error)


def test_gappy_data_is_refused_before_anything_is_written(env, defs_and_store) -> None:
    defs, store = defs_and_store
    result = materialize(
        defs, _full_selection(), tags=_tags(env["universe"], DAY0, 2),
        resources={"market_data": DoctoredMarketData(mode="holes")},
    )  # fmt: skip
    assert not result.success
    text = _failure_text(result)
    assert "BBB/USDT 2024-03-01..2024-03-02" in text and "5m slots missing" in text and "> 25%" in text
    assert "nothing was written" in text and str(env["universe"]) in text
    assert _rows(store) == dict.fromkeys(SMALL_SYMBOLS, 0)  # the good symbols were not written either
    assert materialized_keys(result) == set()  # so no refresh, ranking or backtest can read them


def test_schema_valid_spikes_are_refused_before_the_write(env, defs_and_store) -> None:
    defs, store = defs_and_store
    result = materialize(
        defs, _full_selection(), tags=_tags(env["universe"], DAY0, 1),
        resources={"market_data": DoctoredMarketData(mode="spike")},
    )  # fmt: skip
    assert not result.success
    text = _failure_text(result)
    assert "BBB/USDT" in text and "close-to-close jumps above 50%" in text and "first at 2024-03-01" in text
    assert _rows(store) == dict.fromkeys(SMALL_SYMBOLS, 0)
    assert materialized_keys(result) == set()


def test_quality_limits_judge_the_store_after_the_write(env, defs_and_store) -> None:
    """A provider that changed its price unit: each fetch is consistent, but merged with the stored day
    before it the series jumps 10x at midnight. The limits apply to what the store would hold."""
    defs, store = defs_and_store
    assert materialize(defs, "candles", tags=_tags(env["universe"], DAY0, 1)).success
    before = _rows(store)
    result = materialize(
        defs, "candles", tags=_tags(env["universe"], DAY0, 2),
        resources={"market_data": DoctoredMarketData(mode="rescale")},
    )  # fmt: skip
    assert not result.success
    text = _failure_text(result)
    assert "BBB/USDT" in text and "jumps above 50%" in text and "first at 2024-03-02 00:00" in text
    assert _rows(store) == before  # day 2 of every symbol was not written


def test_blocking_check_stops_downstream_assets_on_data_written_elsewhere(env, defs_and_store) -> None:
    """Data that did not come through the asset (an import, another process) is still judged by the
    blocking checks: a failure stops the downstream assets of the same run."""
    defs, store = defs_and_store
    assert materialize(defs, "candles", tags=_tags(env["universe"], DAY0, 14)).success
    bad = store.read_candles("synthetic", "AAA/USDT", start="2024-03-14", end="2024-03-15")
    bad.loc[len(bad) // 2, ["open", "high", "low", "close"]] *= 5  # schema-valid, but a 400% jump
    store.upsert_candles(bad, exchange="synthetic", symbol="AAA/USDT", source="manual import")
    selection = dg.AssetSelection.checks_for_assets("candles") | dg.AssetSelection.assets("features", "rankings")
    result = materialize(defs, selection)
    assert not result.success
    ohlc = _checks(result)["ohlc_sanity"]
    assert not ohlc.passed and ohlc.severity == dg.AssetCheckSeverity.ERROR
    assert ohlc.metadata["bad_bars"].value == 2  # up, then back down
    assert "AAA/USDT" in cells(ohlc.metadata["problems"]) and "2024-03-14" in cells(ohlc.metadata["problems"])
    assert _checks(result)["schema"].passed  # each bar on its own is valid
    assert materialized_keys(result) == set()  # features/rankings never ran on bad data


def test_stored_source_is_short_and_the_description_goes_to_metadata(env, defs_and_store) -> None:
    import sqlalchemy as sa

    defs, store = defs_and_store
    result = materialize(defs, "candles", tags=_tags(env["universe"], DAY0, 1),
                         resources={"market_data": DoctoredMarketData(mode="verbose")})  # fmt: skip
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert len(meta["source"].value) > 200 and "SYNTHETIC" in meta["source"].value  # full describe()
    assert meta["stored_source"].value == "synthetic:synthetic"
    with store.engine.connect() as conn:
        sources = {r[0] for r in conn.execute(sa.text("SELECT DISTINCT source FROM candles"))}
    assert sources == {"synthetic:synthetic"}


def test_stored_source_never_exceeds_the_column() -> None:
    from types import SimpleNamespace

    from pipeline.defs.market_data.assets import SOURCE_MAX_CHARS, stored_source

    real = SimpleNamespace(kind="ccxt", exchange="binance", synthetic=False)
    assert stored_source(real) == "ccxt:binance"
    fake = SimpleNamespace(kind="files", exchange="x" * 200, synthetic=True)
    label = stored_source(fake)
    assert len(label) == SOURCE_MAX_CHARS == 64 and label.endswith(" (SYNTHETIC)")  # the marker survives
    assert stored_source(SimpleNamespace(kind="synthetic", exchange="synthetic", synthetic=True)) == (
        "synthetic:synthetic"
    )


def test_bad_provider_options_fail_the_run_naming_the_file(env, defs_and_store) -> None:
    from pipeline.resources import MarketDataResource

    defs, store = defs_and_store
    result = materialize(defs, "candles", tags=_tags(env["universe"], DAY0, 1),
                         resources={"market_data": MarketDataResource(options={"seeed": 1})})  # fmt: skip
    assert not result.success
    text = _failure_text(result)
    assert "cannot build the 'synthetic' market-data provider" in text and str(env["universe"]) in text
    assert "seeed" in text and "TypeError" not in text.split("\n")[0]
    assert _rows(store) == dict.fromkeys(SMALL_SYMBOLS, 0)


def test_run_summary_is_one_observation_not_copied_to_every_partition(env, defs_and_store) -> None:
    defs, _ = defs_and_store
    result = materialize(defs, "candles", tags=_tags(env["universe"], DAY0, 2))
    assert result.success
    for event in result.get_asset_materialization_events():
        assert "run_summary" not in event.materialization.metadata
    [obs] = [e.asset_observation_data.asset_observation for e in result.all_events
             if e.event_type_value == "ASSET_OBSERVATION"
             and "run_summary" in e.asset_observation_data.asset_observation.metadata]  # fmt: skip
    table = cells(obs.metadata["run_summary"])
    assert all(s in table for s in SMALL_SYMBOLS) and "2024-03-01 .. 2024-03-02" in table
    assert "SYNTHETIC" in obs.metadata["provider"].value


def test_stale_data_is_a_visible_warning_not_a_blocker(tmp_path, env, defs_and_store) -> None:
    defs, _ = defs_and_store
    # the universe ends on 2024-03-15, only the first two days are ingested -> stale at the universe end
    result = materialize(defs, "candles", tags=_tags(env["universe"], DAY0, 2))
    assert result.success
    fresh = _checks(result)["freshness"]
    assert not fresh.passed and fresh.severity == dg.AssetCheckSeverity.WARN
    assert "AAA/USDT" in fresh.metadata["stale_symbols"].value


def test_checks_run_on_their_own_over_recent_days(env, defs_and_store) -> None:
    defs, _ = defs_and_store
    assert materialize(defs, "candles", tags=_tags(env["universe"], date(2024, 3, 12), 3)).success
    result = materialize(defs, dg.AssetSelection.checks_for_assets("candles"))
    assert result.success
    checks = _checks(result)
    assert checks["freshness"].passed
    assert checks["gaps"].metadata["scope"].value.startswith("last 2 days")


@pytest.fixture
def defs_and_store(env):
    from pipeline_helpers import make_defs

    from pipeline.store import Store

    store = Store(url=env["db_url"])
    store.migrate()
    try:
        yield make_defs(env["universe"], env["db_url"]), store
    finally:
        store.dispose()


def test_a_missing_tail_of_a_day_is_recorded_incomplete_and_blocks(env, defs_and_store) -> None:
    """A provider that silently stops early (no evidence the exchange has no candles there): the valid
    candles are kept, the partitions are recorded incomplete, and the blocking gaps check fails at ERROR
    naming the missing ranges. (Before, holes were only counted between a day's first and last candle,
    so a missing tail passed.)"""
    from fake_market import DoctoredMarketData

    defs, store = defs_and_store
    result = materialize(defs, _full_selection(), tags=_tags(env["universe"], DAY0, 2),
                         resources={"market_data": DoctoredMarketData(mode="tail")})  # fmt: skip
    assert not result.success
    meta = {e.partition: e.materialization.metadata for e in result.get_asset_materialization_events()}
    bad = meta["2024-03-01|BBB-USDT"]
    assert bad["complete"].value is False and "2024-03-01 21:00" in bad["missing_ranges"].value
    assert meta["2024-03-01|AAA-USDT"]["complete"].value is True
    gaps = next(e for e in result.get_asset_check_evaluations() if e.check_name == "gaps")
    assert not gaps.passed and gaps.severity == dg.AssetCheckSeverity.ERROR
    assert "never explained" in gaps.description and "BBB/USDT [2024-03-01 21:00" in gaps.description
    assert "AAA/USDT" not in gaps.description and "features" not in materialized_keys(result)
    rows = store.candle_summary("synthetic", "BBB/USDT")
    assert rows["rows"] > 0 and rows["last"].hour < 21  # the valid candles were kept


def test_gaps_check_reads_the_evidence_of_many_partitions_in_pages(env, defs_and_store, monkeypatch) -> None:
    """Dagster returns at most 10,000 event records per call: the evidence of a large backfill (here with
    tiny batches and pages to exercise the paging) is still found for every partition."""
    from pipeline.defs.market_data import completeness

    monkeypatch.setattr(completeness, "KEY_BATCH", 2)
    monkeypatch.setattr(completeness, "PAGE", 3)
    defs, _ = defs_and_store
    result = materialize(defs, "candles", tags=_tags(env["universe"], DAY0, 3))
    assert result.success
    gaps = next(e for e in result.get_asset_check_evaluations() if e.check_name == "gaps")
    assert "not ingested" not in (gaps.description or "") and gaps.metadata["symbols_without_data"].text == "-"
