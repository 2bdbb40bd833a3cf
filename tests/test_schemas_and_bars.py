"""Candle schema errors and 5m -> higher-timeframe aggregation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.bars import aggregate, closed_bar_count
from engine.schemas import CandleValidationError, candles_look_valid, validate_candles


def candles(n: int = 6, start: str = "2024-01-01 00:00") -> pd.DataFrame:
    ts = pd.date_range(pd.Timestamp(start, tz="UTC"), periods=n, freq="5min")
    close = 10.0 + np.arange(n)
    return pd.DataFrame({"timestamp": ts, "open": close - 0.5, "high": close + 1, "low": close - 1,
                         "close": close, "volume": np.full(n, 2.0)})


@pytest.mark.parametrize(
    ("mutate", "rule"),
    [
        (lambda d: d.assign(high=d["close"] - 0.1), "high >= max(open, close)"),
        (lambda d: d.assign(low=d["close"] + 0.1), "low <= min(open, close)"),
        (lambda d: d.assign(volume=-1.0), "volume >= 0"),
        (lambda d: d.assign(open=0.0), "open > 0"),
        (lambda d: d.iloc[[1, 0, 2]], "timestamps sorted ascending"),
        (lambda d: pd.concat([d.iloc[:2], d.iloc[1:3]]).reset_index(drop=True), "timestamps unique"),
        (lambda d: d.assign(timestamp=d["timestamp"].dt.tz_localize(None)), "tz-aware UTC"),
        (lambda d: d.assign(timestamp=d["timestamp"] + pd.Timedelta("1min")), "5m grid"),
        (lambda d: d.drop(columns="volume"), "missing columns"),
    ],
)
def test_schema_violation_names_symbol_rule_and_rows(mutate, rule):
    with pytest.raises(CandleValidationError) as err:
        validate_candles(mutate(candles()), "ETH/BTC")
    message = str(err.value)
    assert "ETH/BTC" in message and rule in message


def test_nan_is_rejected_with_the_row():
    bad = candles()
    bad.loc[3, "close"] = np.nan
    with pytest.raises(CandleValidationError, match="NaN in close") as err:
        validate_candles(bad, "X/Y")
    assert "2024-01-01 00:15:00" in str(err.value)


def test_integer_timestamps_are_epoch_ms_and_dtypes_coerced():
    raw = candles()
    raw["timestamp"] = raw["timestamp"].astype("int64") // 1_000_000
    raw["volume"] = raw["volume"].astype(int)
    out = validate_candles(raw, "X/Y")
    assert str(out["timestamp"].dt.tz) == "UTC" and out["volume"].dtype == np.float64
    assert out["timestamp"].iloc[0] == pd.Timestamp("2024-01-01", tz="UTC")


frames = st.lists(
    st.tuples(
        st.integers(0, 40),  # slot on the 5m grid
        st.floats(0.5, 2), st.floats(0.5, 2), st.floats(0.5, 2), st.floats(0.5, 2), st.floats(-1, 5),
    ),
    min_size=1, max_size=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames, st.booleans())
def test_fast_check_agrees_with_pandera(rows, shuffle):
    ts = pd.to_datetime([r[0] * 300_000 for r in rows], unit="ms", utc=True)
    df = pd.DataFrame({"timestamp": ts, "open": [r[1] for r in rows], "high": [r[2] for r in rows],
                       "low": [r[3] for r in rows], "close": [r[4] for r in rows], "volume": [r[5] for r in rows]})
    if not shuffle:
        df = df.sort_values("timestamp").drop_duplicates("timestamp").reset_index(drop=True)
    try:
        validate_candles(df, "P/Q", coerce=False)
        pandera_ok = True
    except CandleValidationError:
        pandera_ok = False
    assert candles_look_valid(df) == pandera_ok


def test_aggregation_by_hand():
    # 00:00..00:55 (12 candles) then 01:05, 01:10: the 01:00 candle is missing, the 02:00 hour is empty
    df = candles(14)
    df.loc[12:, "timestamp"] = [pd.Timestamp("2024-01-01 01:05", tz="UTC"), pd.Timestamp("2024-01-01 03:10", tz="UTC")]
    bars = aggregate(df, "1h")
    assert list(bars.index) == [pd.Timestamp("2024-01-01 00:00", tz="UTC"), pd.Timestamp("2024-01-01 01:00", tz="UTC"),
                                pd.Timestamp("2024-01-01 03:00", tz="UTC")]
    first = bars.iloc[0]
    assert first["open"] == 9.5 and first["close"] == 21.0  # closes are 10..21
    assert first["high"] == 22.0 and first["low"] == 9.0
    assert first["volume"] == 24.0 and first["n_candles"] == 12
    assert first["quote_volume"] == sum(2.0 * (10 + i) for i in range(12))
    assert bars.iloc[1]["n_candles"] == 1 and bars.iloc[1]["close"] == 22.0


def test_closed_bar_rule():
    bar_open = np.array([0, 3_600_000, 7_200_000], dtype=np.int64)
    # at 01:00 only the 00:00 bar has closed; at 00:59 none; at 03:00 all three
    t = np.array([3_540_000, 3_600_000, 7_199_999, 10_800_000])
    assert list(closed_bar_count(bar_open, 3_600_000, t)) == [0, 1, 1, 3]


def test_four_hour_bars_start_on_utc_grid():
    df = candles(12 * 9, start="2024-01-01 02:00")
    bars = aggregate(df, "4h")
    assert [str(t.time()) for t in bars.index] == ["00:00:00", "04:00:00", "08:00:00"]
    assert bars["n_candles"].tolist() == [24, 48, 36]
