"""A simulated paper-trading clock for the tests: candles land in the store as an hourly ingestion would
leave them (everything closed by a given time), and ticks run at chosen clock values, either straight
through the tick functions (fast, for long timelines) or as the real `paper_trading` job."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pandas as pd
from pipeline_helpers import QUIET, make_defs, write_universe

#: small and fast: 48 closed 1h bars of warm-up, feature history anchored on a 3-day grid
SETTINGS = {"warmup_bars": 48, "history_days": 3, "start": "2024-03-05T00:00:00Z"}
FIRST = pd.Timestamp("2024-03-01", tz="UTC")
LOG = logging.getLogger("paper-tests")


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


class PaperSim:
    """One store + universe + synthetic market, and a clock the test moves."""

    def __init__(self, root: Path, db_url: str, **settings) -> None:
        from engine.data.synthetic import SyntheticProvider
        from pipeline.store import Store
        from pipeline.universe import load_universe

        self.universe_path = write_universe(root / "universe.yaml")
        self.uni = load_universe(self.universe_path)
        self.db_url = db_url
        self.db = Store(db_url)
        self.db.migrate()
        self.market = SyntheticProvider(seed=3)
        self.settings = {**SETTINGS, **settings}
        self.landed = FIRST
        self._defs: dg.Definitions | None = None

    def land(self, until: str | pd.Timestamp, symbols: list[str] | None = None) -> None:
        """Store every candle closed by `until` (what the hourly ingestion holds at that time)."""
        until = pd.Timestamp(until)
        start = max(FIRST, min(self.landed, until) - pd.Timedelta(hours=2))
        frames = {s: self.market.fetch_ohlcv(s, start, until, now=until) for s in symbols or self.uni.symbols}
        self.db.upsert_candles_many(frames, exchange=self.uni.exchange, source="synthetic:synthetic", synthetic=True)
        if symbols is None:
            self.landed = max(self.landed, until)

    def config(self, as_of: str | pd.Timestamp, **overrides):
        from pipeline.defs.paper.config import PaperConfig

        return PaperConfig(as_of=pd.Timestamp(as_of).isoformat(), **{**self.settings, **overrides})

    def tick(self, as_of: str | pd.Timestamp, **overrides) -> dict:
        """One tick through the tick functions (record, settle; re-settle when asked)."""
        from pipeline.defs.paper.decisions import record_due
        from pipeline.defs.paper.settlement import resettle_revised, settle_due

        config = self.config(as_of, **overrides)
        clock = pd.Timestamp(as_of)
        done = record_due(self.db, self.uni, config, clock, simulated=True, run_id=None, log=LOG)
        settled = settle_due(self.db, self.uni, config, clock, LOG)
        resettled = resettle_revised(self.db, self.uni, clock, LOG) if config.resettle else []
        return {"recorded": done.recorded, "waiting": done.waiting, "already": done.already,
                "settled": settled["settled"], "resettled": resettled}  # fmt: skip

    @property
    def defs(self) -> dg.Definitions:
        if self._defs is None:
            self._defs = make_defs(self.universe_path, self.db_url)
        return self._defs

    def run_job(self, as_of: str | pd.Timestamp, instance: dg.DagsterInstance | None = None,
                **overrides) -> dg.ExecuteInProcessResult:  # fmt: skip
        """One tick as the real `paper_trading` job (asset, checks, performance), in process."""
        from pipeline.defs.paper.config import run_config

        fields = {**self.settings, **overrides, "as_of": pd.Timestamp(as_of).isoformat()}
        return self.defs.resolve_job_def("paper_trading").execute_in_process(
            run_config={**QUIET, **run_config(**fields)}, instance=instance, raise_on_error=False
        )

    def decisions(self) -> pd.DataFrame:
        return self.db.paper.decisions()

    def trades(self) -> pd.DataFrame:
        return self.db.paper.trades()


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    """The check evaluations of a run, by check name."""
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def materialization(result: dg.ExecuteInProcessResult, key: str) -> dict:
    """The metadata of the run's materialisation of `key`."""
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key]
    return event.materialization.metadata


@contextmanager
def registered(cls: type) -> Iterator[None]:
    """A strategy class in the engine registry for the duration of a test only."""
    from engine.strategies import registry

    registry.register_strategy(cls)
    try:
        yield
    finally:
        registry._REGISTRY.pop(cls.name, None)
