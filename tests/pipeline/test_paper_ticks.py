"""Paper ticks on a fixed clock over several days of the synthetic market: exactly one decision per
(strategy, decision time) whatever the ticks do - repeated, missed, late, before the data landed -
settlement once the window's candles are stored, and the job's metadata; plus the schedule."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pandas as pd
import pytest
from paper_helpers import PaperSim, checks, materialization, registered, ts
from pipeline_helpers import cells, records

from engine.strategies.base import RISK_PARAMS, TradingStrategy

H = pd.Timedelta(hours=1)
LAST_TICK = ts("2024-03-07 04:15")


@pytest.fixture(scope="module")
def timeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Two and a bit days of ticks with every irregularity, observed as they happen."""
    root = tmp_path_factory.mktemp("paper")
    mp = pytest.MonkeyPatch()
    mp.setenv("DAGSTER_HOME", str(root))
    mp.setenv("CRYPTO4H_REPORTS_DIR", str(root / "reports"))
    sim = PaperSim(root, f"sqlite:///{root / 'store.db'}")
    seen: dict[str, dict] = {}

    def step(name: str, land: str | None, tick: str) -> None:
        if land:
            sim.land(ts(land))
        seen[name] = sim.tick(ts(tick))

    step("first", "2024-03-05 00:10", "2024-03-05 00:15")
    step("repeated", None, "2024-03-05 00:15")  # the same tick again (a retry, a manual launch)
    step("between", None, "2024-03-05 01:15")  # an odd hour: no decision time due
    step("t0200", "2024-03-05 02:10", "2024-03-05 02:15")
    step("t0400", "2024-03-05 04:10", "2024-03-05 04:15")
    # the 06:15 and 07:15 ticks never ran (daemon down)
    step("after_outage", "2024-03-05 08:10", "2024-03-05 08:15")
    # the ingestion of 10:05 is slow: at the 10:15 tick the store only holds candles closed by 09:57
    step("before_data", "2024-03-05 09:57", "2024-03-05 10:15")
    step("data_late", "2024-03-05 10:40", "2024-03-05 11:15")
    step("late_tick", "2024-03-05 12:10", "2024-03-05 12:50")  # the tick itself ran 50 min after t
    clock = ts("2024-03-05 13:15")
    while clock <= LAST_TICK:  # then every hour, as scheduled
        seen[f"{clock:%d %H}"] = sim.tick(clock) if sim.land(clock - pd.Timedelta(minutes=5)) is None else {}
        clock += H
    try:
        yield {"sim": sim, "seen": seen, "root": root}
    finally:
        mp.undo()


def by_time(sim: PaperSim, strategy: str = "momentum_rank") -> pd.DataFrame:
    d = sim.decisions()
    return d.loc[d["strategy"] == strategy].set_index("decision_time")


def test_each_decision_time_is_recorded_exactly_once(timeline) -> None:
    sim = timeline["sim"]
    d = sim.decisions()
    assert not d.duplicated(["strategy", "decision_time"]).any()
    d = d.loc[d["decision_time"] <= LAST_TICK]  # the job test may add later ones
    assert set(d["strategy"]) == {"macd_rsi_confluence", "momentum_rank"}
    grid = pd.date_range("2024-03-05 00:00", "2024-03-07 04:00", freq="2h", tz="UTC")
    for _, mine in d.groupby("strategy"):
        assert list(mine["decision_time"]) == list(grid)  # every grid time once, the missed one included
    seen = timeline["seen"]
    assert [r["decision_time"] for r in seen["first"]["recorded"]] == [ts("2024-03-05 00:00")] * 2
    assert seen["repeated"]["recorded"] == [] and seen["repeated"]["settled"] == []
    assert seen["between"]["recorded"] == []
    # a tick that cannot record anything new leaves the store as it was
    before = (sim.decisions(), sim.trades())
    again = sim.tick(LAST_TICK)
    assert again["recorded"] == [] and again["settled"] == []
    pd.testing.assert_frame_equal(before[0], sim.decisions())
    pd.testing.assert_frame_equal(before[1], sim.trades())


def test_modes_say_how_each_decision_was_recorded(timeline) -> None:
    d = by_time(timeline["sim"])
    mode = d["mode"]
    assert mode[ts("2024-03-05 00:00")] == "live" and mode[ts("2024-03-05 02:00")] == "live"
    # missed ticks: caught up by the next tick from the stored candles, and marked so
    assert mode[ts("2024-03-05 06:00")] == "caught_up" and mode[ts("2024-03-05 08:00")] == "live"
    assert "caught up at 2024-03-05 08:15 UTC" in d.loc[ts("2024-03-05 06:00"), "note"]
    assert d.loc[ts("2024-03-05 06:00"), "recorded_at"] == ts("2024-03-05 08:15")
    # data landed after the first tick of 10:00: the next hourly tick records it, late
    assert mode[ts("2024-03-05 10:00")] == "late"
    assert "recorded 75 min after t" in d.loc[ts("2024-03-05 10:00"), "note"]
    # the tick itself ran late
    assert mode[ts("2024-03-05 12:00")] == "late" and "recorded 50 min after t" in d.loc[ts("2024-03-05 12:00"), "note"]
    assert (mode.drop([ts("2024-03-05 06:00"), ts("2024-03-05 10:00"), ts("2024-03-05 12:00")]) == "live").all()
    assert d["note"].str.contains("simulated clock").all()


def test_a_tick_before_the_data_landed_records_nothing_and_says_why(timeline) -> None:
    seen = timeline["seen"]["before_data"]
    assert seen["recorded"] == []
    [why] = seen["waiting"]
    assert "decision at 2024-03-05 10:00 UTC: the candles closed by 2024-03-05 10:00 UTC are not stored yet" in why
    assert "AAA/USDT (newest stored candle closed 2024-03-05 09:55 UTC)" in why
    assert [r["mode"] for r in timeline["seen"]["data_late"]["recorded"]] == ["late", "late"]


def test_trades_settle_once_their_window_closed_and_its_candles_are_stored(timeline) -> None:
    sim = timeline["sim"]
    trades = sim.trades()
    assert len(trades) > 40
    window = pd.Timedelta(hours=4)
    done = trades.loc[trades["status"] != "open"]
    assert (done["settled_at"] >= done["decision_time"] + window).all()
    still_open = trades.loc[trades["status"] == "open"]
    assert (still_open["decision_time"] + window > LAST_TICK - pd.Timedelta(minutes=5)).all()
    assert set(still_open["decision_time"]) == {ts("2024-03-07 02:00"), ts("2024-03-07 04:00")}
    # settled by the first tick after t + 4h: 00:00 at 04:15; 02:00 and 04:00 waited for the outage to end
    first = done.loc[done["decision_time"] == ts("2024-03-05 00:00"), "settled_at"]
    assert (first == ts("2024-03-05 04:15")).all()
    waited = done.loc[done["decision_time"] == ts("2024-03-05 02:00"), "settled_at"]
    assert (waited == ts("2024-03-05 08:15")).all()
    settled = done.loc[done["status"] == "settled"]
    assert settled["exit_time"].le(settled["decision_time"] + window).all()
    assert settled["return_pct"].notna().all() and settled["max_drawdown"].le(0).all()
    d = sim.decisions()
    finished = d.loc[d["settled_at"].notna()]
    assert len(finished) == len(d) - 4  # two strategies x the two windows still open
    assert finished["window_return"].notna().all()


def test_the_job_reports_the_book_and_parity_holds(timeline) -> None:
    sim = timeline["sim"]
    sim.land(ts("2024-03-07 06:10"))
    with dg.instance_for_test() as instance:
        result = sim.run_job(ts("2024-03-07 06:15"), instance=instance)
    assert result.success
    found = checks(result)
    assert found["paper_parity"].passed, found["paper_parity"].description
    assert found["paper_candle_revisions"].passed
    parity = found["paper_parity"].metadata
    assert parity["decisions_compared"].value == len(sim.decisions()) and parity["differences"].value == 0
    tick = materialization(result, "paper_trades")
    assert tick["recorded"].value == 2 and "why_nothing_recorded" not in tick
    assert tick["settled"].value > 0  # the 02:00 windows closed at 06:00
    assert {r["mode"] for r in records(tick["decisions_this_tick"])} == {"live"}
    open_rows = records(tick["open_trades"])
    assert open_rows and {"weight %", "entry_price", "settles_at", "mode"} <= set(open_rows[0])
    settled = cells(tick["settled_trades"])
    assert "return_pct %" in settled and "max_drawdown %" in settled and "exit_price" in settled
    perf = materialization(result, "paper_performance")
    rows = {r["strategy"]: r for r in records(perf["paper_vs_backtest"])}
    assert set(rows) == {"macd_rsi_confluence", "momentum_rank"}
    for row in rows.values():
        assert row["paper_total_return %"] == row["backtest_total_return %"]
        assert row["paper_final_equity (x capital)"] == row["backtest_final_equity (x capital)"]
    assert perf["equity_plot"].value.startswith("![paper vs backtest equity](http")
    assert (timeline["root"] / "reports" / "paper").is_dir() and perf["plot_file"].value.endswith(".png")


def test_a_lagging_symbol_is_waited_for_then_left_out(tmp_path, db_url) -> None:
    sim = PaperSim(tmp_path, db_url, start="2024-03-05T10:00:00Z")
    sim.land(ts("2024-03-05 10:10"), symbols=["AAA/USDT", "BBB/USDT"])
    sim.land(ts("2024-03-05 09:31"), symbols=["CCC/USDT"])  # CCC's feed stalled at 09:25
    waiting = sim.tick(ts("2024-03-05 10:15"))
    assert waiting["recorded"] == [] and "not stored yet for CCC/USDT" in waiting["waiting"][0]
    assert "AAA/USDT" not in waiting["waiting"][0]
    decided = sim.tick(ts("2024-03-05 11:05"))  # more than max_wait (60 min) after t
    assert {r["mode"] for r in decided["recorded"]} == {"late"}
    assert all("without the candles closed by 2024-03-05 10:00 UTC of CCC/USDT" in r["note"]
               for r in decided["recorded"])  # fmt: skip


class Broken(TradingStrategy):
    """TEST ONLY: its score raises, as a buggy strategy would."""

    name = "broken_test"
    description = "TEST ONLY: raises in score"
    param_specs = RISK_PARAMS

    def signal_gates(self, panel: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(index=panel.index)

    def score(self, panel: pd.DataFrame) -> pd.Series:
        raise RuntimeError("boom in score")


class Fixed(Broken):
    def score(self, panel: pd.DataFrame) -> pd.Series:
        return panel["rsi"]


def test_a_failing_strategy_fails_the_tick_but_not_the_other_books(tmp_path, db_url, monkeypatch) -> None:
    monkeypatch.setenv("CRYPTO4H_REPORTS_DIR", str(tmp_path / "reports"))
    sim = PaperSim(tmp_path, db_url)
    sim.land(ts("2024-03-05 02:10"))
    with registered(Broken), dg.instance_for_test() as instance:
        result = sim.run_job(ts("2024-03-05 02:15"), instance=instance)
        assert not result.success
        [failure] = [e for e in result.all_events if e.is_step_failure]
        text = str(failure.event_specific_data)
        assert "decisions failed for ['broken_test']" in text and "boom in score" in text
        d = sim.decisions()
        assert set(d["strategy"]) == {"macd_rsi_confluence", "momentum_rank"}  # both times, the others' books
        assert len(d) == 4
    with registered(Fixed):  # the fix is deployed: its missed decision times are recorded from the stored candles
        again = sim.tick(ts("2024-03-05 03:15"))
    assert {(r["strategy"], r["decision_time"], r["mode"]) for r in again["recorded"]} == {
        ("broken_test", ts("2024-03-05 00:00"), "caught_up"), ("broken_test", ts("2024-03-05 02:00"), "late")}


def test_bad_settings_fail_the_run_with_a_clear_message(tmp_path, db_url, monkeypatch) -> None:
    monkeypatch.setenv("CRYPTO4H_REPORTS_DIR", str(tmp_path / "reports"))
    sim = PaperSim(tmp_path, db_url)
    sim.land(ts("2024-03-05 00:10"))
    with dg.instance_for_test() as instance:
        result = sim.run_job(ts("2024-03-05 00:15"), instance=instance, history_days=1)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "history_days=1 is shorter than the warm-up of 48 closed 1h bars" in str(failure.event_specific_data)


def test_paper_tick_schedule_requests_one_run_per_hour(live_universe_file, universe_file, db_url) -> None:
    from pipeline_helpers import make_defs

    from pipeline.defs.paper.config import run_config
    from pipeline.defs.paper.schedules import build_paper_schedule
    from pipeline.universe import load_universe

    live = build_paper_schedule(load_universe(live_universe_file))
    at = pd.Timestamp.now(tz="UTC").floor("h") + pd.Timedelta(minutes=15)
    request = live(dg.build_schedule_context(scheduled_execution_time=at.to_pydatetime()))
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == f"paper-{at:%Y-%m-%dT%H}" and request.tags["crypto4h/tick"] == f"{at:%Y-%m-%dT%H:%M}Z"
    assert live.cron_schedule == "15 * * * *" and live.default_status == dg.DefaultScheduleStatus.RUNNING
    historical = build_paper_schedule(load_universe(universe_file))
    skip = historical(dg.build_schedule_context(scheduled_execution_time=at.to_pydatetime()))
    assert isinstance(skip, dg.SkipReason) and "historical" in skip.skip_message
    job = make_defs(universe_file, db_url).resolve_job_def("paper_trading")  # what the daemon validates
    assert dg.validate_run_config(job, run_config(as_of="2024-03-05T10:15:00Z", warmup_bars=48))
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(job, run_config(as_off="2024-03-05T10:15:00Z"))
