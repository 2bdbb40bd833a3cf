"""The parity check: it fails at ERROR on a planted lookahead (a strategy registered only here that peeks
at the next decision time's bar), passes on the registered strategies, and explains - instead of failing
mysteriously - the differences a candle revised after the paper book read it causes; the revision check
reports the old and new values, and `resettle` settles the affected trades again."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pandas as pd
import pytest
from paper_helpers import PaperSim, checks, materialization, registered, ts
from pipeline_helpers import records

from engine.strategies.base import RISK_PARAMS, TradingStrategy


class PeekAhead(TradingStrategy):
    """TEST ONLY: ranks by the NEXT decision time's bar close, i.e. by the future. In a backtest panel the
    next row of a symbol is 2h ahead; at a live decision there is no next row. The lookahead bug class
    of "a rolling/shift over the panel in the wrong direction"."""

    name = "peek_ahead"
    description = "TEST ONLY: looks one decision time ahead (a planted lookahead)"
    param_specs = RISK_PARAMS
    gate_labels = {"gate_any": "never fails"}

    def signal_gates(self, panel: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"gate_any": panel["close"].notna()}, index=panel.index)

    def score(self, panel: pd.DataFrame) -> pd.Series:
        ahead = panel.groupby("symbol", observed=True)["close"].shift(-1)
        return (ahead / panel["close"] - 1.0).fillna(0.0)


@pytest.fixture
def peek_ahead() -> Iterator[None]:
    """Register the planted strategy in the engine registry for one test only."""
    with registered(PeekAhead):
        yield


@pytest.fixture
def env(tmp_path, monkeypatch) -> dict:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("CRYPTO4H_REPORTS_DIR", str(tmp_path / "reports"))
    return {"root": tmp_path, "db_url": f"sqlite:///{tmp_path / 'store.db'}"}


def run_day(sim: PaperSim, last: str = "2024-03-06 00:15") -> None:
    """Hourly ticks from 2024-03-05 00:15 with the candles landed 5 minutes before each."""
    clock = ts("2024-03-05 00:15")
    while clock <= ts(last):
        sim.land(clock - pd.Timedelta(minutes=5))
        sim.tick(clock)
        clock += pd.Timedelta(hours=1)


def job(sim: PaperSim, at: str, **overrides) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as instance:
        return sim.run_job(ts(at), instance=instance, **overrides)


def test_parity_fails_on_a_planted_lookahead_and_names_it(env, peek_ahead) -> None:
    sim = PaperSim(env["root"], env["db_url"], max_positions=1)
    run_day(sim)
    assert "peek_ahead" in set(sim.decisions()["strategy"])
    result = job(sim, "2024-03-06 01:15", max_positions=1)
    parity = checks(result)["paper_parity"]
    assert not parity.passed and parity.severity == dg.AssetCheckSeverity.ERROR
    assert "no data revision explains (lookahead or non-determinism?)" in parity.description
    assert "peek_ahead @ 2024-03-05" in parity.description
    rows = records(parity.metadata["difference_table"])
    assert {r["strategy"] for r in rows} == {"peek_ahead"}  # the registered strategies agree exactly
    assert {r["explanation"] for r in rows} == {""}
    assert {"picked", "score"} & {r["field"] for r in rows}
    assert all(r["decision_time"].startswith("2024-03-0") and r["symbol"].endswith("/USDT") for r in rows)
    # blocking: the performance report is not built on a book that does not match its backtest
    assert "paper_performance" not in {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert not result.success


def test_parity_passes_on_the_registered_strategies(env) -> None:
    sim = PaperSim(env["root"], env["db_url"], max_positions=1)
    run_day(sim)
    result = job(sim, "2024-03-06 01:15", max_positions=1)
    assert result.success
    parity = checks(result)["paper_parity"]
    assert parity.passed and parity.metadata["differences"].value == 0
    assert parity.metadata["settled_trades_compared"].value > 10
    assert "reproduces all" in parity.description


def test_a_revised_candle_is_reported_explained_and_resettled(env) -> None:
    sim = PaperSim(env["root"], env["db_url"])
    run_day(sim)
    trades = sim.trades()
    target = trades.loc[(trades["strategy"] == "momentum_rank") & (trades["status"] == "settled")].iloc[0]
    t, symbol = target["decision_time"], target["symbol"]
    last = t + pd.Timedelta(hours=4) - pd.Timedelta(minutes=5)  # the exit candle of that trade
    stored = sim.db.read_candles("synthetic", symbol, start=last, end=last + pd.Timedelta(minutes=5))
    assert len(stored) == 1
    revised = stored.copy()
    revised[["open", "high", "low", "close"]] *= 1.02  # the exchange revises it after the settlement used it
    sim.db.upsert_candles(revised, exchange="synthetic", symbol=symbol, source="synthetic:synthetic", synthetic=True)

    result = job(sim, "2024-03-06 01:15")
    found = checks(result)
    rev = found["paper_candle_revisions"]
    assert not rev.passed and rev.severity == dg.AssetCheckSeverity.WARN
    [row] = records(rev.metadata["revisions"])
    assert row["symbol"] == symbol and row["kind"] == "changed"
    old, new = stored["close"].item(), revised["close"].item()
    assert f"close {old!r} -> {new!r}" in row["change"] and row["old_sha"] != row["new_sha"]
    assert f"window of momentum_rank @ {t:%Y-%m-%d %H:%M} (settled" in row["used_by"]
    assert "features of" in row["used_by"]  # later decisions read it as history
    parity = found["paper_parity"]
    assert parity.severity == dg.AssetCheckSeverity.WARN and parity.metadata["unexplained_differences"].value == 0
    diffs = records(parity.metadata["difference_table"])
    exit_diff = [r for r in diffs if r["symbol"] == symbol and r["field"] == "exit_price"
                 and r["decision_time"] == f"{t:%Y-%m-%d %H:%M} UTC"]  # fmt: skip
    assert exit_diff and exit_diff[0]["explanation"] == "window candles changed since the settlement"
    assert exit_diff[0]["paper"] == repr(old) and exit_diff[0]["replay"] == repr(new)
    assert result.success  # WARN: the performance report still runs

    # the store keeps the new values; resettle settles the affected trades again from them
    again = job(sim, "2024-03-06 01:20", resettle=True)
    tick = materialization(again, "paper_trades")
    resettled = {(r["strategy"], r["decision_time"], r["symbol"]) for r in records(tick["resettled"])}
    assert ("momentum_rank", f"{t:%Y-%m-%d %H:%M} UTC", symbol) in resettled  # with every other window holding it
    assert {key[2] for key in resettled} == {symbol}
    trade = sim.trades().set_index(["strategy", "decision_time", "symbol"]).loc[("momentum_rank", t, symbol)]
    assert trade["exit_price"] == new and trade["previous"][0]["exit_price"] == old
    after = checks(again)["paper_parity"]
    rows = records(after.metadata["difference_table"]) if "difference_table" in after.metadata else []
    assert after.metadata["unexplained_differences"].value == 0
    assert not [r for r in rows if r["part"] == "settlement" and r["symbol"] == symbol
                and r["decision_time"] == f"{t:%Y-%m-%d %H:%M} UTC"]  # fmt: skip
