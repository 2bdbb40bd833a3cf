"""Typed config of `configure_strategy`: switch a strategy on or off and set its parameters."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

from pipeline.defs.backtests.config import StrategyName


class StrategySettings(dg.Config):
    """Leave `strategy` empty to only refresh the registry page. Parameters are validated by the engine's
    registry (names, types and ranges) before anything is stored."""

    strategy: StrategyName | None = Field(  # type: ignore[valid-type]
        default=None, description="Strategy to configure (the engine's registry); empty = none."
    )
    active: bool | None = Field(default=None, description="Run it (rankings, scheduled backtests)? Empty = keep.")
    params: dict[str, Any] = Field(default={}, description="Parameters to set; the others keep their value.")
    reset_params: bool = Field(default=False, description="Start from the defaults before applying params.")
