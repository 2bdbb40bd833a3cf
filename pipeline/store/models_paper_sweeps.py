"""Tables of paper trading (migration 0003) and parameter sweeps (migration 0004), on the same declarative
base as `pipeline.store.models` (which imports this module, so `models.metadata` holds every table)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.store.models import (
    EXCHANGE_MAX_CHARS,
    PAPER_MODES,
    PAPER_STATUSES,
    SWEEP_STATUSES,
    SYMBOL_MAX_CHARS,
    Base,
    JSONType,
    Key,
    Timestamp,
)


class PaperDecision(Base):
    """One paper decision: a strategy's picks at one decision time, recorded exactly once (unique key).

    `recorded_at` is the tick's clock; `mode` says whether the tick of that decision time recorded it
    in time (`live`), late (`late`), or a later tick caught it up from the stored candles (`caught_up`).
    `history_start` is where the feature history began and `inputs` fingerprints, per symbol, the
    candles the decision read (`{"n": rows, "sha": hex}`), so a later difference can be traced to data.
    `window_return` and `settled_at` are set once every trade of the decision is settled.
    """

    __tablename__ = "paper_decisions"
    __table_args__ = (
        sa.UniqueConstraint("strategy", "decision_time"),
        sa.CheckConstraint(f"mode IN {PAPER_MODES!r}", name="mode"),
        sa.Index("ix_paper_decisions_decision_time", "decision_time"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    strategy: Mapped[str] = mapped_column(Key)
    decision_time: Mapped[int] = mapped_column(sa.BigInteger)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    config: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    exchange: Mapped[str] = mapped_column(sa.String(EXCHANGE_MAX_CHARS))
    history_start: Mapped[int] = mapped_column(sa.BigInteger)
    inputs: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    n_eligible: Mapped[int] = mapped_column(sa.Integer)
    n_candidates: Mapped[int] = mapped_column(sa.Integer)
    n_selected: Mapped[int] = mapped_column(sa.Integer)
    mode: Mapped[str] = mapped_column(sa.String(16))
    recorded_at: Mapped[datetime] = mapped_column(Timestamp)
    note: Mapped[str | None] = mapped_column(sa.Text)
    run_id: Mapped[str | None] = mapped_column(sa.String(64))
    window_return: Mapped[float | None] = mapped_column(sa.Double)
    settled_at: Mapped[datetime | None] = mapped_column(Timestamp)


class PaperTrade(Base):
    """One pick of a paper decision: entry at the decision time, then its settlement (SPEC section 3).

    `status` is `open` until the window has closed and its candles are stored, then `settled` or `void`
    (no candle in the window). `window_inputs` fingerprints the window candles the settlement read;
    `previous` keeps the earlier settlements a re-settlement replaced (after a candle revision).
    """

    __tablename__ = "paper_trades"
    __table_args__ = (
        sa.CheckConstraint(f"status IN {PAPER_STATUSES!r}", name="status"),
        sa.Index("ix_paper_trades_status", "status"),
    )

    decision_id: Mapped[int] = mapped_column(
        sa.ForeignKey("paper_decisions.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    symbol: Mapped[str] = mapped_column(sa.String(SYMBOL_MAX_CHARS), primary_key=True)
    rank: Mapped[int | None] = mapped_column(sa.Integer)
    weight: Mapped[float] = mapped_column(sa.Double)
    score: Mapped[float | None] = mapped_column(sa.Double)
    entry_price: Mapped[float] = mapped_column(sa.Double)
    features: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(sa.String(16))
    exit_time: Mapped[int | None] = mapped_column(sa.BigInteger)
    exit_price: Mapped[float | None] = mapped_column(sa.Double)
    return_pct: Mapped[float | None] = mapped_column(sa.Double)
    gross_return_pct: Mapped[float | None] = mapped_column(sa.Double)
    max_drawdown: Mapped[float | None] = mapped_column(sa.Double)
    n_candles: Mapped[int | None] = mapped_column(sa.Integer)
    window_inputs: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    settled_at: Mapped[datetime | None] = mapped_column(Timestamp)
    previous: Mapped[list[Any] | None] = mapped_column(JSONType)


class PaperCandle(Base):
    """The first-seen version of every candle a paper decision or settlement read (the revision ledger).

    Keyed like `candles`; `sha` hashes the five values. A later ingestion that changes, removes or fills
    in a candle inside the ledger's range shows up as a difference against it (`pipeline/store/paper.py`).
    """

    __tablename__ = "paper_candles"
    __table_args__ = ({"sqlite_with_rowid": False},)

    series_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    open_time: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    open: Mapped[float] = mapped_column(sa.Double)
    high: Mapped[float] = mapped_column(sa.Double)
    low: Mapped[float] = mapped_column(sa.Double)
    close: Mapped[float] = mapped_column(sa.Double)
    volume: Mapped[float] = mapped_column(sa.Double)
    sha: Mapped[str] = mapped_column(sa.String(16))
    first_seen_at: Mapped[datetime] = mapped_column(Timestamp)


class Sweep(Base):
    """One parameter sweep: its grid, base config and universe, then its overfitting figures once merged.

    A sweep is planned by one step, its configurations run as chunks in separate steps (each writes its
    `sweep_chunks` row), and one step merges them (`pbo`, `deflated_sharpe`, `spa_p_value`, best config).
    `run_key` (the Dagster root run id) lets those steps find their sweep; `request_key` makes a request
    file's sweep exactly-once.
    """

    __tablename__ = "sweeps"
    __table_args__ = (
        sa.CheckConstraint(f"status IN {SWEEP_STATUSES!r}", name="status"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    strategy: Mapped[str] = mapped_column(Key)
    universe: Mapped[list[str] | None] = mapped_column(JSONType)
    grid: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    config: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    plan: Mapped[list[Any] | None] = mapped_column(JSONType)
    n_configs: Mapped[int] = mapped_column(sa.Integer)
    n_chunks: Mapped[int] = mapped_column(sa.Integer)
    status: Mapped[str] = mapped_column(sa.String(16))
    error: Mapped[str | None] = mapped_column(sa.Text)
    run_key: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    request_key: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    data_fingerprint: Mapped[str | None] = mapped_column(sa.Text)
    code_version: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    n_trials: Mapped[int | None] = mapped_column(sa.Integer)
    best_config_id: Mapped[int | None] = mapped_column(sa.Integer)
    pbo: Mapped[float | None] = mapped_column(sa.Double)
    deflated_sharpe: Mapped[float | None] = mapped_column(sa.Double)
    spa_p_value: Mapped[float | None] = mapped_column(sa.Double)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


def _sweep_fk() -> sa.ForeignKey:
    return sa.ForeignKey("sweeps.id", ondelete="CASCADE")


class SweepChunk(Base):
    """One chunk of a sweep's configurations, as the engine's `SweepChunk` (pickled by `pipeline.store`,
    which alone writes it): what the merge step reads, whichever worker ran the chunk."""

    __tablename__ = "sweep_chunks"

    sweep_id: Mapped[int] = mapped_column(_sweep_fk(), primary_key=True, autoincrement=False)
    chunk_index: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    n_configs: Mapped[int] = mapped_column(sa.Integer)
    payload: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class SweepConfig(Base):
    """One configuration a sweep tried: its parameters, the full run config (what counts as a trial for
    the deflated Sharpe of later runs) and its headline metrics."""

    __tablename__ = "sweep_configs"

    sweep_id: Mapped[int] = mapped_column(_sweep_fk(), primary_key=True, autoincrement=False)
    config_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    config: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
