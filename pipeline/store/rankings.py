"""Ranking snapshots: what each strategy would pick at a decision time, and why, one row per symbol."""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

from pipeline.store.convert import (
    column_or_none,
    features_frame,
    float_column,
    float_list,
    int_column,
    json_safe,
    ms_to_timestamps,
    now,
    to_bool,
    to_int,
    to_ms,
    to_text,
    utc_or_none,
)
from pipeline.store.models import RankingRow, RankingSnapshot

snapshots_t = RankingSnapshot.__table__
ranking_t = RankingRow.__table__

RANKING_COLUMNS = ("symbol", "rank", "score", "eligible", "selected", "reasons")


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
    ranks = [to_int(v) for v in column_or_none(df, "rank").tolist()]
    scores = float_list(column_or_none(df, "score"))
    eligible = [to_bool(v) for v in column_or_none(df, "eligible").tolist()]
    selected = [to_bool(v) for v in column_or_none(df, "selected").tolist()]
    reasons = [to_text(v) for v in column_or_none(df, "reasons").tolist()]
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
            "rank": int_column([r["rank"] for r in rows]),
            "score": float_column([r["score"] for r in rows]),
            "eligible": pd.Series([bool(r["eligible"]) for r in rows], dtype=bool),
            "selected": pd.Series([bool(r["selected"]) for r in rows], dtype=bool),
            "reasons": pd.Series([r["reasons"] for r in rows], dtype=object),
        },
        columns=columns,
    )
    out = pd.concat([base, features_frame([r["features"] for r in rows], len(rows))], axis=1)
    out.attrs.update(
        snapshot_id=int(head["id"]),
        strategy=head["strategy"],
        decision_time=pd.Timestamp(head["decision_time"], unit="ms", tz="UTC"),
        created_at=utc_or_none(head["created_at"]),
    )
    return out
