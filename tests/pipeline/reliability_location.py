"""A test-only code location for the live reliability tests: the real graph with a gated provider.

`pipeline.definitions.build_defs()` with one change: the market-data resource waits at a gate while the
file `$CRYPTO4H_TEST_GATE/hold` exists, after writing `pid-<pid>` (the process that runs the step,
and its parent) into that folder. A test can thus hold an ingestion mid-run, find its process and kill
it, then remove the file so the next run goes straight through. Without the variable it is the plain
graph.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg

from pipeline.definitions import build_defs
from pipeline.resources import MarketDataResource

GATE_ENV = "CRYPTO4H_TEST_GATE"
MAX_HOLD_SECONDS = 300


class _Gated:
    """Wraps a provider: the first fetch of a run waits while the gate's hold file exists."""

    def __init__(self, inner, gate: Path | None) -> None:
        self._inner, self._gate = inner, gate

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def fetch_with_coverage(self, *args, **kwargs):
        gate = self._gate
        if gate is not None and (gate / "hold").exists():
            (gate / f"pid-{os.getpid()}").write_text(f"{os.getpid()} {os.getppid()}")
            deadline = time.monotonic() + MAX_HOLD_SECONDS
            while (gate / "hold").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
        return self._inner.fetch_with_coverage(*args, **kwargs)


class GatedMarketData(MarketDataResource):
    """The universe's provider behind the gate of `$CRYPTO4H_TEST_GATE` (see the module docstring)."""

    def provider(self, universe):
        gate = os.environ.get(GATE_ENV)
        return _Gated(super().provider(universe), Path(gate) if gate else None)


def _gated(base: dg.Definitions) -> dg.Definitions:
    return dg.Definitions(
        assets=base.assets, asset_checks=base.asset_checks, jobs=base.jobs, schedules=base.schedules,
        sensors=base.sensors, resources={**(base.resources or {}), "market_data": GatedMarketData()},
    )  # fmt: skip


defs = _gated(build_defs())
