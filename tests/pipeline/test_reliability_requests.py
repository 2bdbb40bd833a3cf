"""Issue 9, item 1: one bad request file never stops the others.

Every problem of a file is reported against that file (all of them, not only the first), raw loader
errors (`2018-13-45`, `.inf`, `.nan`, a list where a number goes) become request errors, valid files in
the same folder launch in the same tick, and an invalid file stays visible on every tick until it
changes. Everything the parser accepts is a run config the daemon accepts too.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from pipeline_helpers import make_defs

from pipeline.defs.backtests.jobs import adhoc_backtest
from pipeline.defs.backtests.requests import RequestSpecError, parse_request
from pipeline.universe import load_universe

GOOD = "strategy: momentum_rank\nfee_bps: 2\n"


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None = None):
    sensor = defs.resolve_sensor_def("backtest_requests")
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, repository_def=defs.get_repository_def())
    return sensor.evaluate_tick(ctx)


def _launched(data) -> list[str]:
    return sorted(r.tags["crypto4h/request"] for r in data.run_requests)


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("start: 2018-13-45\n", "start", "month must be in 1..12"),
        ("end: 2018-02-30\n", "end", "day is out of range"),
        ("start: 2018-01-01T25:00:00\n", "start", "hour must be in 0..23"),
        ("window_hours: .inf\n", "window_hours", "finite"),
        ("window_hours: .nan\n", "window_hours", "finite"),
        ("shift_hours: -.inf\n", "shift_hours", "finite"),
        ("fee_bps: .nan\n", "fee_bps", "finite"),
        ("slippage_bps: .inf\n", "slippage_bps", "finite"),
        ("window_hours: 1e400\n", "window_hours", "finite"),
        ("fee_bps: [1, 2]\n", "fee_bps", "valid number"),
        ("max_positions: {a: 1}\n", "max_positions", "valid integer"),
        ("max_positions: .inf\n", "max_positions", "finite"),
        ("warmup_bars: .nan\n", "warmup_bars", "finite"),
        ("start: 12\n", "start", "valid string"),
        ("universe: 5\n", "universe", "valid list"),
        ("params: [1]\n", "params", "valid dictionary"),
        ("strategy: momentum_rank\nparams: {max_atr_pct: .nan}\n", "params", "finite"),
    ],
)
def test_each_bad_value_is_a_request_error_naming_its_field(universe_file: Path, text, field, words) -> None:
    uni = load_universe(universe_file)
    with pytest.raises(RequestSpecError) as err:
        parse_request(text, "k", uni)
    msg = str(err.value)
    assert msg.startswith(f"{field}:") and words in msg, msg
    assert "Traceback" not in msg


def test_every_problem_of_one_file_is_reported_at_once(universe_file: Path) -> None:
    text = ("strategy: momentum_rank\nstart: 2018-13-45\nwindow_hours: .inf\nfee_bps: [1, 2]\n"
            "max_positions: 2.5\nshift_hours: -1\ncolour: red\nuniverse: [ETH/BTC]\n"
            "params: {max_atr_pct: -1}\n")  # fmt: skip
    with pytest.raises(RequestSpecError) as err:
        parse_request(text, "k", load_universe(universe_file))
    fields = [p.split(":")[0] for p in err.value.problems]
    assert {"start", "window_hours", "fee_bps", "max_positions", "shift_hours", "params", "universe"} <= set(fields)
    assert any("unknown keys ['colour']" in p for p in err.value.problems)
    assert len(err.value.problems) == 8


@pytest.mark.parametrize(
    "text",
    ["max_positions: 99999999999999999999999999\n", "max_positions: 100000\nwarmup_bars: 100000\n",
     "fee_bps: 1e300\n", "universe: AAA/USDT, BBB/USDT\nstart: 2024-03-10\nend: 2024-03-12T00:00:00Z\n"],
)
def test_what_the_parser_accepts_the_daemon_accepts(universe_file: Path, text) -> None:
    """A request that passes the sensor must not fail later in the daemon's run-config validation."""
    from pipeline.defs.backtests.jobs import request_run_config

    try:
        req = parse_request(text, "k", load_universe(universe_file))
    except RequestSpecError:
        return  # refused up front, with a message: fine
    config = request_run_config(req).to_config_dict()
    assert dg.validate_run_config(adhoc_backtest, config)


def test_valid_files_launch_in_the_same_tick_as_broken_ones(env, instance) -> None:
    folder = env["requests"]
    (folder / "a_good.yaml").write_text(GOOD)
    (folder / "b_bad_date.yaml").write_text("start: 2018-13-45\n")
    (folder / "c_inf.yaml").write_text("window_hours: .inf\nfee_bps: .nan\n")
    (folder / "d_list.yaml").write_text("fee_bps: [1, 2]\n")
    (folder / "e_binary.yml").write_bytes(b"\x00\x9f\x92\x96 start: [")
    (folder / "f_dir.yaml").mkdir()  # unreadable as a file
    (folder / "z_good.yml").write_text("strategy: macd_rsi_confluence\n")
    defs = make_defs(env["universe"])
    first = _tick(defs, instance)
    assert _launched(first) == ["a_good.yaml", "z_good.yml"]
    for cfg in (r.run_config for r in first.run_requests):
        assert dg.validate_run_config(adhoc_backtest, cfg)
    # the launching tick still reports the broken ones (in its log; the skip reason shows on later ticks)
    cursor = json.loads(first.cursor)
    assert {"b_bad_date.yaml", "c_inf.yaml", "d_list.yaml", "e_binary.yml"} <= set(cursor)
    assert "month must be in 1..12" in cursor["b_bad_date.yaml"]["error"]
    assert "window_hours" in cursor["c_inf.yaml"]["error"] and "fee_bps" in cursor["c_inf.yaml"]["error"]
    # later ticks: nothing relaunched, every broken file still named with its problems
    for _ in range(2):
        later = _tick(defs, instance, first.cursor)
        assert not later.run_requests
        for name in ("b_bad_date.yaml", "c_inf.yaml", "d_list.yaml", "e_binary.yml", "f_dir.yaml"):
            assert f"invalid {name}" in later.skip_message, later.skip_message
        assert "finite" in later.skip_message and "month must be in 1..12" in later.skip_message


def test_an_unexpected_error_in_one_file_is_reported_against_it(env, instance, monkeypatch) -> None:
    """Whatever goes wrong while checking one file (even a bug), the other files still launch."""
    import pipeline.defs.backtests.sensors as sensors

    real = sensors.parse_request

    def flaky(content, key, universe):
        if key.startswith("boom.yaml"):
            raise RuntimeError("checker bug")
        return real(content, key, universe)

    monkeypatch.setattr(sensors, "parse_request", flaky)
    (env["requests"] / "boom.yaml").write_text(GOOD)
    (env["requests"] / "ok.yaml").write_text(GOOD)
    defs = make_defs(env["universe"])
    data = _tick(defs, instance)
    assert _launched(data) == ["ok.yaml"]
    later = _tick(defs, instance, data.cursor)
    assert "invalid boom.yaml: cannot be checked: RuntimeError('checker bug')" in later.skip_message


def test_a_request_recorded_by_a_concurrent_run_is_skipped_not_failed(env, instance, monkeypatch) -> None:
    """Two runs of one request (a retried launch, a second sensor) race past the `has_request` check:
    the loser finds the key taken when it records, and ends like any repeat: skipped, nothing written."""
    from pipeline_helpers import QUIET, ingest

    from pipeline.store import Store

    defs = make_defs(env["universe"], env["db_url"])
    assert ingest(defs, env["universe"], instance).success
    (env["requests"] / "race.yaml").write_text("strategy: momentum_rank\nfee_bps: 3\n")
    [req] = _tick(defs, instance).run_requests
    job = defs.resolve_job_def("adhoc_backtest")
    first = job.execute_in_process(run_config={**req.run_config, **QUIET}, instance=instance, tags=req.tags)
    assert first.success and first.output_for_node("run_backtest") > 0
    monkeypatch.setattr(Store, "has_request", lambda self, key: False)  # the check ran before the other commit
    second = job.execute_in_process(run_config={**req.run_config, **QUIET}, instance=instance, tags=req.tags,
                                    raise_on_error=False)  # fmt: skip
    assert second.success, [e.message for e in second.all_events if e.event_type_value == "STEP_FAILURE"]
    assert second.output_for_node("run_backtest") == -1
    monkeypatch.undo()
    store = Store(url=env["db_url"])
    try:
        assert (store.list_backtests(limit=100)["request_key"] == req.run_key).sum() == 1
    finally:
        store.dispose()


@pytest.mark.parametrize(
    "spec",
    [
        {"window_hours": 6, "shift_hours": 3},
        {"sizing": "fixed_fraction", "position_fraction": 0.2},
        {"start": "2024-03-05", "end": "2024-03-09", "fee_bps": 3, "slippage_bps": 2},
        {"sizing": "inverse_volatility", "max_weight": 0.4, "max_positions": 2, "compounding": True},
    ],
)
def test_valid_files_that_set_related_fields_together_are_accepted(universe_file, spec) -> None:
    """Related fields are judged together: 6h windows every 3h, or fixed_fraction with its fraction, are
    valid even though each field alone would break a rule against the other's default."""
    import yaml

    req = parse_request(yaml.safe_dump({"strategy": "momentum_rank", **spec}), "k", load_universe(universe_file))
    assert {k: getattr(req, k) for k in spec} == spec
