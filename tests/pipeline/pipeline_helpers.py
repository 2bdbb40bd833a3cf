"""Helpers shared by the pipeline tests (importable as `pipeline_helpers`; conftest holds fixtures)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import yaml

SMALL_SYMBOLS = ["AAA/USDT", "BBB/USDT", "CCC/USDT"]
HIST_START = date(2024, 3, 1)
HIST_DAYS = 14  # > the engine's default warm-up (260 1h bars) so strategies produce trades
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def write_universe(path: Path, **overrides) -> Path:
    """A small synthetic universe file (historical by default: deterministic, clock independent)."""
    doc = {
        "name": "test-small",
        "exchange": "synthetic",
        "provider": {"kind": "synthetic", "options": {"seed": 3}},
        "symbols": list(SMALL_SYMBOLS),
        "start": HIST_START.isoformat(),
        "end": (HIST_START + timedelta(days=HIST_DAYS)).isoformat() + "T00:00:00Z",
    }
    doc.update(overrides)
    doc = {k: v for k, v in doc.items() if v is not None}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def make_defs(universe_path: Path, db_url: str = "") -> dg.Definitions:
    from pipeline.definitions import build_defs
    from pipeline.universe import load_universe

    return build_defs(load_universe(universe_path), db_url=db_url)


def open_store(url: str):
    from pipeline.store import Store

    store = Store(url=url)
    store.migrate()
    return store


def ingest(defs: dg.Definitions, universe_path: Path, instance: dg.DagsterInstance | None = None,
           first: date = HIST_START, days: int = HIST_DAYS, raise_on_error: bool = True):
    """Run `ingest_candles` over `days` x every symbol in one partition-range run."""
    from pipeline.defs.market_data.partitions import range_tags
    from pipeline.universe import load_universe

    uni = load_universe(universe_path)
    tags = range_tags(uni, first, first + timedelta(days=days - 1))
    return defs.resolve_job_def("ingest_candles").execute_in_process(
        instance=instance, tags=tags, run_config=QUIET, raise_on_error=raise_on_error
    )


def materialize(
    defs: dg.Definitions,
    selection: str | dg.AssetSelection,
    *,
    tags: dict | None = None,
    resources: dict | None = None,
    instance: dg.DagsterInstance | None = None,
    run_config: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """`dg.materialize` over the code location's assets and checks, with optional resource overrides."""
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=selection,
        resources={**defs.resources, **(resources or {})},
        tags=tags,
        instance=instance,
        run_config={**QUIET, **(run_config or {})},
        raise_on_error=False,
    )


def materialized_keys(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def cells(value) -> str:
    """Every header and cell of a metadata table as one string (or the text of any other metadata value),
    so tests can assert what a user reads in the UI."""
    value = getattr(value, "value", value)
    if isinstance(value, dg.TableMetadataValue) or hasattr(value, "records"):
        head = [c.name for c in value.schema.columns] if value.schema else []
        body = [str(v) for r in value.records for v in r.data.values()]
        return " | ".join(head + body)
    return str(value)


def records(value) -> list[dict]:
    """The rows of a typed metadata table, as dicts keyed by column header."""
    value = getattr(value, "value", value)
    return [dict(r.data) for r in value.records]
