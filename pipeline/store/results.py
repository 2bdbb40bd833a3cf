"""Strategy registry, backtest results and ranking snapshots (Core SQL inside the caller's transaction)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from pipeline.store.convert import (
    flatten_metrics,
    json_safe,
    ms_to_timestamps,
    series_to_ms,
    to_bool,
    to_float,
    to_int,
    to_ms,
    to_text,
)
from pipeline.store.models import (
    RUN_KINDS,
    BacktestRun,
    BacktestTrade,
    BacktestWindow,
    RankingRow,
    RankingSnapshot,
    Strategy,
    StrategyPerformance,
)

runs_t = BacktestRun.__table__
trades_t = BacktestTrade.__table__
windows_t = BacktestWindow.__table__
perf_t = StrategyPerformance.__table__
snapshots_t = RankingSnapshot.__table__
ranking_t = RankingRow.__table__
strategies_t = Strategy.__table__

TRADE_TIME_COLUMNS = ("decision_time", "entry_time", "exit_time")
TRADE_FLOAT_COLUMNS = ("entry_price", "exit_price", "return_pct", "max_drawdown", "weight", "score")
TRADE_COLUMNS = (
    "decision_time", "symbol", "entry_time", "exit_time", "direction", "entry_price", "exit_price",
    "return_pct", "max_drawdown", "weight", "rank", "score", "void",
)  # fmt: skip
WINDOW_COLUMNS = ("decision_time", "n_selected", "selected", "window_return")
RANKING_COLUMNS = ("symbol", "rank", "score", "eligible", "selected", "reasons")
RUN_COLUMNS = (
    "id", "kind", "strategy", "status", "created_at", "finished_at", "data_fingerprint", "code_version",
    "request_key", "error", "universe", "config",
)  # fmt: skip


class RequestAlreadyRecorded(ValueError):
    """A backtest with this request key was already recorded (requests are processed exactly once)."""


def now() -> datetime:
    """The current time, tz-aware UTC."""
    return datetime.now(UTC)


# --- strategies ---------------------------------------------------------------------------------------


def sync_strategies(conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Make the registry match `rows`: insert new, update changed, deactivate the ones not listed.

    Rows are never deleted (runs refer to strategies by name); `updated_at` moves only on a change. A row
    without an `active` key keeps the stored flag (new strategies start active), so a strategy switched
    off by an operator stays off when the code's registry is synced again.
    """
    wanted: dict[str, dict[str, Any]] = {}
    rows_by_name: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        name = row.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"strategy row without a name: {row!r}")
        if name in wanted:
            raise ValueError(f"strategy {name!r} listed twice")
        rows_by_name[name] = row
        wanted[name] = {
            "name": name,
            "description": to_text(row.get("description")) or "",
            "parameters": json_safe(row.get("parameters") or {}),
            "active": to_bool(row.get("active"), default=True),
        }
    existing = {r["name"]: dict(r) for r in conn.execute(sa.select(strategies_t)).mappings()}
    for name, new in wanted.items():
        if name in existing and "active" not in rows_by_name[name]:
            new["active"] = existing[name]["active"]
    stamp = now()
    for name, new in wanted.items():
        old = existing.get(name)
        if old is None:
            conn.execute(strategies_t.insert().values(**new, updated_at=stamp))
        elif any(old[k] != new[k] for k in ("description", "parameters", "active")):
            conn.execute(
                strategies_t.update().where(strategies_t.c.name == name).values(**new, updated_at=stamp)
            )
    gone = [n for n, old in existing.items() if n not in wanted and old["active"]]
    if gone:
        conn.execute(
            strategies_t.update().where(strategies_t.c.name.in_(gone)).values(active=False, updated_at=stamp)
        )


def active_strategies(conn: sa.Connection) -> list[dict[str, Any]]:
    """Active strategies as dicts (name, description, parameters, active, updated_at), by name."""
    query = sa.select(strategies_t).where(strategies_t.c.active.is_(True)).order_by(strategies_t.c.name)
    out = []
    for r in conn.execute(query).mappings():
        row = dict(r)
        row["updated_at"] = _utc(row["updated_at"])
        row["parameters"] = row["parameters"] or {}
        out.append(row)
    return out


# --- backtests ----------------------------------------------------------------------------------------


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


def _float_list(s: pd.Series) -> list[float | None]:
    if pd.api.types.is_float_dtype(s.dtype) or pd.api.types.is_integer_dtype(s.dtype):
        arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
        return [None if np.isnan(v) else float(v) for v in arr]
    return [to_float(v) for v in s.tolist()]


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name] if name in df.columns else pd.Series([None] * len(df), index=df.index, dtype=object)


def trade_rows(run_id: int, trades: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Engine trades -> backtest_trades rows; columns beyond the known ones go to `features` (JSON)."""
    if trades is None or len(trades) == 0:
        return []
    df = trades.reset_index(drop=True)
    if "symbol" not in df.columns:
        raise ValueError("trades need a 'symbol' column")
    cols: dict[str, list[Any]] = {c: series_to_ms(_column(df, c)) for c in TRADE_TIME_COLUMNS}
    cols.update({c: _float_list(_column(df, c)) for c in TRADE_FLOAT_COLUMNS})
    cols["symbol"] = [to_text(v) for v in df["symbol"].tolist()]
    cols["direction"] = [to_text(v) for v in _column(df, "direction").tolist()]
    cols["rank"] = [to_int(v) for v in _column(df, "rank").tolist()]
    cols["void"] = [to_bool(v) for v in _column(df, "void").tolist()]
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
    selected = _column(df, "selected").tolist()
    counts = _column(df, "n_selected").tolist()
    returns = _float_list(_column(df, "window_return"))
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


def _utc(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _utc_series(values: list[Any]) -> pd.Series:
    return pd.Series(pd.to_datetime(pd.Series(values, dtype=object), utc=True), dtype="datetime64[ns, UTC]")


def list_backtests(
    conn: sa.Connection,
    strategy: str | None = None,
    limit: int = 50,
    *,
    kind: str | None = None,
    status: str | None = None,
) -> pd.DataFrame:
    """Most recent runs first (one row per run; config and universe as Python objects)."""
    query = sa.select(*(runs_t.c[c] for c in RUN_COLUMNS)).order_by(runs_t.c.id.desc()).limit(int(limit))
    for column, value in (("strategy", strategy), ("kind", kind), ("status", status)):
        if value is not None:
            query = query.where(runs_t.c[column] == value)
    rows = [dict(r) for r in conn.execute(query).mappings()]
    df = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    df["id"] = df["id"].astype(np.int64)
    for c in ("created_at", "finished_at"):
        df[c] = _utc_series(df[c].tolist())
    return df


def backtest_run(conn: sa.Connection, run_id: int) -> dict[str, Any] | None:
    """One run as a dict, or None."""
    row = conn.execute(sa.select(runs_t).where(runs_t.c.id == int(run_id))).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out["created_at"], out["finished_at"] = _utc(out["created_at"]), _utc(out["finished_at"])
    return out


def _int_column(values: list[Any]) -> pd.Series:
    """int64 without nulls, float64 with NaN otherwise (what pandas itself would give)."""
    if any(v is None for v in values):
        return pd.Series([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return pd.Series(values, dtype=np.int64)


def _float_column(values: list[Any]) -> pd.Series:
    return pd.Series([np.nan if v is None else v for v in values], dtype=np.float64)


def _features_frame(features: list[Any], n: int) -> pd.DataFrame:
    records = [f if isinstance(f, dict) else {} for f in features]
    keys = list(dict.fromkeys(k for r in records for k in r))
    if not keys:
        return pd.DataFrame(index=range(n))
    data = {}
    for k in keys:
        vals = [r.get(k) for r in records]
        numeric = all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in vals)
        data[k] = _float_column(vals) if numeric else pd.Series(vals, dtype=object)
    return pd.DataFrame(data)


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
            data[c] = _float_column(cols[c])
        elif c == "rank":
            data[c] = _int_column(cols[c])
        elif c == "void":
            data[c] = pd.Series([bool(v) for v in cols[c]], dtype=bool)
        else:
            data[c] = pd.Series(cols[c], dtype=object)
    base = pd.DataFrame(data, columns=list(TRADE_COLUMNS))
    return pd.concat([base, _features_frame(cols["features"], len(rows))], axis=1)


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
            "window_return": _float_column([r["window_return"] for r in rows]),
        },
        columns=list(WINDOW_COLUMNS),
    )


def backtest_metrics(conn: sa.Connection, run_id: int) -> dict[str, float | None]:
    """A run's performance rollup: metric name -> float (None where undefined), by name."""
    query = sa.select(perf_t.c.metric, perf_t.c.value).where(perf_t.c.run_id == int(run_id))
    return {m: (None if v is None else float(v)) for m, v in sorted(conn.execute(query).all())}


# --- rankings -----------------------------------------------------------------------------------------


def save_ranking_snapshot(
    conn: sa.Connection, *, strategy: str, decision_time: Any, ranking: pd.DataFrame
) -> int:
    """Snapshot header + one row per symbol (extra columns -> features JSON); return the snapshot id."""
    t = to_ms(decision_time)
    if t is None:
        raise ValueError("decision_time is required")
    if not isinstance(strategy, str) or not strategy:
        raise ValueError(f"strategy must be a non-empty string, got {strategy!r}")
    df = ranking.copy()
    if "symbol" not in df.columns and df.index.name == "symbol":
        df = df.reset_index()
    if "symbol" not in df.columns:
        raise ValueError("ranking needs a 'symbol' column")
    df = df.reset_index(drop=True)
    extra = [c for c in df.columns if c not in RANKING_COLUMNS and c != "decision_time"]
    features = [json_safe(r) for r in df[extra].to_dict("records")] if extra else [None] * len(df)
    symbols = [to_text(v) for v in df["symbol"].tolist()]
    if any(s is None for s in symbols):
        raise ValueError("ranking has a missing symbol")
    ranks = [to_int(v) for v in _column(df, "rank").tolist()]
    scores = _float_list(_column(df, "score"))
    eligible = [to_bool(v) for v in _column(df, "eligible").tolist()]
    selected = [to_bool(v) for v in _column(df, "selected").tolist()]
    reasons = [to_text(v) for v in _column(df, "reasons").tolist()]
    result = conn.execute(snapshots_t.insert().values(strategy=strategy, decision_time=t, created_at=now()))
    snapshot_id = int(result.inserted_primary_key[0])
    if len(df):
        conn.execute(
            ranking_t.insert(),
            [
                {
                    "snapshot_id": snapshot_id,
                    "symbol": symbols[i],
                    "seq": i,
                    "rank": ranks[i],
                    "score": scores[i],
                    "eligible": eligible[i],
                    "selected": selected[i],
                    "reasons": reasons[i],
                    "features": features[i],
                }
                for i in range(len(df))
            ],
        )
    return snapshot_id


def latest_ranking(conn: sa.Connection, strategy: str) -> pd.DataFrame:
    """The newest snapshot (by decision time, then id) of a strategy, in saved row order.

    Columns: decision_time, symbol, rank, score, eligible, selected, reasons, then feature columns;
    `attrs` holds snapshot_id, strategy, decision_time and created_at. Empty frame when none exists.
    """
    head = (
        conn.execute(
            sa.select(snapshots_t)
            .where(snapshots_t.c.strategy == strategy)
            .order_by(snapshots_t.c.decision_time.desc(), snapshots_t.c.id.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    columns = ["decision_time", *RANKING_COLUMNS]
    if head is None:
        empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
        empty["decision_time"] = pd.Series([], dtype="datetime64[ns, UTC]")
        return empty
    query = sa.select(ranking_t).where(ranking_t.c.snapshot_id == head["id"]).order_by(ranking_t.c.seq)
    rows = [dict(r) for r in conn.execute(query).mappings()]
    base = pd.DataFrame(
        {
            "decision_time": ms_to_timestamps([head["decision_time"]] * len(rows)),
            "symbol": pd.Series([r["symbol"] for r in rows], dtype=object),
            "rank": _int_column([r["rank"] for r in rows]),
            "score": _float_column([r["score"] for r in rows]),
            "eligible": pd.Series([bool(r["eligible"]) for r in rows], dtype=bool),
            "selected": pd.Series([bool(r["selected"]) for r in rows], dtype=bool),
            "reasons": pd.Series([r["reasons"] for r in rows], dtype=object),
        },
        columns=columns,
    )
    out = pd.concat([base, _features_frame([r["features"] for r in rows], len(rows))], axis=1)
    out.attrs.update(
        snapshot_id=int(head["id"]),
        strategy=head["strategy"],
        decision_time=pd.Timestamp(head["decision_time"], unit="ms", tz="UTC"),
        created_at=_utc(head["created_at"]),
    )
    return out
