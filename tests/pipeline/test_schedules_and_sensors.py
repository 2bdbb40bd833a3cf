"""The hourly schedule (RunRequests per tick) and both sensors (cursor, exactly-once, valid run config)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml
from fake_market import DoctoredMarketData, RacyStoreResource
from pipeline_helpers import QUIET, SMALL_SYMBOLS, ingest, make_defs, materialize

from pipeline.defs.backtests.jobs import adhoc_backtest
from pipeline.defs.market_data.partitions import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    build_partitions_def,
    group_by_symbol,
    keys_from_tags,
    range_tags,
)
from pipeline.universe import load_universe


def _tick(defs: dg.Definitions, when: str, instance=None):
    schedule = defs.resolve_schedule_def("hourly_ingest")
    ctx = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=pd.Timestamp(when).to_pydatetime(),
        repository_def=defs.get_repository_def(),
    )  # fmt: skip
    return schedule.evaluate_tick(ctx)


# --- schedule -----------------------------------------------------------------------------------------


def test_schedule_is_hourly_and_on_by_default(env) -> None:
    sched = make_defs(env["universe"]).resolve_schedule_def("hourly_ingest")
    assert sched.cron_schedule == "5 * * * *" and sched.execution_timezone == "UTC"
    assert sched.default_status == dg.DefaultScheduleStatus.RUNNING
    assert sched.job_name == "ingest_candles"


def test_tick_requests_today_for_every_symbol_in_one_run(env) -> None:
    defs = make_defs(env["universe"])
    data = _tick(defs, "2024-03-05T13:05:00Z")
    [req] = data.run_requests
    assert req.run_key == "ingest-2024-03-05T13"
    assert (
        req.tags[RANGE_START_TAG] == "2024-03-05|AAA-USDT"
        and req.tags[RANGE_END_TAG] == "2024-03-05|CCC-USDT"
    )
    keys = keys_from_tags(build_partitions_def(load_universe(env["universe"])), req.tags)
    assert group_by_symbol(keys) == {s: [date(2024, 3, 5)] for s in SMALL_SYMBOLS}
    # another hour of the same day is a different run (run keys include the hour)
    assert _tick(defs, "2024-03-05T14:05:00Z").run_requests[0].run_key == "ingest-2024-03-05T14"


def test_first_tick_of_the_day_also_finishes_yesterday(env) -> None:
    [req] = _tick(make_defs(env["universe"]), "2024-03-06T00:05:00Z").run_requests
    assert (
        req.tags[RANGE_START_TAG] == "2024-03-05|AAA-USDT"
        and req.tags[RANGE_END_TAG] == "2024-03-06|CCC-USDT"
    )


def test_tick_outside_the_universe_is_skipped(env) -> None:
    defs = make_defs(env["universe"])
    after = _tick(defs, "2024-04-01T10:05:00Z")
    assert not after.run_requests and "historical" in after.skip_message
    before = _tick(defs, "2024-01-01T10:05:00Z")
    assert not before.run_requests and "before the universe start" in before.skip_message


def test_tick_run_ingests_today_in_one_run(live_universe_file, db_url, dagster_home, instance) -> None:
    defs = make_defs(live_universe_file, db_url)
    yesterday_late = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=1)).normalize() + pd.Timedelta(
        hours=23, minutes=5
    )
    [req] = _tick(defs, str(yesterday_late), instance).run_requests
    result = defs.resolve_job_def("ingest_candles").execute_in_process(
        instance=instance, tags=req.tags, run_config=QUIET
    )
    assert result.success
    parts = {e.partition for e in result.get_asset_materialization_events()}
    day = yesterday_late.date().isoformat()
    assert parts == {f"{day}|{s.replace('/', '-')}" for s in SMALL_SYMBOLS}
    assert len(instance.get_run_records()) == 1


# --- request sensor -------------------------------------------------------------------------------------


def _request_sensor(defs, instance, cursor=None):
    sensor = defs.resolve_sensor_def("backtest_requests")
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, repository_def=defs.get_repository_def())
    return sensor.evaluate_tick(ctx)


def _write(folder: Path, name: str, doc) -> Path:
    path = folder / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def test_request_sensor_launches_each_request_exactly_once(env, instance) -> None:
    defs = make_defs(env["universe"])
    sensor = defs.resolve_sensor_def("backtest_requests")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    _write(env["requests"], "fast.yaml", {"strategy": "momentum_rank", "fee_bps": 2, "start": date(2024, 3, 12),
                                         "universe": "AAA/USDT, BBB/USDT", "params": {"max_atr_pct": 0.1}})  # fmt: skip
    first = _request_sensor(defs, instance)
    [req] = first.run_requests
    assert req.run_key.startswith("fast.yaml:")
    assert dg.validate_run_config(adhoc_backtest, req.run_config)  # the daemon would accept it
    cfg = req.run_config["ops"]["run_backtest"]["config"]
    assert cfg["strategy"] == "momentum_rank" and cfg["universe"] == ["AAA/USDT", "BBB/USDT"]
    assert cfg["start"] == "2024-03-12" and cfg["request_key"] == req.run_key
    # same file, next tick: nothing new (cursor)
    again = _request_sensor(defs, instance, first.cursor)
    assert not again.run_requests and again.cursor == first.cursor
    # edited file = a new request with a new key
    _write(env["requests"], "fast.yaml", {"strategy": "momentum_rank", "fee_bps": 3})
    edited = _request_sensor(defs, instance, again.cursor)
    assert len(edited.run_requests) == 1 and edited.run_requests[0].run_key != req.run_key
    assert set(json.loads(edited.cursor)) == {"fast.yaml"}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("strategy: [unclosed", "invalid YAML"),
        ("- just\n- a list\n", "a request is a mapping"),
        ({"strategy": "nope"}, "unknown strategy"),
        ({"strategy": "momentum_rank", "colour": "red"}, "unknown keys ['colour']"),
        ({"universe": ["ETH/BTC"]}, "not in universe"),
        ({"fee_bps": "cheap"}, "fee_bps"),
        ({"params": {"max_atr_pct": -1}}, "max_atr_pct"),
    ],
)
def test_invalid_requests_are_reported_not_launched(env, instance, doc, message) -> None:
    defs = make_defs(env["universe"])
    _write(env["requests"], "bad.yaml", doc)
    _write(env["requests"], "notes.txt", "ignored: not a yaml file")
    data = _request_sensor(defs, instance)
    assert not data.run_requests
    assert "bad.yaml" in data.skip_message and message in data.skip_message
    assert "bad.yaml" in json.loads(data.cursor)  # remembered: not re-validated or launched until it changes
    assert not _request_sensor(defs, instance, data.cursor).run_requests


def test_invalid_request_stays_visible_until_the_file_changes(env, instance) -> None:
    defs = make_defs(env["universe"])
    bad = _write(env["requests"], "bad.yaml", {"strategy": "nope"})
    first = _request_sensor(defs, instance)
    assert not first.run_requests and "invalid bad.yaml" in first.skip_message
    assert json.loads(first.cursor)["bad.yaml"]["error"]  # hash + error kept in the cursor
    # every later tick repeats it (the first tick's message is not the only trace)
    second = _request_sensor(defs, instance, first.cursor)
    assert "bad.yaml" in second.skip_message and "unknown strategy" in second.skip_message
    assert "unchanged since it was rejected" in second.skip_message and second.cursor == first.cursor
    # a valid file launches while the invalid one is still reported on the ticks after
    _write(env["requests"], "good.yaml", {"strategy": "momentum_rank"})
    third = _request_sensor(defs, instance, second.cursor)
    assert [r.tags["crypto4h/request"] for r in third.run_requests] == ["good.yaml"]
    fourth = _request_sensor(defs, instance, third.cursor)
    assert not fourth.run_requests and "invalid bad.yaml" in fourth.skip_message
    # fixing the file launches it once; then the folder is quiet
    _write(env["requests"], "bad.yaml", {"strategy": "momentum_rank", "fee_bps": 4})
    fixed = _request_sensor(defs, instance, fourth.cursor)
    assert [r.tags["crypto4h/request"] for r in fixed.run_requests] == ["bad.yaml"]
    quiet = _request_sensor(defs, instance, fixed.cursor)
    assert not quiet.run_requests and quiet.skip_message == "no new backtest requests"
    # a removed invalid file is no longer reported
    _write(env["requests"], "typo.yaml", "strategy: [unclosed")
    typo = _request_sensor(defs, instance, quiet.cursor)
    assert "typo.yaml" in typo.skip_message
    (env["requests"] / "typo.yaml").unlink()
    gone = _request_sensor(defs, instance, typo.cursor)
    assert gone.skip_message == "no new backtest requests" and "typo.yaml" not in json.loads(gone.cursor)
    assert bad.exists()  # request files are never moved or deleted by the sensor


def test_request_sensor_reads_the_old_cursor_format(env, instance) -> None:
    import hashlib

    defs = make_defs(env["universe"])
    path = _write(env["requests"], "old.yaml", {"strategy": "momentum_rank"})
    old_cursor = json.dumps({"old.yaml": hashlib.sha256(path.read_bytes()).hexdigest()[:16]})
    data = _request_sensor(defs, instance, old_cursor)
    assert not data.run_requests and data.skip_message == "no new backtest requests"


def test_request_sensor_without_folder_skips(env, instance, monkeypatch) -> None:
    monkeypatch.setenv("CRYPTO4H_REQUESTS_DIR", str(env["requests"] / "missing"))
    data = _request_sensor(make_defs(env["universe"]), instance)
    assert not data.run_requests and "does not exist" in data.skip_message


def test_request_is_recorded_once_even_if_launched_twice(env, instance) -> None:
    from pipeline.store import Store

    defs = make_defs(env["universe"], env["db_url"])
    assert ingest(defs, env["universe"], instance).success
    _write(env["requests"], "once.yaml", {"strategy": "macd_rsi_confluence", "fee_bps": 1})
    [req] = _request_sensor(defs, instance).run_requests
    job = defs.resolve_job_def("adhoc_backtest")
    first = job.execute_in_process(run_config={**req.run_config, **QUIET}, instance=instance, tags=req.tags)
    second = job.execute_in_process(run_config={**req.run_config, **QUIET}, instance=instance, tags=req.tags)
    assert first.success and second.success
    assert first.output_for_node("run_backtest") > 0 and second.output_for_node("run_backtest") == -1
    store = Store(url=env["db_url"])
    try:
        runs = store.list_backtests()
        assert (runs["request_key"] == req.run_key).sum() == 1 and store.has_request(req.run_key)
        assert runs.iloc[0]["kind"] == "request"
    finally:
        store.dispose()


# --- refresh sensor -------------------------------------------------------------------------------------


def _refresh(defs, instance, cursor=None):
    sensor = defs.resolve_sensor_def("refresh_after_candles")
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                        repository_def=defs.get_repository_def()))  # fmt: skip


def test_refresh_sensor_fires_once_per_successful_ingestion(env, instance) -> None:
    defs = make_defs(env["universe"], env["db_url"])
    sensor = defs.resolve_sensor_def("refresh_after_candles")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING and sensor.job_name == "refresh_research"
    empty = _refresh(defs, instance)
    assert not empty.run_requests and "no new candle" in empty.skip_message

    run = ingest(defs, env["universe"], instance, days=2)
    data = _refresh(defs, instance, empty.cursor)
    [req] = data.run_requests
    assert req.run_key == f"refresh-after-{run.run_id}"
    assert not _refresh(defs, instance, data.cursor).run_requests  # exactly once (cursor)

    # data refused before the write: nothing materialised, nothing to refresh
    tags = range_tags(load_universe(env["universe"]), date(2024, 3, 5), date(2024, 3, 6))
    refused = materialize(defs, "candles", instance=instance, tags=tags,
                          resources={"market_data": DoctoredMarketData(mode="holes")})  # fmt: skip
    assert not refused.success and not refused.get_asset_materialization_events()
    after_refused = _refresh(defs, instance, data.cursor)
    assert not after_refused.run_requests and "no new candle" in after_refused.skip_message

    # a run whose blocking check fails after the write (another writer raced it) does not refresh research
    bad = materialize(defs, "candles", instance=instance, tags=tags,
                      resources={"store": RacyStoreResource(db_url=env["db_url"])})  # fmt: skip
    assert not bad.success and len(bad.get_asset_materialization_events()) == 6
    after_bad = _refresh(defs, instance, data.cursor)
    assert not after_bad.run_requests and "FAILURE" in after_bad.skip_message
    assert after_bad.cursor == data.cursor  # waits: nothing consumed while the latest ingestion failed

    # the next good ingestion (checks pass on its days) refreshes once, from that run only
    good = ingest(defs, env["universe"], instance, first=date(2024, 3, 7), days=2)
    resumed = _refresh(defs, instance, data.cursor)
    [req] = resumed.run_requests
    assert req.run_key == f"refresh-after-{good.run_id}"
    assert int(resumed.cursor) > int(data.cursor)


def test_refresh_sensor_waits_while_the_latest_ingestion_failed(env, instance) -> None:
    defs = make_defs(env["universe"], env["db_url"])
    assert ingest(defs, env["universe"], instance, days=2).success  # not refreshed yet
    tags = range_tags(load_universe(env["universe"]), date(2024, 3, 3), date(2024, 3, 4))
    failed = materialize(defs, "candles", instance=instance, tags=tags,
                         resources={"market_data": DoctoredMarketData(mode="fail")})  # fmt: skip
    assert not failed.success
    data = _refresh(defs, instance)
    assert not data.run_requests and data.cursor is None
    assert f"blocked: the latest ingestion run {failed.run_id[:8]} ended in FAILURE" in data.skip_message
    fixed = ingest(defs, env["universe"], instance, first=date(2024, 3, 3), days=2)
    [req] = _refresh(defs, instance).run_requests
    assert req.run_key == f"refresh-after-{fixed.run_id}"


def test_refresh_sensor_waits_while_a_blocking_check_fails(env, instance) -> None:
    from pipeline_helpers import open_store

    defs = make_defs(env["universe"], env["db_url"])
    assert ingest(defs, env["universe"], instance).success
    store = open_store(env["db_url"])
    try:  # another writer (an import script) stores a schema-valid 400% spike
        bad = store.read_candles("synthetic", "BBB/USDT", start="2024-03-14", end="2024-03-15")
        bad.loc[100, ["open", "high", "low", "close"]] *= 5
        store.upsert_candles(bad, exchange="synthetic", symbol="BBB/USDT", source="manual import")
    finally:
        store.dispose()
    checks = materialize(defs, dg.AssetSelection.checks_for_assets("candles"), instance=instance)
    assert not checks.success  # ohlc_sanity failed with ERROR severity
    data = _refresh(defs, instance)
    assert not data.run_requests and data.cursor is None
    assert "blocked: the latest 'ohlc_sanity' check on candles" in data.skip_message
    assert _refresh(defs, instance).skip_message == data.skip_message  # still blocked on the next tick
    # re-ingesting the damaged days overwrites the spike; its checks pass, the refresh goes ahead
    repair = ingest(defs, env["universe"], instance, first=date(2024, 3, 13), days=2)
    assert repair.success
    [req] = _refresh(defs, instance).run_requests
    assert req.run_key == f"refresh-after-{repair.run_id}"


def test_refresh_sensor_waits_while_a_refresh_or_ingestion_is_in_progress(env, instance) -> None:
    defs = make_defs(env["universe"], env["db_url"])
    assert ingest(defs, env["universe"], instance, days=2).success
    busy = instance.add_run(dg.DagsterRun(job_name="refresh_research", status=dg.DagsterRunStatus.STARTED))
    waiting = _refresh(defs, instance)
    assert not waiting.run_requests and "waiting: refresh run" in waiting.skip_message
    assert waiting.cursor is None  # nothing consumed: evaluated again once the refresh is done
    instance.report_run_canceled(busy)
    assert len(_refresh(defs, instance).run_requests) == 1


def test_refresh_sensor_skips_when_research_already_ran(env, instance) -> None:
    defs = make_defs(env["universe"], env["db_url"])
    assert ingest(defs, env["universe"], instance).success
    refresh = defs.resolve_job_def("refresh_research").execute_in_process(instance=instance, run_config=QUIET)
    assert refresh.success
    data = _refresh(defs, instance)
    assert not data.run_requests and "already refreshed" in data.skip_message


def test_refresh_request_targets_the_research_assets(env) -> None:
    job = make_defs(env["universe"]).resolve_job_def("refresh_research")
    keys = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    from engine.strategies import list_strategies

    per_strategy = {f"backtests/{i.name}" for i in list_strategies()}  # one scheduled backtest each
    assert keys == {"features", "rankings", *per_strategy, "strategy_performance", "strategy_comparison",
                    "strategies"}  # fmt: skip
    assert dg.validate_run_config(job, {})
