"""Sweeps in the store: the sweep row, its chunks (the engine's `SweepChunk`, pickled) and the configurations
it tried. Each call is one transaction.

Chunks travel through the store, not through a worker's disk: a chunk step on any Celery worker writes
its chunk, the merge step reads them all. The payload is a pickle written only by this module from the
engine's own objects, so reading it back runs no foreign code.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa

from pipeline.store.convert import json_safe, now, utc_series
from pipeline.store.models import Sweep, SweepChunk, SweepConfig
from pipeline.store.runs import RequestAlreadyRecorded

if TYPE_CHECKING:
    from pipeline.store.store import Store

sweeps_t = Sweep.__table__
chunks_t = SweepChunk.__table__
configs_t = SweepConfig.__table__
SWEEP_COLUMNS = ("id", "strategy", "universe", "grid", "config", "n_configs", "n_chunks", "status", "error",
                 "run_key", "request_key", "created_at", "finished_at", "n_trials", "best_config_id", "pbo",
                 "deflated_sharpe", "spa_p_value")  # fmt: skip


class SweepBook:
    """The sweeps of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, *, strategy: str, universe: Sequence[str], grid: Mapping[str, Any], config: Mapping[str, Any],
               plan: Sequence[Mapping[str, Any]], n_chunks: int, run_key: str | None, request_key: str | None,
               data_fingerprint: str | None, code_version: str | None) -> int:  # fmt: skip
        """Record a planned sweep (status running); RequestAlreadyRecorded when the request key was used."""
        values = {"strategy": strategy, "universe": list(universe), "grid": json_safe(dict(grid)),
                  "config": json_safe(dict(config)), "plan": json_safe(list(plan)), "n_configs": len(plan),
                  "n_chunks": int(n_chunks), "status": "running", "run_key": run_key, "request_key": request_key,
                  "data_fingerprint": data_fingerprint, "code_version": code_version, "created_at": now()}  # fmt: skip
        try:
            with self.store._write() as conn:
                return int(conn.execute(sweeps_t.insert().values(**values)).inserted_primary_key[0])
        except sa.exc.IntegrityError as exc:
            if request_key is not None and self.find(request_key=request_key) is not None:
                raise RequestAlreadyRecorded(f"sweep request {request_key!r} was already recorded") from exc
            raise

    def find(self, *, run_key: str | None = None, request_key: str | None = None) -> dict[str, Any] | None:
        """The sweep with this Dagster root run id or request key (None when there is none)."""
        column, value = (sweeps_t.c.run_key, run_key) if run_key is not None else (sweeps_t.c.request_key, request_key)
        with self.store._read() as conn:
            row = conn.execute(sa.select(sweeps_t).where(column == value)).mappings().first()
        return None if row is None else dict(row)

    def get(self, sweep_id: int) -> dict[str, Any] | None:
        with self.store._read() as conn:
            row = conn.execute(sa.select(sweeps_t).where(sweeps_t.c.id == int(sweep_id))).mappings().first()
        return None if row is None else dict(row)

    def claim_fingerprint(self, sweep_id: int, fingerprint: str) -> str:
        """The sweep's data fingerprint: the first caller's (set atomically), which every later chunk must
        match. The plan does not read the candles; the first chunk to load them fixes what the sweep ran on."""
        with self.store._write() as conn:
            conn.execute(sweeps_t.update().where((sweeps_t.c.id == int(sweep_id)) & sweeps_t.c.data_fingerprint.is_(None))
                         .values(data_fingerprint=fingerprint))  # fmt: skip
            return str(conn.execute(sa.select(sweeps_t.c.data_fingerprint).where(sweeps_t.c.id == int(sweep_id))).scalar_one())

    def save_chunk(self, sweep_id: int, chunk_index: int, chunk: Any) -> None:
        """Store one computed chunk (replacing an earlier attempt of the same chunk, e.g. a retried step)."""
        payload = pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)
        key = (chunks_t.c.sweep_id == int(sweep_id)) & (chunks_t.c.chunk_index == int(chunk_index))
        with self.store._write() as conn:
            conn.execute(chunks_t.delete().where(key))
            conn.execute(chunks_t.insert().values(sweep_id=int(sweep_id), chunk_index=int(chunk_index),
                                                  n_configs=len(chunk.configs), payload=payload, created_at=now()))  # fmt: skip

    def chunks(self, sweep_id: int) -> list[Any]:
        """Every stored chunk of a sweep, in chunk order."""
        query = sa.select(chunks_t.c.payload).where(chunks_t.c.sweep_id == int(sweep_id)).order_by(chunks_t.c.chunk_index)
        with self.store._read() as conn:
            return [pickle.loads(p) for (p,) in conn.execute(query)]  # noqa: S301 - written by save_chunk

    def finish(self, sweep_id: int, *, configs: Sequence[Mapping[str, Any]], n_trials: int, best_config_id: int | None,
               pbo: float | None, deflated_sharpe: float | None, spa_p_value: float | None,
               summary: Mapping[str, Any]) -> None:  # fmt: skip
        """The merged result: every configuration tried and the sweep's figures, in one transaction."""
        rows = [{"sweep_id": int(sweep_id), "config_id": int(c["config_id"]), "params": json_safe(c["params"]),
                 "config": json_safe(c["config"]), "metrics": json_safe(c["metrics"])} for c in configs]  # fmt: skip
        with self.store._write() as conn:
            conn.execute(configs_t.delete().where(configs_t.c.sweep_id == int(sweep_id)))
            if rows:
                conn.execute(configs_t.insert(), rows)
            conn.execute(sweeps_t.update().where(sweeps_t.c.id == int(sweep_id)).values(
                status="success", error=None, finished_at=now(), n_trials=int(n_trials), best_config_id=best_config_id,
                pbo=pbo, deflated_sharpe=deflated_sharpe, spa_p_value=spa_p_value, summary=json_safe(dict(summary))))  # fmt: skip

    def fail(self, sweep_id: int, error: str) -> None:
        with self.store._write() as conn:
            conn.execute(sweeps_t.update().where(sweeps_t.c.id == int(sweep_id)).values(
                status="failed", error=str(error)[:4000], finished_at=now()))  # fmt: skip

    def list(self, strategy: str | None = None, limit: int = 50) -> pd.DataFrame:
        """Most recent sweeps first."""
        query = sa.select(*(sweeps_t.c[c] for c in SWEEP_COLUMNS)).order_by(sweeps_t.c.id.desc()).limit(int(limit))
        if strategy is not None:
            query = query.where(sweeps_t.c.strategy == strategy)
        with self.store._read() as conn:
            df = pd.DataFrame([dict(r) for r in conn.execute(query).mappings()], columns=list(SWEEP_COLUMNS))
        for c in ("created_at", "finished_at"):
            df[c] = utc_series(df[c].tolist())
        return df

    def tried_configs(self, strategy: str) -> list[tuple[list[str], dict[str, Any]]]:
        """(universe, run config) of every configuration successful sweeps of `strategy` tried."""
        query = (sa.select(sweeps_t.c.universe, configs_t.c.config)
                 .join(configs_t, configs_t.c.sweep_id == sweeps_t.c.id)
                 .where((sweeps_t.c.strategy == strategy) & (sweeps_t.c.status == "success")))  # fmt: skip
        with self.store._read() as conn:
            return [(list(u or []), dict(c or {})) for u, c in conn.execute(query)]
