"""Store performance: bulk load, range read and hourly increment on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/bench_store.py                 # 10M candles (100 symbols x 100k)
    .venv/bin/python benchmarks/bench_store.py --rows 1000000  # smaller
    .venv/bin/python benchmarks/bench_store.py --backends sqlite

Targets (issue 3): bulk load >= 400k candles/s (SQLite), >= 1M/s (PostgreSQL); range read into the engine
frame >= 1M/s (SQLite), >= 2M/s (PostgreSQL); a 1-hour increment for 100 symbols well under a second.
Validation is part of every timed write. The bulk load writes each symbol's history in one
`upsert_candles` call into an empty store (on PostgreSQL: the new-series path, see docs/store.md); the
"bulk append" and "bulk overwrite" lines measure bulk writes into series that already exist.
PostgreSQL runs in a throwaway database (created and dropped).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.store import Store  # noqa: E402
from pipeline.store.candles import validated  # noqa: E402

FIVE_MIN_MS = 5 * 60 * 1000
T0_MS = 1_577_836_800_000  # 2020-01-01 UTC
DEFAULT_PG_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def make_candles(n: int, seed: int, start_ms: int = T0_MS) -> pd.DataFrame:
    """A valid random-walk 5m candle frame built directly with numpy."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    open_ = np.empty(n)
    open_[0] = 100.0
    open_[1:] = close[:-1]
    spread = np.abs(rng.normal(0.0, 0.001, (2, n)))
    high = np.maximum(open_, close) * (1.0 + spread[0])
    low = np.minimum(open_, close) * (1.0 - spread[1])
    volume = rng.lognormal(3.0, 1.0, n)
    ms = start_ms + np.arange(n, dtype=np.int64) * FIVE_MIN_MS
    ts = pd.DatetimeIndex(ms.astype("datetime64[ms]").astype("datetime64[ns]")).tz_localize("UTC")
    return pd.DataFrame(
        {"timestamp": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume}
    )


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds / 1e6:6.2f}M candles/s" if seconds > 0 else "inf"


def bench(
    store: Store, frames: dict[str, pd.DataFrame], label: str, target_load: float, target_read: float
) -> None:
    n_total = sum(len(f) for f in frames.values())
    per = len(next(iter(frames.values())))
    print(f"\n== {label}: {len(frames)} symbols x {per:,} = {n_total:,} candles ==")
    store.migrate()

    t = time.perf_counter()
    for sym, df in frames.items():
        validated(df, sym)
    t_val = time.perf_counter() - t

    t = time.perf_counter()
    for sym, df in frames.items():
        store.upsert_candles(df, exchange="bench", symbol=sym, source="bench", synthetic=True)
    t_load = time.perf_counter() - t
    ok = "OK" if n_total / t_load >= target_load else "BELOW TARGET"
    print(f"bulk load (validation incl.)  {t_load:8.2f} s  {rate(n_total, t_load)}  "
          f"[target {target_load / 1e6:.1f}M/s: {ok}]  (validation alone: {t_val:.2f} s)")  # fmt: skip

    t = time.perf_counter()
    universe = store.read_universe("bench", list(frames))
    t_read = time.perf_counter() - t
    n_read = sum(len(f) for f in universe.values())
    assert n_read == n_total, (n_read, n_total)
    sym0 = next(iter(frames))
    pd.testing.assert_frame_equal(universe[sym0], frames[sym0])
    ok = "OK" if n_total / t_read >= target_read else "BELOW TARGET"
    print(f"range read (full, all symbols){t_read:8.2f} s  {rate(n_read, t_read)}  "
          f"[target {target_read / 1e6:.1f}M/s: {ok}]")  # fmt: skip

    start = frames[sym0]["timestamp"].iloc[per // 4]
    end = frames[sym0]["timestamp"].iloc[per // 4 + per // 2]
    t = time.perf_counter()
    part = {s: store.read_candles("bench", s, start, end) for s in frames}
    t_part = time.perf_counter() - t
    n_part = sum(len(f) for f in part.values())
    print(f"range read (middle half)      {t_part:8.2f} s  {rate(n_part, t_part)}")

    t = time.perf_counter()
    summ = store.candle_summary("bench", sym0)
    t_sum = time.perf_counter() - t
    print(f"candle_summary (1 symbol)     {t_sum * 1000:8.1f} ms  rows={summ['rows']:,}")

    next_ms = T0_MS + per * FIVE_MIN_MS
    incr = {s: make_candles(12, seed=10_000 + i, start_ms=next_ms) for i, s in enumerate(frames)}
    t = time.perf_counter()
    for sym, df in incr.items():
        store.upsert_candles(df, exchange="bench", symbol=sym, source="bench", synthetic=True)
    t_inc = time.perf_counter() - t
    print(f"1h increment, new rows: {len(incr)} symbols x 12, one transaction each   {t_inc * 1000:7.1f} ms")

    redo = {s: make_candles(12, seed=20_000 + i, start_ms=next_ms) for i, s in enumerate(frames)}
    t = time.perf_counter()
    store.upsert_candles_many(redo, exchange="bench", source="bench", synthetic=True)
    t_many = time.perf_counter() - t
    print(f"1h increment, updates:  {len(redo)} symbols x 12, one transaction (many) {t_many * 1000:7.1f} ms")
    back = store.read_candles("bench", sym0, pd.Timestamp(next_ms, unit="ms", tz="UTC"))
    np.testing.assert_array_equal(back["close"].to_numpy(), redo[sym0]["close"].to_numpy())

    # bulk writes into series that already exist (the first load of a series has its own fast path)
    k = max(per // 10, 12)
    app_ms = next_ms + 12 * FIVE_MIN_MS
    more = {s: make_candles(k, seed=30_000 + i, start_ms=app_ms) for i, s in enumerate(frames)}
    t = time.perf_counter()
    for sym, df in more.items():
        store.upsert_candles(df, exchange="bench", symbol=sym, source="bench", synthetic=True)
    t_app = time.perf_counter() - t
    n_app = k * len(more)
    print(f"bulk append, existing series: {len(more)} x {k:,}  {t_app:8.2f} s  {rate(n_app, t_app)}")
    over = {s: make_candles(k, seed=40_000 + i, start_ms=app_ms) for i, s in enumerate(frames)}
    t = time.perf_counter()
    for sym, df in over.items():
        store.upsert_candles(df, exchange="bench", symbol=sym, source="bench", synthetic=True)
    t_over = time.perf_counter() - t
    print(f"bulk overwrite (all changed): {len(over)} x {k:,}  {t_over:8.2f} s  {rate(n_app, t_over)}")
    back = store.read_candles("bench", sym0, pd.Timestamp(app_ms, unit="ms", tz="UTC"))
    pd.testing.assert_frame_equal(back, over[sym0])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000, help="total candles (default 10M)")
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--pg-url", default=os.environ.get("CRYPTO4H_TEST_PG_URL", DEFAULT_PG_ADMIN_URL),
                        help="an existing PostgreSQL database used to create/drop the benchmark database")  # fmt: skip
    args = parser.parse_args()
    per = max(args.rows // args.symbols, 12)
    t = time.perf_counter()
    frames = {f"S{i:03d}/USDT": make_candles(per, seed=i) for i in range(args.symbols)}
    print(f"generated {args.symbols * per:,} candles in {time.perf_counter() - t:.1f} s")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    print(f"machine: {os.cpu_count()} CPUs; SQLite {sqlite3.sqlite_version}; pandas {pd.__version__}")

    if "sqlite" in backends:
        with tempfile.TemporaryDirectory(prefix="bench_store_") as tmp:
            store = Store(f"sqlite:///{tmp}/bench.db")
            try:
                bench(store, frames, "SQLite (WAL, synchronous=NORMAL)", 400_000, 1_000_000)
            finally:
                store.dispose()
            size = sum(p.stat().st_size for p in Path(tmp).iterdir())
            print(f"database files: {size / 1e6:,.0f} MB")

    if "postgres" in backends:
        admin = sa.create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
        name = f"bench_store_{uuid.uuid4().hex[:10]}"
        try:
            with admin.connect() as c:
                c.exec_driver_sql(f'CREATE DATABASE "{name}"')
        except sa.exc.OperationalError as exc:
            print(f"\nPostgreSQL unreachable at {args.pg_url}: skipped ({exc.orig})")
            return
        store = Store(sa.make_url(args.pg_url).set(database=name).render_as_string(hide_password=False))
        try:
            with store.engine.connect() as c:
                version = c.exec_driver_sql("SHOW server_version").scalar_one().split()[0]
            label = (
                f"PostgreSQL {version} (binary COPY, a partition per series; "
                f"universe read over {store.read_workers} connections)"
            )
            bench(store, frames, label, 1_000_000, 2_000_000)
            with store.engine.connect() as c:
                size = c.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one()
            print(f"database size: {size / 1e6:,.0f} MB")
        finally:
            store.dispose()
            with admin.connect() as c:
                c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()


if __name__ == "__main__":
    main()
