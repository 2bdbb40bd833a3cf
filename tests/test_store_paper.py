"""The paper tables on SQLite and PostgreSQL: one decision per (strategy, decision time), transactional
writes, settlement only of open trades, the first-seen candle ledger and the revisions found against it,
cascading deletes."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline.store.paper import PaperAlreadyRecorded

EXCHANGE = "synthetic"
T0 = pd.Timestamp("2024-03-05 10:00", tz="UTC")
T0_MS = int(T0.value // 1_000_000)
HOUR_BEFORE = T0 - pd.Timedelta(hours=1)


def candles(n: int, start: pd.Timestamp = HOUR_BEFORE, price: float = 100.0) -> pd.DataFrame:
    ts = pd.date_range(start, periods=n, freq="5min", tz="UTC")
    close = price + pd.Series(range(n), dtype=float) * 0.1
    return pd.DataFrame({"timestamp": ts, "open": close, "high": close + 1, "low": close - 1, "close": close,
                         "volume": 10.0})  # fmt: skip


def decision_row(strategy: str = "momentum_rank", t_ms: int = T0_MS, **extra) -> dict:
    return {"strategy": strategy, "decision_time": t_ms, "params": {"max_atr_pct": 0.05}, "config": {"window_hours": 4},
            "exchange": EXCHANGE, "history_start": t_ms - 3_600_000, "inputs": {"AAA/USDT": {"n": 12, "sha": "x"}},
            "n_eligible": 2, "n_candidates": 2, "n_selected": 1, "mode": "live",
            "recorded_at": T0.to_pydatetime(), "note": "", "run_id": None, **extra}  # fmt: skip


TRADE = {"symbol": "AAA/USDT", "rank": 1, "weight": 1.0, "score": 0.5, "entry_price": 100.0,
         "features": {"rsi": 55.0, "atr_pct": float("nan")}}  # fmt: skip


def seed(store, n: int = 12) -> pd.DataFrame:
    frame = candles(n)
    store.upsert_candles(frame, exchange=EXCHANGE, symbol="AAA/USDT", source="synthetic:synthetic", synthetic=True)
    return frame


def test_a_decision_is_recorded_exactly_once_with_its_ledger(store) -> None:
    frame = seed(store)
    book = store.paper
    decision_id = book.record_decision(decision_row(), [TRADE], {"AAA/USDT": frame}, T0.to_pydatetime())
    with pytest.raises(PaperAlreadyRecorded, match="already recorded"):
        book.record_decision(decision_row(mode="late"), [TRADE], {"AAA/USDT": frame}, T0.to_pydatetime())
    d = book.decisions()
    assert len(d) == 1 and d["id"].item() == decision_id and d["mode"].item() == "live"
    assert d["decision_time"].item() == T0 and d["inputs"].item() == {"AAA/USDT": {"n": 12, "sha": "x"}}
    trades = book.trades()
    assert trades["status"].tolist() == ["open"] and trades["features"].item() == {"rsi": 55.0, "atr_pct": None}
    assert book.recorded_times() == {"momentum_rank": [T0_MS]}
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM paper_candles")).scalar_one() == 12
    # the same unique key also stops a writer that skipped the existence check (a racing tick)
    with pytest.raises(sa.exc.IntegrityError), store._write() as conn:
        conn.execute(sa.text("INSERT INTO paper_decisions (strategy, decision_time, exchange, history_start, "
                             "n_eligible, n_candidates, n_selected, mode, recorded_at) VALUES "
                             "('momentum_rank', :t, 'x', 0, 0, 0, 0, 'live', :r)"),
                     {"t": T0_MS, "r": T0.to_pydatetime()})  # fmt: skip


def test_a_failed_write_leaves_nothing(store) -> None:
    frame = seed(store)
    bad = {**TRADE, "symbol": None}  # NOT NULL: the trade insert fails after the decision row was sent
    with pytest.raises(sa.exc.IntegrityError):
        store.paper.record_decision(decision_row(), [bad], {"AAA/USDT": frame}, T0.to_pydatetime())
    assert store.paper.decisions().empty and store.paper.trades().empty
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM paper_candles")).scalar_one() == 0


def test_settlement_touches_open_trades_once_and_finishes_the_decision(store) -> None:
    frame = seed(store)
    book = store.paper
    decision_id = book.record_decision(decision_row(), [TRADE], {"AAA/USDT": frame}, T0.to_pydatetime())
    values = {"status": "settled", "exit_time": T0_MS + 4 * 3_600_000, "exit_price": 101.0, "return_pct": 0.008,
              "gross_return_pct": 0.01, "max_drawdown": -0.01, "n_candles": 48,
              "window_inputs": {"n": 48, "sha": "w"}, "settled_at": T0.to_pydatetime()}  # fmt: skip
    window = candles(6, start=T0)
    store.upsert_candles(window, exchange=EXCHANGE, symbol="AAA/USDT", source="synthetic:synthetic", synthetic=True)

    def total(trades: pd.DataFrame) -> float:
        return float((trades["weight"] * trades["return_pct"]).sum())

    assert book.settle_decision(decision_id, EXCHANGE, {"AAA/USDT": values}, {"AAA/USDT": window},
                                T0.to_pydatetime(), total) == ["AAA/USDT"]  # fmt: skip
    assert book.settle_decision(decision_id, EXCHANGE, {"AAA/USDT": {**values, "return_pct": 9.9}}, {},
                                T0.to_pydatetime(), total) == []  # already settled: not overwritten  # fmt: skip
    t = book.trades()
    assert t["status"].item() == "settled" and t["return_pct"].item() == 0.008
    d = book.decisions()
    assert d["window_return"].item() == pytest.approx(0.008) and d["settled_at"].notna().item()
    # a re-settlement keeps the earlier one
    book.settle_decision(decision_id, EXCHANGE, {"AAA/USDT": {**values, "return_pct": 0.007}}, {},
                         T0.to_pydatetime(), total, previous={"AAA/USDT": [{"return_pct": 0.008}]})  # fmt: skip
    t = book.trades()
    assert t["return_pct"].item() == 0.007 and t["previous"].item() == [{"return_pct": 0.008}]
    with store.engine.connect() as conn:  # the window candles joined the ledger with the settlement
        assert conn.execute(sa.text("SELECT count(*) FROM paper_candles")).scalar_one() == 18
    with store._write() as conn:  # deleting a decision deletes its trades
        conn.execute(sa.text("DELETE FROM paper_decisions"))
    assert book.trades().empty


def test_revisions_changed_removed_and_added_against_the_ledger(store) -> None:
    frame = seed(store)
    holed = frame.drop(index=[5]).reset_index(drop=True)  # the ledger keeps what was read: slot 5 was not
    store.paper.record_decision(decision_row(), [TRADE], {"AAA/USDT": holed}, T0.to_pydatetime())
    assert store.paper.revisions(EXCHANGE)["kind"].tolist() == ["added"]  # stored, but unseen by the decision

    revised = frame.iloc[[2]].copy()
    revised[["open", "high", "low", "close"]] *= 1.01
    store.upsert_candles(revised, exchange=EXCHANGE, symbol="AAA/USDT", source="synthetic:synthetic", synthetic=True)
    with store._write() as conn:
        conn.execute(sa.text("DELETE FROM candles WHERE open_time = :t"),
                     {"t": int(frame["timestamp"].iloc[7].value // 1_000_000)})  # fmt: skip
    r = store.paper.revisions(EXCHANGE)
    assert r["kind"].tolist() == ["changed", "added", "removed"]
    changed = r.iloc[0]
    assert changed["open_time"] == frame["timestamp"].iloc[2]
    assert changed["old_close"] == frame["close"].iloc[2] and changed["new_close"] == revised["close"].item()
    assert len(changed["old_sha"]) == 16 and changed["first_seen_at"] == T0
    assert pd.isna(r.iloc[2]["new_close"]) and r.iloc[2]["old_close"] == frame["close"].iloc[7]
    assert store.paper.revisions("another-exchange").empty


def test_latest_closed_ignores_candles_after_the_clock(store) -> None:
    seed(store)  # 09:00 .. 09:55
    book = store.paper
    assert book.latest_closed(EXCHANGE, ["AAA/USDT", "ZZZ/USDT"], T0) == {
        "AAA/USDT": T0_MS - 300_000, "ZZZ/USDT": None}  # fmt: skip
    early = T0 - pd.Timedelta(minutes=32)  # 09:28: the 09:20 candle closed at 09:25, the 09:25 one at 09:30
    assert book.latest_closed(EXCHANGE, ["AAA/USDT"], early)["AAA/USDT"] == T0_MS - 40 * 60_000
