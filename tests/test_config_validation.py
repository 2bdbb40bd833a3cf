"""`WalkForwardConfig` refuses what the engine cannot represent, always with a ValueError naming the field.

Never a raw TypeError or OverflowError, and never a config that runs but means something else (a 3h window
with a 2h shift used to commit 133% of the capital).
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.backtest import WalkForwardConfig

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.just(math.inf), st.just(-math.inf), st.just(math.nan),
    st.integers(min_value=10**12, max_value=10**400), st.integers(max_value=-1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.binary(max_size=3),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    st.complex_numbers(),
    st.just(object()),
)
FIELDS = ["window_hours", "shift_hours", "fee_bps", "slippage_bps", "max_positions", "warmup_bars",
          "bootstrap_samples", "confidence", "seed", "cost_levels_bps", "feature_timeframe", "start", "end"]


@settings(max_examples=400, deadline=None)
@given(field=st.sampled_from(FIELDS), value=JUNK)
def test_junk_in_any_field_is_a_clear_value_error_or_a_valid_config(field, value):
    try:
        cfg = WalkForwardConfig(**{field: value})
    except ValueError as exc:
        # the message names the field (or the field pair for window/shift and start/end)
        assert field in str(exc) or "WalkForwardConfig" in str(exc)
        return
    # accepted: then it is a sane value of the right kind, and the config works end to end
    assert cfg.window_ms % cfg.shift_ms == 0
    assert all(math.isfinite(x) and x >= 0 for x in (cfg.fee_bps, cfg.slippage_bps, *cfg.cost_levels_bps))
    assert type(cfg.max_positions) is int and type(cfg.bootstrap_samples) is int and type(cfg.seed) is int
    assert 0 < cfg.confidence < 1
    assert WalkForwardConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window_hours": 3, "shift_hours": 2}, "whole multiple of shift_hours"),
        ({"window_hours": 2, "shift_hours": 4}, "whole multiple of shift_hours"),
        ({"window_hours": math.inf}, "window_hours must be a finite number"),
        ({"shift_hours": math.nan}, "shift_hours must be a finite number"),
        ({"window_hours": None}, "window_hours must be a finite number"),
        ({"window_hours": True}, "window_hours must be a finite number"),
        ({"window_hours": "4"}, "window_hours must be a finite number"),
        ({"window_hours": 10**400}, "window_hours must be a finite number"),
        ({"window_hours": 10**9}, "window_hours must be in"),
        ({"fee_bps": math.inf}, "fee_bps must be a finite number"),
        ({"fee_bps": -1}, "fee_bps must be in"),
        ({"slippage_bps": None}, "slippage_bps"),
        ({"fee_bps": 6000, "slippage_bps": 4000}, "below 10,000"),
        ({"max_positions": 2.5}, "max_positions must be an integer"),
        ({"max_positions": True}, "max_positions must be an integer"),
        ({"max_positions": 10**30}, "max_positions must be between"),
        ({"warmup_bars": 0}, "warmup_bars must be between"),
        ({"warmup_bars": math.nan}, "warmup_bars must be an integer"),
        ({"bootstrap_samples": -1}, "bootstrap_samples must be between"),
        ({"bootstrap_samples": None}, "bootstrap_samples must be an integer"),
        ({"bootstrap_samples": 10**9}, "bootstrap_samples must be between"),
        ({"confidence": 1.0}, "confidence must be in"),
        ({"confidence": 0}, "confidence must be in"),
        ({"confidence": math.nan}, "confidence must be a finite number"),
        ({"seed": -1}, "seed must be between"),
        ({"seed": "0"}, "seed must be an integer"),
        ({"seed": None}, "seed must be an integer"),
        ({"cost_levels_bps": "0,10"}, "cost_levels_bps must be a list"),
        ({"cost_levels_bps": None}, "cost_levels_bps must be a list"),
        ({"cost_levels_bps": (0, math.inf)}, "cost_levels_bps must be a finite number"),
        ({"cost_levels_bps": (0, -5)}, "cost_levels_bps must be in"),
        ({"cost_levels_bps": (0, 9999), "slippage_bps": 5}, "must be below 10,000"),
        ({"feature_timeframe": 60}, "feature_timeframe must be a string"),
        ({"feature_timeframe": None}, "feature_timeframe must be a string"),
        ({"feature_timeframe": "7s"}, "timeframe"),
        ({"start": 1704067200000}, "start must be a time"),
        ({"end": True}, "end must be a time"),
        ({"start": "not a date"}, "cannot parse"),
        ({"end": "9999-12-31"}, "outside the supported time range"),
        ({"start": "2024-02-01", "end": "2024-01-01"}, "end .* must be after start"),
    ],
)
def test_clear_messages(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WalkForwardConfig(**kwargs)


def test_valid_values_of_every_kind_are_accepted_and_normalised():
    cfg = WalkForwardConfig(
        start=dt.datetime(2024, 1, 1), end=np.datetime64("2024-02-01T00:00"), window_hours=8, shift_hours=2.0,
        fee_bps=np.float32(7.5), slippage_bps=np.int64(2), max_positions=3.0, warmup_bars=np.int32(100),
        bootstrap_samples=500, confidence=0.9, seed=np.uint8(7), cost_levels_bps=np.array([0, 5, 10]),
    )
    assert cfg.start == pd.Timestamp("2024-01-01", tz="UTC") and cfg.end == pd.Timestamp("2024-02-01", tz="UTC")
    assert (cfg.window_ms, cfg.shift_ms, cfg.sleeve_factor) == (8 * 3_600_000, 2 * 3_600_000, 0.25)
    assert cfg.fee_bps == 7.5 and cfg.slippage_bps == 2.0
    assert cfg.max_positions == 3 and type(cfg.max_positions) is int
    assert cfg.warmup_bars == 100 and cfg.seed == 7 and type(cfg.seed) is int
    assert cfg.cost_levels_bps == (0.0, 5.0, 10.0)
    assert WalkForwardConfig().cost_levels_bps == (0.0, 10.0, 20.0, 30.0)
    assert WalkForwardConfig.from_dict(cfg.to_dict()) == cfg
