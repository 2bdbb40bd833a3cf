"""Candle store: validated idempotent upserts, [start, end) reads into the engine frame, atomic batches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from engine.schemas import CandleValidationError
from pipeline.store import CandleStoreError, Store
from pipeline.store import candles as candles_mod
from pipeline.store import candles_postgres as pg_mod
from pipeline.store import candles_sqlite as sqlite_mod
from pipeline.store.models import Candle

T0 = pd.Timestamp("2024-01-01 00:00", tz="UTC")
FIVE = pd.Timedelta("5min")


def frame(rows: list[tuple], start: pd.Timestamp = T0) -> pd.DataFrame:
    """Hand-written candles (open, high, low, close, volume), consecutive 5m open times from `start`."""
    return pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex([start + i * FIVE for i in range(len(rows))]),
            **{
                c: [float(r[i]) for r in rows]
                for i, c in enumerate(["open", "high", "low", "close", "volume"])
            },
        }
    )


SIX = frame(
    [
        (100.0, 101.5, 99.5, 101.0, 12.5),
        (101.0, 102.0, 100.25, 101.75, 3.0),
        (101.75, 101.75, 98.0, 98.5, 40.0),
        (98.5, 99.0, 97.125, 98.0, 0.0),
        (98.0, 100.0, 98.0, 99.9, 7.75),
        (99.9, 100.1, 99.8, 100.0, 1.0),
    ]
)


def count_rows(store: Store, table: str = "candles") -> int:
    with store.engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()


def dump(store: Store) -> list[tuple]:
    with store.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.exec_driver_sql(
                "SELECT exchange, symbol, open_time, open, high, low, close, volume, source, synthetic "
                "FROM candles JOIN candle_series ON candle_series.id = candles.series_id "
                "ORDER BY exchange, symbol, open_time"
            )
        ]


def test_round_trip_gives_the_exact_engine_frame(store):
    assert store.upsert_candles(SIX, exchange="binance", symbol="ETH/BTC", source="ccxt") == 6
    out = store.read_candles("binance", "ETH/BTC")
    assert list(out.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
    assert str(out["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert all(out[c].dtype == np.float64 for c in ["open", "high", "low", "close", "volume"])
    assert isinstance(out.index, pd.RangeIndex)
    pd.testing.assert_frame_equal(out, SIX)
    assert out["timestamp"].iloc[2] == pd.Timestamp("2024-01-01 00:10", tz="UTC")
    assert out["low"].iloc[3] == 97.125


def test_open_time_is_stored_as_epoch_ms(store):
    store.upsert_candles(SIX.head(2), exchange="binance", symbol="ETH/BTC", source="ccxt")
    rows = dump(store)
    # 2024-01-01T00:00Z = 1704067200 s
    assert [r[2] for r in rows] == [1_704_067_200_000, 1_704_067_500_000]
    assert rows[0][:2] == ("binance", "ETH/BTC")
    with store.engine.connect() as conn:
        assert (
            conn.exec_driver_sql(
                "SELECT DISTINCT timeframe FROM candles JOIN candle_series ON candle_series.id = series_id"
            ).scalar_one()
            == "5m"
        )


def test_range_read_is_half_open(store):
    store.upsert_candles(SIX, exchange="binance", symbol="ETH/BTC", source="ccxt")
    out = store.read_candles(
        "binance", "ETH/BTC", "2024-01-01 00:05", pd.Timestamp("2024-01-01 00:20", tz="UTC")
    )
    assert list(out["timestamp"].dt.strftime("%H:%M")) == ["00:05", "00:10", "00:15"]
    assert list(out["close"]) == [101.75, 98.5, 98.0]
    assert list(store.read_candles("binance", "ETH/BTC", start="2024-01-01 00:20")["close"]) == [99.9, 100.0]
    assert list(store.read_candles("binance", "ETH/BTC", end="2024-01-01 00:05")["close"]) == [101.0]
    # a bound in another time zone: 03:40 in Tehran (UTC+03:30) is 00:10 UTC
    tehran = pd.Timestamp("2024-01-01 03:40", tz="Asia/Tehran")
    assert len(store.read_candles("binance", "ETH/BTC", start=tehran)) == 4
    empty = store.read_candles("binance", "ETH/BTC", "2024-01-01 00:07", "2024-01-01 00:09")
    assert len(empty) == 0
    assert str(empty["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert list(empty.columns) == ["timestamp", "open", "high", "low", "close", "volume"]


def test_upsert_is_idempotent_and_updated_values_win(store):
    store.upsert_candles(SIX, exchange="binance", symbol="ETH/BTC", source="ccxt")
    assert store.upsert_candles(SIX, exchange="binance", symbol="ETH/BTC", source="ccxt") == 6
    assert count_rows(store) == 6
    fixed = SIX.iloc[1:3].copy()
    fixed.loc[2, "close"] = 99.0  # a corrected candle from the exchange
    fixed.loc[2, "volume"] = 41.5
    store.upsert_candles(fixed, exchange="binance", symbol="ETH/BTC", source="files")
    assert count_rows(store) == 6
    out = store.read_candles("binance", "ETH/BTC")
    assert list(out["close"]) == [101.0, 101.75, 99.0, 98.0, 99.9, 100.0]
    assert list(out["volume"]) == [12.5, 3.0, 41.5, 0.0, 7.75, 1.0]
    assert [r[8] for r in dump(store)] == ["ccxt", "files", "files", "ccxt", "ccxt", "ccxt"]


def test_keys_separate_exchanges_and_symbols(store):
    store.upsert_candles(SIX, exchange="binance", symbol="ETH/BTC", source="ccxt")
    other = SIX.copy()
    other["volume"] = 5.0
    store.upsert_candles(other, exchange="nobitex", symbol="ETH/BTC", source="nobitex")
    store.upsert_candles(other.head(1), exchange="binance", symbol="XRP/BTC", source="ccxt")
    assert count_rows(store) == 13
    assert list(store.read_candles("binance", "ETH/BTC")["volume"]) == [12.5, 3.0, 40.0, 0.0, 7.75, 1.0]
    assert list(store.read_candles("nobitex", "ETH/BTC")["volume"]) == [5.0] * 6
    assert len(store.read_candles("binance", "XRP/BTC")) == 1


def test_synthetic_flag_and_summary(store):
    store.upsert_candles(SIX, exchange="synthetic", symbol="AAA/USDT", source="synthetic", synthetic=True)
    assert store.candle_summary("synthetic", "AAA/USDT") == {
        "rows": 6,
        "first": pd.Timestamp("2024-01-01 00:00", tz="UTC"),
        "last": pd.Timestamp("2024-01-01 00:25", tz="UTC"),
        "synthetic_rows": 6,
    }
    assert store.candle_summary("synthetic", "AAA/USDT", "2024-01-01 00:10", "2024-01-01 00:20") == {
        "rows": 2,
        "first": pd.Timestamp("2024-01-01 00:10", tz="UTC"),
        "last": pd.Timestamp("2024-01-01 00:15", tz="UTC"),
        "synthetic_rows": 2,
    }
    assert store.candle_summary("synthetic", "NONE/USDT") == {
        "rows": 0,
        "first": None,
        "last": None,
        "synthetic_rows": 0,
    }
    assert all(r[9] for r in dump(store))


def test_read_universe_returns_every_requested_symbol(store):
    store.upsert_candles(SIX, exchange="binance", symbol="ETH/BTC", source="ccxt")
    store.upsert_candles(SIX.tail(2), exchange="binance", symbol="XRP/BTC", source="ccxt")
    out = store.read_universe("binance", ["ETH/BTC", "XRP/BTC", "LTC/BTC"], start="2024-01-01 00:15")
    assert list(out) == ["ETH/BTC", "XRP/BTC", "LTC/BTC"]
    assert [len(out[s]) for s in out] == [3, 2, 0]
    pd.testing.assert_frame_equal(out["XRP/BTC"], SIX.tail(2).reset_index(drop=True))
    assert str(out["LTC/BTC"]["timestamp"].dtype) == "datetime64[ns, UTC]"


def test_integer_ms_and_other_time_zones_are_coerced(store):
    raw = SIX.head(2).copy()
    raw["timestamp"] = [1_704_067_200_000, 1_704_067_500_000]
    store.upsert_candles(raw, exchange="binance", symbol="ETH/BTC", source="files")
    berlin = SIX.iloc[2:4].copy()
    berlin["timestamp"] = berlin["timestamp"].dt.tz_convert("Europe/Berlin")
    store.upsert_candles(berlin, exchange="binance", symbol="ETH/BTC", source="files")
    pd.testing.assert_frame_equal(store.read_candles("binance", "ETH/BTC"), SIX.head(4))


def test_validation_happens_before_any_write(store, monkeypatch):
    store.upsert_candles(SIX, exchange="binance", symbol="ETH/BTC", source="ccxt")
    before = dump(store)
    bad = SIX.copy()
    bad.loc[4, "high"] = 99.0  # below close 99.9
    bad.loc[0, "close"] = 200.0  # would be an update if it got through

    def no_transaction(*_a, **_k):
        raise AssertionError("a write transaction was opened for invalid candles")

    monkeypatch.setattr(Store, "_write", no_transaction)
    with pytest.raises(CandleValidationError, match="high >= max"):
        store.upsert_candles(bad, exchange="binance", symbol="ETH/BTC", source="ccxt")
    monkeypatch.undo()
    assert dump(store) == before


@pytest.mark.parametrize(
    "breakage",
    [
        ("nan close", lambda df: df.assign(close=[101.0, np.nan, 98.5, 98.0, 99.9, 100.0])),
        ("negative volume", lambda df: df.assign(volume=[1.0, 1.0, -1.0, 1.0, 1.0, 1.0])),
        (
            "duplicate time",
            lambda df: df.assign(
                timestamp=[T0, T0 + FIVE, T0 + FIVE, T0 + 3 * FIVE, T0 + 4 * FIVE, T0 + 5 * FIVE]
            ),
        ),
        ("off grid", lambda df: df.assign(timestamp=df["timestamp"] + pd.Timedelta("1min"))),
        ("naive time", lambda df: df.assign(timestamp=df["timestamp"].dt.tz_localize(None))),
        ("unsorted", lambda df: df.iloc[::-1]),
    ],
    ids=lambda b: b[0],
)
def test_invalid_frames_write_nothing(store, breakage):
    with pytest.raises(CandleValidationError):
        store.upsert_candles(breakage[1](SIX), exchange="binance", symbol="ETH/BTC", source="ccxt")
    assert count_rows(store) == 0


def test_only_base_timeframe_is_stored(store):
    with pytest.raises(CandleStoreError, match="only base 5m"):
        store.upsert_candles(SIX, exchange="binance", symbol="ETH/BTC", source="ccxt", timeframe="1h")
    assert count_rows(store) == 0
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO candle_series (exchange, symbol, timeframe) VALUES ('b', 'X', '1h')"
        )


def test_empty_identifiers_and_empty_frames(store):
    with pytest.raises(CandleStoreError, match="symbol"):
        store.upsert_candles(SIX, exchange="binance", symbol="", source="ccxt")
    assert store.upsert_candles(SIX.head(0), exchange="binance", symbol="ETH/BTC", source="ccxt") == 0
    assert count_rows(store) == 0


def test_failure_after_half_the_rows_rolls_everything_back(store, monkeypatch):
    store.upsert_candles(SIX.head(3), exchange="binance", symbol="ETH/BTC", source="ccxt")
    before = dump(store)
    real_write = candles_mod.write

    def write_half_then_fail(conn, ms, values, **kw):
        real_write(conn, ms[: len(ms) // 2], values[: len(ms) // 2], **kw)
        raise RuntimeError("provider died mid-batch")

    monkeypatch.setattr(candles_mod, "write", write_half_then_fail)
    changed = SIX.copy()
    changed["volume"] = 99.0
    with pytest.raises(RuntimeError, match="mid-batch"):
        store.upsert_candles(changed, exchange="binance", symbol="ETH/BTC", source="ccxt")
    assert dump(store) == before


def test_a_bad_symbol_in_a_batch_leaves_the_store_as_it_was(store):
    store.upsert_candles(SIX.head(2), exchange="binance", symbol="ETH/BTC", source="ccxt")
    before = dump(store)
    good = SIX.copy()
    good["volume"] = 1.25
    bad = SIX.copy()
    bad.loc[3, "low"] = 150.0
    with pytest.raises(CandleValidationError, match="XRP/BTC"):
        store.upsert_candles_many({"ETH/BTC": good, "XRP/BTC": bad}, exchange="binance", source="ccxt")
    assert dump(store) == before
    assert (
        store.upsert_candles_many({"ETH/BTC": good, "XRP/BTC": good}, exchange="binance", source="ccxt") == 12
    )
    assert count_rows(store) == 12


def test_failure_after_the_first_symbol_of_a_batch_rolls_back(store, monkeypatch):
    real_write = candles_mod.write
    calls = []

    def fail_on_second(conn, ms, values, **kw):
        calls.append(kw["symbol"])
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real_write(conn, ms, values, **kw)

    monkeypatch.setattr(candles_mod, "write", fail_on_second)
    with pytest.raises(RuntimeError, match="disk full"):
        store.upsert_candles_many({"ETH/BTC": SIX, "XRP/BTC": SIX}, exchange="binance", source="ccxt")
    assert calls == ["ETH/BTC", "XRP/BTC"]
    assert count_rows(store) == 0


def _random_candles(n: int, seed: int, start: pd.Timestamp = T0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[50.0, close[:-1]]
    return pd.DataFrame(
        {
            "timestamp": pd.date_range(start, periods=n, freq="5min"),
            "open": open_,
            "high": np.maximum(open_, close) * (1 + rng.random(n) / 100),
            "low": np.minimum(open_, close) * (1 - rng.random(n) / 100),
            "close": close,
            "volume": rng.random(n) * 1e6,
        }
    )


def test_bulk_paths_are_bit_exact_and_idempotent(store):
    """5000 rows: several SQLite statements, the PostgreSQL COPY path, then an overlapping re-upsert."""
    df = _random_candles(5000, seed=7)
    assert store.upsert_candles(df, exchange="binance", symbol="BTC/USDT", source="ccxt") == 5000
    pd.testing.assert_frame_equal(store.read_candles("binance", "BTC/USDT"), df, check_exact=True)
    shifted = _random_candles(5000, seed=8, start=T0 + 2500 * FIVE)  # half overlaps, half is new
    store.upsert_candles(shifted, exchange="binance", symbol="BTC/USDT", source="ccxt")
    expected = pd.concat([df.head(2500), shifted], ignore_index=True)
    pd.testing.assert_frame_equal(store.read_candles("binance", "BTC/USDT"), expected, check_exact=True)
    assert store.candle_summary("binance", "BTC/USDT")["rows"] == 7500


@pytest.mark.postgres
def test_postgres_copy_falls_back_when_another_writer_got_there_first(postgres_url, monkeypatch):
    store = Store(postgres_url)
    store.migrate()
    df = _random_candles(2000, seed=3)
    store.upsert_candles(df.iloc[1000:1001], exchange="binance", symbol="BTC/USDT", source="ccxt")
    # blind the "is the range empty?" probe so the direct COPY collides with the existing row
    monkeypatch.setattr(pg_mod, "PG_RANGE_WHERE", "%s IS NULL AND %s IS NULL AND %s IS NULL")
    assert store.upsert_candles(df, exchange="binance", symbol="BTC/USDT", source="ccxt") == 2000
    pd.testing.assert_frame_equal(store.read_candles("binance", "BTC/USDT"), df, check_exact=True)
    store.dispose()


def test_unchanged_rows_are_not_rewritten(store):
    store.upsert_candles(SIX, exchange="binance", symbol="ETH/BTC", source="ccxt")
    with store.engine.connect() as conn:
        first = dict(conn.exec_driver_sql("SELECT open_time, ingested_at FROM candles").all())
    changed = SIX.copy()
    changed.loc[5, "volume"] = 2.0
    store.upsert_candles(changed, exchange="binance", symbol="ETH/BTC", source="ccxt")
    with store.engine.connect() as conn:
        second = dict(conn.exec_driver_sql("SELECT open_time, ingested_at FROM candles").all())
    last = 1_704_067_200_000 + 5 * 300_000
    assert {k: v for k, v in second.items() if k != last} == {k: v for k, v in first.items() if k != last}
    assert second[last] != first[last]


@pytest.mark.parametrize("workers", [1, 3])
def test_universe_read_is_one_snapshot(store, db_url, monkeypatch, workers):
    """Rows committed by another writer while a universe is being read do not show up in it."""
    store.read_workers = workers
    symbols = [f"S{i}/USDT" for i in range(6)]
    store.upsert_candles_many({s: SIX.head(3) for s in symbols}, exchange="binance", source="ccxt")
    mod, name = (sqlite_mod, "read") if store.dialect == "sqlite" else (pg_mod, "read_series")
    real = getattr(mod, name)
    writer = Store(db_url)
    seen = []

    def read_then_write(cur, exchange, symbol, lo, hi):
        out = real(cur, exchange, symbol, lo, hi)
        if not seen:
            writer.upsert_candles_many({s: SIX.iloc[3:] for s in symbols}, exchange="binance", source="ccxt")
        seen.append(symbol)
        return out

    monkeypatch.setattr(mod, name, read_then_write)
    universe = store.read_universe("binance", symbols)
    assert sorted(seen) == sorted(symbols)
    assert [len(universe[s]) for s in symbols] == [3] * 6
    assert list(universe) == symbols
    assert [len(f) for f in store.read_universe("binance", symbols).values()] == [6] * 6
    writer.dispose()


@pytest.mark.postgres
def test_postgres_parallel_read_error_leaves_the_pool_usable(postgres_url, monkeypatch):
    store = Store(postgres_url)
    store.migrate()
    store.read_workers = 3
    symbols = [f"S{i}/USDT" for i in range(6)]
    store.upsert_candles_many({s: SIX for s in symbols}, exchange="binance", source="ccxt")
    real = pg_mod.read_series

    def fail_on_s4(cur, exchange, symbol, lo, hi):
        if symbol == "S4/USDT":
            raise RuntimeError("network blip")
        return real(cur, exchange, symbol, lo, hi)

    monkeypatch.setattr(pg_mod, "read_series", fail_on_s4)
    with pytest.raises(RuntimeError, match="network blip"):
        store.read_universe("binance", symbols)
    monkeypatch.undo()
    assert [len(f) for f in store.read_universe("binance", symbols).values()] == [6] * 6
    # pooled connections went back in transactional mode: a failing write still rolls back
    real_write = candles_mod.write

    def write_then_fail(conn, ms, values, **kw):
        real_write(conn, ms, values, **kw)
        raise RuntimeError("abort")

    monkeypatch.setattr(candles_mod, "write", write_then_fail)
    for _ in range(4):  # cycle through the pooled connections
        with pytest.raises(RuntimeError, match="abort"):
            store.upsert_candles(SIX, exchange="binance", symbol="NEW/USDT", source="ccxt")
    assert store.candle_summary("binance", "NEW/USDT")["rows"] == 0
    store.dispose()


@pytest.mark.parametrize("n", [3, 5000])
def test_ingested_at_is_the_write_time_in_utc(store, n):
    before = pd.Timestamp.now(tz="UTC").floor("s")
    store.upsert_candles(_random_candles(n, seed=1), exchange="binance", symbol="BTC/USDT", source="ccxt")
    after = pd.Timestamp.now(tz="UTC").ceil("s")
    table = Candle.__table__
    with store.engine.connect() as conn:
        lo, hi = conn.execute(
            sa.select(sa.func.min(table.c.ingested_at), sa.func.max(table.c.ingested_at))
        ).one()
    for value in (lo, hi):
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        assert before <= stamp <= after


def test_concurrent_writers_queue_instead_of_failing(store, db_url):
    """Writers in other threads/stores (think: parallel Dagster runs) wait for each other, none fails."""
    from concurrent.futures import ThreadPoolExecutor

    stores = [Store(db_url) for _ in range(4)]
    frames = {f"S{i}/USDT": _random_candles(3000, seed=i) for i in range(8)}

    def write(i_sym):
        i, (symbol, df) = i_sym
        # overlapping re-upserts of the same symbol too, to force conflicts on the same keys
        stores[i % 4].upsert_candles(df, exchange="binance", symbol=symbol, source="ccxt")
        return stores[(i + 1) % 4].upsert_candles(df, exchange="binance", symbol=symbol, source="ccxt")

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(write, enumerate(frames.items()))) == [3000] * 8
    for symbol, df in frames.items():
        pd.testing.assert_frame_equal(store.read_candles("binance", symbol), df)
    for s in stores:
        s.dispose()


# --- narrow key: series table, PostgreSQL partition per series, packed reads ---------------------------


def _partitions(store: Store) -> list[str]:
    if store.dialect != "postgresql":
        return []
    with store.engine.connect() as conn:
        return sorted(
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'candles'::regclass"
            )
        )


def test_a_failed_first_write_leaves_no_series_and_no_partition(store, monkeypatch):
    real_write = candles_mod.write

    def write_then_fail(conn, ms, values, **kw):
        real_write(conn, ms, values, **kw)
        raise RuntimeError("provider died")

    monkeypatch.setattr(candles_mod, "write", write_then_fail)
    df = _random_candles(3000, seed=4)
    with pytest.raises(RuntimeError, match="provider died"):
        store.upsert_candles(df, exchange="binance", symbol="NEW/USDT", source="ccxt")
    monkeypatch.undo()
    assert count_rows(store, "candle_series") == 0
    assert count_rows(store) == 0
    assert _partitions(store) == []
    assert store.upsert_candles(df, exchange="binance", symbol="NEW/USDT", source="ccxt") == 3000
    pd.testing.assert_frame_equal(store.read_candles("binance", "NEW/USDT"), df, check_exact=True)


def test_each_series_is_numbered_once(store):
    store.upsert_candles(SIX, exchange="binance", symbol="ETH/BTC", source="ccxt")
    store.upsert_candles(SIX.head(2), exchange="binance", symbol="ETH/BTC", source="files")
    store.upsert_candles_many({"XRP/BTC": SIX, "ETH/BTC": SIX}, exchange="binance", source="ccxt")
    store.upsert_candles(SIX, exchange="nobitex", symbol="ETH/BTC", source="nobitex")
    with store.engine.connect() as conn:
        series = conn.exec_driver_sql(
            "SELECT exchange, symbol, timeframe FROM candle_series ORDER BY exchange, symbol"
        ).all()
        per_series = dict(
            conn.exec_driver_sql("SELECT series_id, count(*) FROM candles GROUP BY series_id").all()
        )
    assert [tuple(r) for r in series] == [
        ("binance", "ETH/BTC", "5m"),
        ("binance", "XRP/BTC", "5m"),
        ("nobitex", "ETH/BTC", "5m"),
    ]
    assert sorted(per_series.values()) == [6, 6, 6]
    if store.dialect == "postgresql":  # one partition per series, invisible to the schema comparison
        assert _partitions(store) == sorted(pg_mod.pg_partition_name(i) for i in per_series)
        assert store.schema_diff() == []


def test_bulk_append_to_an_existing_series(store):
    """A new range of an existing series (PostgreSQL: direct COPY into the existing partition)."""
    first = _random_candles(3000, seed=5)
    later = _random_candles(3000, seed=6, start=T0 + 3000 * FIVE)
    store.upsert_candles(first, exchange="binance", symbol="BTC/USDT", source="ccxt")
    assert store.upsert_candles(later, exchange="binance", symbol="BTC/USDT", source="files") == 3000
    expected = pd.concat([first, later], ignore_index=True)
    pd.testing.assert_frame_equal(store.read_candles("binance", "BTC/USDT"), expected, check_exact=True)
    sources = [r[8] for r in dump(store)]
    assert sources == ["ccxt"] * 3000 + ["files"] * 3000


@pytest.mark.postgres
def test_postgres_reads_page_through_long_ranges(postgres_url, monkeypatch):
    store = Store(postgres_url)
    store.migrate()
    df = _random_candles(5000, seed=9)
    store.upsert_candles(df, exchange="binance", symbol="BTC/USDT", source="ccxt")
    store.upsert_candles(df.head(10), exchange="binance", symbol="ETH/USDT", source="ccxt")
    monkeypatch.setattr(pg_mod, "PG_READ_PAGE_ROWS", 1000)
    pd.testing.assert_frame_equal(store.read_candles("binance", "BTC/USDT"), df, check_exact=True)
    part = store.read_candles("binance", "BTC/USDT", T0 + 1500 * FIVE, T0 + 3500 * FIVE)
    pd.testing.assert_frame_equal(part, df.iloc[1500:3500].reset_index(drop=True), check_exact=True)
    exact = store.read_candles("binance", "BTC/USDT", T0, T0 + 1000 * FIVE)  # exactly one full page
    pd.testing.assert_frame_equal(exact, df.head(1000), check_exact=True)
    store.read_workers = 2
    universe = store.read_universe("binance", ["ETH/USDT", "BTC/USDT", "NONE/USDT"])
    pd.testing.assert_frame_equal(universe["BTC/USDT"], df, check_exact=True)
    assert [len(f) for f in universe.values()] == [10, 5000, 0]
    store.dispose()


def test_postgres_packed_read_sorts_rows_that_arrive_out_of_order():
    """`string_agg` keeps the ordered subquery's order in practice; the reader does not rely on it."""
    df = _random_candles(5, seed=2)
    ms = df["timestamp"].to_numpy(dtype="datetime64[ms]").astype(np.int64)
    rec = np.empty(5, dtype=pg_mod._PG_RECORD)
    rec["t"] = ms
    for c in ["open", "high", "low", "close", "volume"]:
        rec[c] = df[c].to_numpy()
    body = rec[[3, 0, 4, 1, 2]].tobytes()
    out = pg_mod._PG_HEADER + b"\x00\x01" + len(body).to_bytes(4, "big") + body + pg_mod._PG_TRAILER

    class FakeCursor:
        def execute(self, *_a):
            pass

        def fetchone(self):
            return (1,)

        def mogrify(self, sql, _params):
            return sql.encode()

        def copy_expert(self, _sql, sink, _size):
            sink.write(out)

    got = pg_mod.read_series(FakeCursor(), "binance", "X/Y", candles_mod.MIN_MS, candles_mod.MAX_MS)
    pd.testing.assert_frame_equal(got, df, check_exact=True)
    null_row = pg_mod._PG_HEADER + b"\x00\x01\xff\xff\xff\xff" + pg_mod._PG_TRAILER
    assert len(pg_mod._parse_pg_packed(null_row)) == 0
    assert len(pg_mod._parse_pg_packed(pg_mod._PG_HEADER + pg_mod._PG_TRAILER)) == 0


def test_universe_snapshot_hides_a_series_created_meanwhile(store, db_url, monkeypatch):
    store.read_workers = 1
    store.upsert_candles(SIX, exchange="binance", symbol="OLD/USDT", source="ccxt")
    mod, name = (sqlite_mod, "read") if store.dialect == "sqlite" else (pg_mod, "read_series")
    real = getattr(mod, name)
    writer = Store(db_url)

    def read_then_write(cur, exchange, symbol, lo, hi):
        out = real(cur, exchange, symbol, lo, hi)
        if symbol == "OLD/USDT":
            writer.upsert_candles(
                _random_candles(2000, seed=1), exchange="binance", symbol="NEW/USDT", source="x"
            )
        return out

    monkeypatch.setattr(mod, name, read_then_write)
    universe = store.read_universe("binance", ["OLD/USDT", "NEW/USDT"])
    assert [len(f) for f in universe.values()] == [6, 0]
    monkeypatch.undo()
    assert [len(f) for f in store.read_universe("binance", ["OLD/USDT", "NEW/USDT"]).values()] == [6, 2000]
    writer.dispose()
