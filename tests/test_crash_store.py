"""Crash (issue 9): SIGKILL in the middle of a large candle write, on SQLite and PostgreSQL.

A child process writes 10 symbols x 20,000 candles in ONE `upsert_candles_many` transaction and is
killed after the third symbol's rows were sent (a hook in the child holds it there). Afterwards the
store holds exactly what it held before (no row of the killed batch, the earlier rows untouched), is
healthy (SQLite integrity check, no lock left behind: the next write goes straight through) and the
same write, run again, completes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.store import Store

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
SYMBOLS = [f"S{i:02d}/USDT" for i in range(10)]
N = 20_000
START = pd.Timestamp("2023-01-01", tz="UTC")

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from test_crash_store import frames
    from pipeline.store import Store, candles
    marker = Path({marker!r})
    real, calls = candles.write, []

    def held(*args, **kwargs):
        n = real(*args, **kwargs)
        calls.append(n)
        if len(calls) == 3:  # three symbols sent inside the open transaction: wait to be killed
            marker.write_text("mid-write")
            time.sleep(600)
        return n

    candles.write = held
    store = Store({url!r})
    store.upsert_candles_many(frames(), exchange="crash", source="child")
    marker.write_text("finished")
    """
)


def frames() -> dict[str, pd.DataFrame]:
    """10 symbols x N valid 5m candles (deterministic)."""
    rng = np.random.default_rng(7)
    out = {}
    for symbol in SYMBOLS:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, N)))
        open_ = np.r_[close[0], close[:-1]]
        out[symbol] = pd.DataFrame({
            "timestamp": START + pd.to_timedelta(np.arange(N) * 5, unit="min"),
            "open": open_, "high": np.maximum(open_, close) * 1.001, "low": np.minimum(open_, close) * 0.999,
            "close": close, "volume": rng.uniform(1, 10, N),
        })  # fmt: skip
    return out


def _counts(store: Store) -> dict[str, int]:
    return {s: store.candle_summary("crash", s)["rows"] for s in SYMBOLS}


def test_sigkill_mid_transaction_leaves_the_store_as_it_was(store: Store, db_url: str, tmp_path: Path) -> None:
    data = frames()
    # before: the first 1000 candles of S00 are stored, with other values than the batch will write
    old = data["S00/USDT"].iloc[:1000].copy()
    old[["open", "high", "low", "close"]] *= 2
    store.upsert_candles(old, exchange="crash", symbol="S00/USDT", source="before")
    before = store.read_candles("crash", "S00/USDT")

    marker = tmp_path / "marker"
    code = CHILD.format(tests=str(Path(__file__).parent), marker=str(marker), url=store.url)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists() and marker.read_text() == "mid-write", proc.stderr.read().decode()[-3000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()

    fresh = Store(db_url)  # a new process's view of the database
    try:
        t0 = time.monotonic()
        counts = _counts(fresh)
        assert counts == {s: 1000 if s == "S00/USDT" else 0 for s in SYMBOLS}, counts
        pd.testing.assert_frame_equal(fresh.read_candles("crash", "S00/USDT"), before)
        if fresh.dialect == "sqlite":
            with fresh.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        # no lock left behind: a write goes through at once, then the whole batch again
        store.upsert_candles(old.iloc[:10], exchange="crash", symbol="S00/USDT", source="after")
        assert time.monotonic() - t0 < 20
        assert fresh.upsert_candles_many(data, exchange="crash", source="rerun") == N * len(SYMBOLS)
        assert _counts(fresh) == dict.fromkeys(SYMBOLS, N)
        pd.testing.assert_frame_equal(fresh.read_candles("crash", "S05/USDT"), data["S05/USDT"], check_dtype=False,
                                      check_freq=False)  # fmt: skip
    finally:
        fresh.dispose()
