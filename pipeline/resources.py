"""Resources: the SQL store, the market-data provider and the universe file.

Defaults live in the fields (an empty string means "environment, then the project default") because
`EnvVar` has no default value; the environment overrides without touching code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import PrivateAttr

from pipeline.universe import Universe, load_universe

if TYPE_CHECKING:
    from engine.data.base import MarketDataProvider
    from pipeline.store import Store


class StoreResource(dg.ConfigurableResource):
    """The project's SQL store (candles and results).

    `db_url` empty -> `$CRYPTO4H_DB_URL`, else the embedded SQLite file `data/crypto4h.db`. The schema is
    migrated when a run first opens the store (cheap when already current), so a fresh database works.
    """

    db_url: str = ""
    auto_migrate: bool = True

    _store: Any = PrivateAttr(default=None)

    def get(self) -> Store:
        """The open store for this run (created on first use, disposed at teardown)."""
        if self._store is None:
            from pipeline.store import Store

            store = Store(url=self.db_url or None)
            if self.auto_migrate:
                store.migrate()
            self._store = store
        return self._store

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._store is not None:
            self._store.dispose()
            self._store = None


class UniverseResource(dg.ConfigurableResource):
    """The universe file (symbols, exchange, provider, start date).

    `path` empty -> `$CRYPTO4H_UNIVERSE`, else `config/universe.yaml`. `Definitions` pins it to the file
    the partitions were built from, so runs and partition keys always agree.
    """

    path: str = ""

    def load(self) -> Universe:
        return load_universe(self.path or None)


class MarketDataResource(dg.ConfigurableResource):
    """Where candles come from.

    `kind` empty -> the universe file's provider (offline by default: the bundled sample or the synthetic
    market). Set `kind` (synthetic, files, ccxt, nobitex) and `options` to override it per run.
    """

    kind: str = ""
    options: dict[str, Any] = {}

    def provider(self, universe: Universe) -> MarketDataProvider:
        from engine.data import make_provider

        if self.kind:
            return make_provider(self.kind, **self.options)
        return make_provider(universe.provider_kind, **{**universe.provider_options, **self.options})
