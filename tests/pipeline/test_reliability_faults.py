"""Run-level fault injection (issue 9): the real `CcxtProvider` against a scripted fake exchange,
through the real `candles` asset and its checks (no network, sleeps recorded, never slept).

For every fault the store afterwards holds exactly what it held before plus only fully validated new
candles (nothing at all when the run fails), and the run's status and message say what happened.
Before each faulty run, 2024-01-01 is ingested cleanly; the faulty run covers 2024-01-01..02.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from fault_exchange import DAY, SLEEPS, FaultyExchangeData, candle
from pipeline_helpers import make_defs, materialize, open_store, write_universe

from pipeline.defs.market_data.partitions import range_tags
from pipeline.universe import load_universe

SYMBOLS = ["ETH/BTC", "LTC/BTC"]
FAILS = "failed; nothing was written for this run's 4 partitions"
PAGE = "binance 'ETH/BTC' page since=2024-01-01T00:00:00+00:00"
# scenario: (run succeeds, words in the failure message or the run's logs, sleeps that must appear in order)
CASES = {
    "timeouts": (True, [], [1.0, 2.0]),
    "429": (True, [], [7.0]),
    "malformed_json_once": (True, [], [1.0]),
    "empty_page_once": (True, [], [1.0]),
    "disorder": (True, [], []),
    "repeats": (True, [], []),
    "5xx_forever": (False, [FAILS, PAGE, "giving up after 3 attempts (ExchangeNotAvailable: 503"], [1.0, 2.0]),
    "malformed_json": (False, [FAILS, PAGE, "giving up after 3 attempts (BadResponse"], [1.0, 2.0]),
    "high_below_low": (False, [FAILS, PAGE, "fail rule 'high >= max(open, close)'"], []),
}


@pytest.fixture
def fault_env(dagster_home: Path, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    path = write_universe(tmp_path / "binance.yaml", name="faults", exchange="binance",
                          provider={"kind": "ccxt", "options": {"exchange_id": "binance"}}, symbols=SYMBOLS,
                          start="2024-01-01", end="2024-01-03T00:00:00Z")  # fmt: skip
    monkeypatch.setenv("CRYPTO4H_UNIVERSE", str(path))
    return {"universe": path, "db_url": db_url, "defs": make_defs(path, db_url)}


def _run(env: dict, instance, scenario: str, last: date) -> dg.ExecuteInProcessResult:
    tags = range_tags(load_universe(env["universe"]), date(2024, 1, 1), last)
    SLEEPS.clear()
    return materialize(env["defs"], "candles", tags=tags, instance=instance,
                       resources={"market_data": FaultyExchangeData(scenario=scenario)})  # fmt: skip


def _stored(url: str) -> dict[str, pd.DataFrame]:
    store = open_store(url)
    try:
        return {s: store.read_candles("binance", s) for s in SYMBOLS}
    finally:
        store.dispose()


def _book(slots: range) -> pd.DataFrame:
    rows = [candle(i) for i in slots]
    df = pd.DataFrame(rows, columns=["timestamp", "open", "high", "low", "close", "volume"])
    df["timestamp"] = pd.to_datetime(df["timestamp"], unit="ms", utc=True)
    return df


def _failure(result: dg.ExecuteInProcessResult) -> str:
    return " ".join(e.step_failure_data.user_failure_data.description for e in result.all_events
                    if e.event_type_value == "STEP_FAILURE" and e.step_failure_data.user_failure_data)  # fmt: skip


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    cols = ["timestamp", "open", "high", "low", "close", "volume"]
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True), check_dtype=False)


def _in_order(sub: list[float], seq: list[float]) -> bool:
    it = iter(seq)
    return all(any(x == y for y in it) for x in sub)


@pytest.mark.parametrize("scenario", list(CASES))
def test_a_faulty_exchange_leaves_the_store_consistent(fault_env, instance, scenario) -> None:
    ok, words, sleeps = CASES[scenario]
    assert _run(fault_env, instance, "clean", date(2024, 1, 1)).success
    before = _stored(fault_env["db_url"])
    assert all(len(df) == DAY for df in before.values())
    t0 = time.monotonic()
    result = _run(fault_env, instance, scenario, date(2024, 1, 2))
    assert time.monotonic() - t0 < 30  # backoff is recorded, not slept
    after = _stored(fault_env["db_url"])
    run = instance.get_run_by_id(result.run_id)
    assert result.success is ok and run.status == (dg.DagsterRunStatus.SUCCESS if ok else dg.DagsterRunStatus.FAILURE)
    assert _in_order(sleeps, SLEEPS), SLEEPS
    if ok:
        for symbol in SYMBOLS:  # what it held plus the new, validated candles: the whole book, once, in order
            _same(after[symbol], _book(range(2 * DAY)))
        checks = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
                  for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}  # fmt: skip
        assert checks == dict.fromkeys(("schema", "duplicates", "gaps", "ohlc_sanity", "freshness"), True)
    else:
        message = _failure(result)
        for word in words:
            assert word in message, message
        for symbol in SYMBOLS:  # exactly what it held
            _same(after[symbol], before[symbol])
        assert not result.get_asset_materialization_events()


def test_a_persistently_empty_page_is_reported_missing_never_stored_as_complete(fault_env, instance) -> None:
    """Pages from 2024-01-02 09:20 keep coming back empty: the valid candles before are stored, the rest
    of the day is recorded missing (not "no data"), and the blocking gaps check fails the run naming it."""
    assert _run(fault_env, instance, "clean", date(2024, 1, 1)).success
    result = _run(fault_env, instance, "empty_pages", date(2024, 1, 2))
    after = _stored(fault_env["db_url"])
    assert not result.success and instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.FAILURE
    gaps = [e.asset_check_evaluation_data for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.asset_check_evaluation_data.check_name == "gaps"]  # fmt: skip
    [gap] = gaps
    text = f"{gap.description} {gap.metadata}"
    assert not gap.passed and "ETH/BTC [2024-01-02 09:20, 2024-01-03 00:00) (176 slots)" in text, text
    # the partition's own record says why: the provider's evidence (an empty page), not "no data"
    [day2] = [e for e in result.get_asset_materialization_events() if e.partition == "2024-01-02|ETH-BTC"]
    meta = str(day2.materialization.metadata)
    assert "empty page" in meta and "since=2024-01-02T09:20" in meta, meta
    for symbol in SYMBOLS:  # what it held + the validated candles up to the empty page, nothing invented
        _same(after[symbol], _book(range(400)))


def test_an_exchange_ignoring_since_never_confirms_a_hole(fault_env, instance) -> None:
    """Every page answers with the latest 100 candles: the head of the range is missing, the run says so."""
    assert _run(fault_env, instance, "clean", date(2024, 1, 1)).success
    before = _stored(fault_env["db_url"])
    result = _run(fault_env, instance, "ignored_since", date(2024, 1, 2))
    after = _stored(fault_env["db_url"])
    message = _failure(result)
    assert not result.success
    assert "missing" in message, message
    for symbol in SYMBOLS:
        _same(after[symbol], before[symbol])
