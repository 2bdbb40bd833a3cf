"""Backtest runs and their results (trades, windows, metrics), in Core SQL inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from pipeline.store.convert import (
    column_or_none,
    features_frame,
    flatten_metrics,
    float_column,
    float_list,
    int_column,
    json_safe,
    ms_to_timestamps,
    now,
    series_to_ms,
    to_bool,
    to_int,
    to_text,
    utc_or_none,
    utc_series,
)
from pipeline.store.models import RUN_KINDS, BacktestRun, BacktestTrade, BacktestWindow, StrategyPerformance

runs_t = BacktestRun.__table__
trades_t = BacktestTrade.__table__
windows_t = BacktestWindow.__table__
perf_t = StrategyPerformance.__table__

TRADE_TIME_COLUMNS = ("decision_time", "entry_time", "exit_time")
TRADE_FLOAT_COLUMNS = ("entry_price", "exit_price", "return_pct", "max_drawdown", "weight", "score")
TRADE_COLUMNS = (
    "decision_time", "symbol", "entry_time", "exit_time", "direction", "entry_price", "exit_price",
    "return_pct", "max_drawdown", "weight", "rank", "score", "void",
)  # fmt: skip
WINDOW_COLUMNS = ("decision_time", "n_selected", "selected", "window_return")
RUN_COLUMNS = (
    "id", "kind", "strategy", "status", "created_at", "finished_at", "data_fingerprint", "code_version",
    "request_key", "error", "universe", "config",
)  # fmt: skip


class RequestAlreadyRecorded(ValueError):
    """A backtest with this request key was already recorded (requests are processed exactly once)."""


def has_request(conn: sa.Connection, request_key: str) -> bool:
    """True when a run (successful or failed) was recorded for this request key."""
    query = sa.select(runs_t.c.id).where(runs_t.c.request_key == request_key).limit(1)
    return conn.execute(query).first() is not None


def insert_run(
    conn: sa.Connection,
    *,
    strategy: str,
    kind: str,
    config: Mapping[str, Any] | None,
    universe: Sequence[str] | None,
    status: str,
    data_fingerprint: str | None = None,
    code_version: str | None = None,
    error: str | None = None,
    request_key: str | None = None,
) -> int:
    """Insert one backtest_runs row and return its id (refuses a request key seen before)."""
    if kind not in RUN_KINDS:
        raise ValueError(f"kind must be one of {RUN_KINDS}, got {kind!r}")
    if not isinstance(strategy, str) or not strategy:
        raise ValueError(f"strategy must be a non-empty string, got {strategy!r}")
    if request_key is not None and has_request(conn, request_key):
        raise RequestAlreadyRecorded(f"backtest request {request_key!r} was already recorded")
    stamp = now()
    result = conn.execute(
        runs_t.insert().values(
            kind=kind,
            strategy=strategy,
            config=json_safe(dict(config or {})),
            universe=json_safe(list(universe or [])),
            data_fingerprint=data_fingerprint,
            code_version=code_version,
            status=status,
            error=error,
            created_at=stamp,
            finished_at=stamp,
            request_key=request_key,
        )
    )
    return int(result.inserted_primary_key[0])


def trade_rows(run_id: int, trades: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Engine trades -> backtest_trades rows; columns beyond the known ones go to `features` (JSON)."""
    if trades is None or len(trades) == 0:
        return []
    df = trades.reset_index(drop=True)
    if "symbol" not in df.columns:
        raise ValueError("trades need a 'symbol' column")
    cols: dict[str, list[Any]] = {c: series_to_ms(column_or_none(df, c)) for c in TRADE_TIME_COLUMNS}
    cols.update({c: float_list(column_or_none(df, c)) for c in TRADE_FLOAT_COLUMNS})
    cols["symbol"] = [to_text(v) for v in df["symbol"].tolist()]
    cols["direction"] = [to_text(v) for v in column_or_none(df, "direction").tolist()]
    cols["rank"] = [to_int(v) for v in column_or_none(df, "rank").tolist()]
    cols["void"] = [to_bool(v) for v in column_or_none(df, "void").tolist()]
    extra = [c for c in df.columns if c not in TRADE_COLUMNS]
    features = [json_safe(r) for r in df[extra].to_dict("records")] if extra else [None] * len(df)
    if any(s is None for s in cols["symbol"]):
        raise ValueError("trades have a missing symbol")
    return [
        {"run_id": run_id, "seq": i, **{c: cols[c][i] for c in cols}, "features": features[i]}
        for i in range(len(df))
    ]


def window_rows(run_id: int, windows: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Engine windows -> backtest_windows rows (`selected` stored as 'A, B' text)."""
    if windows is None or len(windows) == 0:
        return []
    df = windows.reset_index(drop=True)
    if "decision_time" not in df.columns:
        raise ValueError("windows need a 'decision_time' column")
    times = series_to_ms(df["decision_time"])
    if any(t is None for t in times):
        raise ValueError("windows have a missing decision_time")
    selected = column_or_none(df, "selected").tolist()
    counts = column_or_none(df, "n_selected").tolist()
    returns = float_list(column_or_none(df, "window_return"))
    rows = []
    for i, t in enumerate(times):
        sel = selected[i]
        n = to_int(counts[i])
        if n is None:
            n = len(_split(to_text(sel)))
        rows.append(
            {
                "run_id": run_id,
                "decision_time": t,
                "n_selected": n,
                "selected": to_text(sel) or "",
                "window_return": returns[i],
            }
        )
    return rows


def record_backtest(
    conn: sa.Connection,
    *,
    strategy: str,
    kind: str,
    config: Mapping[str, Any],
    universe: Sequence[str],
    data_fingerprint: str | None,
    code_version: str | None,
    trades: pd.DataFrame | None,
    windows: pd.DataFrame | None,
    metrics: Mapping[str, Any] | None,
    request_key: str | None = None,
) -> int:
    """Run + trades + windows + performance, in the caller's transaction; return the run id."""
    flat = flatten_metrics(metrics or {})
    run_id = insert_run(
        conn,
        strategy=strategy,
        kind=kind,
        config=config,
        universe=universe,
        status="success",
        data_fingerprint=data_fingerprint,
        code_version=code_version,
        request_key=request_key,
    )
    trows = trade_rows(run_id, trades)
    wrows = window_rows(run_id, windows)
    if trows:
        conn.execute(trades_t.insert(), trows)
    if wrows:
        conn.execute(windows_t.insert(), wrows)
    if flat:
        conn.execute(
            perf_t.insert(),
            [{"run_id": run_id, "metric": k, "strategy": strategy, "value": v} for k, v in flat.items()],
        )
    return run_id


def list_backtests(
    conn: sa.Connection,
    strategy: str | None = None,
    limit: int = 50,
    *,
    kind: str | None = None,
    status: str | None = None,
    data_fingerprint: str | None = None,
    code_version: str | None = None,
) -> pd.DataFrame:
    """Most recent runs first (one row per run; config and universe as Python objects)."""
    query = sa.select(*(runs_t.c[c] for c in RUN_COLUMNS)).order_by(runs_t.c.id.desc()).limit(int(limit))
    filters = (("strategy", strategy), ("kind", kind), ("status", status), ("data_fingerprint", data_fingerprint),
               ("code_version", code_version))  # fmt: skip
    for column, value in filters:
        if value is not None:
            query = query.where(runs_t.c[column] == value)
    rows = [dict(r) for r in conn.execute(query).mappings()]
    df = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    df["id"] = df["id"].astype(np.int64)
    for c in ("created_at", "finished_at"):
        df[c] = utc_series(df[c].tolist())
    return df


def backtest_run(conn: sa.Connection, run_id: int) -> dict[str, Any] | None:
    """One run as a dict, or None."""
    row = conn.execute(sa.select(runs_t).where(runs_t.c.id == int(run_id))).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out["created_at"], out["finished_at"] = utc_or_none(out["created_at"]), utc_or_none(out["finished_at"])
    return out


def backtest_trades(conn: sa.Connection, run_id: int) -> pd.DataFrame:
    """A run's trades in engine order: known columns (UTC times, NaN for NULL) then feature columns."""
    query = sa.select(trades_t).where(trades_t.c.run_id == int(run_id)).order_by(trades_t.c.seq)
    rows = [dict(r) for r in conn.execute(query).mappings()]
    cols = {c: [r[c] for r in rows] for c in (*TRADE_COLUMNS, "features")}
    data: dict[str, pd.Series] = {}
    for c in TRADE_COLUMNS:
        if c in TRADE_TIME_COLUMNS:
            data[c] = ms_to_timestamps(cols[c])
        elif c in TRADE_FLOAT_COLUMNS:
            data[c] = float_column(cols[c])
        elif c == "rank":
            data[c] = int_column(cols[c])
        elif c == "void":
            data[c] = pd.Series([bool(v) for v in cols[c]], dtype=bool)
        else:
            data[c] = pd.Series(cols[c], dtype=object)
    base = pd.DataFrame(data, columns=list(TRADE_COLUMNS))
    return pd.concat([base, features_frame(cols["features"], len(rows))], axis=1)


def _split(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def backtest_windows(conn: sa.Connection, run_id: int) -> pd.DataFrame:
    """A run's windows by decision time; `selected` comes back as a list of symbols."""
    query = sa.select(windows_t).where(windows_t.c.run_id == int(run_id)).order_by(windows_t.c.decision_time)
    rows = [dict(r) for r in conn.execute(query).mappings()]
    return pd.DataFrame(
        {
            "decision_time": ms_to_timestamps([r["decision_time"] for r in rows]),
            "n_selected": pd.Series([r["n_selected"] for r in rows], dtype=np.int64),
            "selected": pd.Series([_split(r["selected"]) for r in rows], dtype=object),
            "window_return": float_column([r["window_return"] for r in rows]),
        },
        columns=list(WINDOW_COLUMNS),
    )


def backtest_metrics(conn: sa.Connection, run_id: int) -> dict[str, float | None]:
    """A run's performance rollup: metric name -> float (None where undefined), by name."""
    query = sa.select(perf_t.c.metric, perf_t.c.value).where(perf_t.c.run_id == int(run_id))
    return {m: (None if v is None else float(v)) for m, v in sorted(conn.execute(query).all())}
