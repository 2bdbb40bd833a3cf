"""SyntheticProvider: deterministic whatever range is asked, schema-valid, realistic enough, labelled."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.data import SyntheticProvider
from engine.schemas import validate_candles

UTC = "UTC"
FAR_FUTURE = pd.Timestamp("2100-01-01", tz=UTC)
D0 = pd.Timestamp("2024-03-01", tz=UTC)
FIVE = pd.Timedelta(minutes=5)
PRICE_COLS = ["open", "high", "low", "close", "volume"]


def fetch(provider, symbol, start, end, now=FAR_FUTURE):
    return provider.fetch_ohlcv(symbol, pd.Timestamp(start), pd.Timestamp(end), now=now)


def no_gaps(seed: int = 0) -> SyntheticProvider:
    return SyntheticProvider(seed=seed, gap_probability=0.0, outage_probability=0.0)


def hourly_log_returns(df: pd.DataFrame) -> pd.Series:
    close = df.set_index("timestamp")["close"].resample("1h").last()
    return np.log(close).diff().dropna()


# -- determinism ---------------------------------------------------------------------------------------
def test_same_candles_for_overlapping_ranges_from_independent_instances():
    wide = fetch(SyntheticProvider(seed=7), "ETH/BTC", "2023-12-20", "2024-01-10")
    narrow = fetch(SyntheticProvider(seed=7), "ETH/BTC", "2024-01-01 13:35", "2024-01-02 07:00")
    expected = wide[(wide["timestamp"] >= narrow["timestamp"].iloc[0])]
    expected = expected[expected["timestamp"] < pd.Timestamp("2024-01-02 07:00", tz=UTC)]
    pd.testing.assert_frame_equal(narrow, expected.reset_index(drop=True), check_exact=True)
    assert narrow["timestamp"].iloc[0] >= pd.Timestamp("2024-01-01 13:35", tz=UTC)


def test_repeated_calls_and_call_order_do_not_matter():
    a = SyntheticProvider(seed=3)
    first = fetch(a, "SOL/USDT", "2024-05-01", "2024-05-03")
    fetch(a, "BTC/USDT", "2020-01-01", "2020-02-01")  # fills other caches in between
    again = fetch(a, "SOL/USDT", "2024-05-01", "2024-05-03")
    other_order = SyntheticProvider(seed=3)
    fetch(other_order, "SOL/USDT", "2025-01-01", "2025-01-02")  # later block first
    third = fetch(other_order, "SOL/USDT", "2024-05-01", "2024-05-03")
    pd.testing.assert_frame_equal(first, again, check_exact=True)
    pd.testing.assert_frame_equal(first, third, check_exact=True)


_REFERENCE: dict[str, pd.DataFrame] = {}


def _reference() -> pd.DataFrame:
    if "ref" not in _REFERENCE:
        _REFERENCE["ref"] = fetch(SyntheticProvider(seed=11), "ADA/USDT", D0, D0 + pd.Timedelta(days=4))
    return _REFERENCE["ref"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start_min=st.integers(min_value=0, max_value=4 * 1440),
    length_min=st.integers(min_value=0, max_value=4 * 1440),
)
def test_any_sub_range_is_schema_valid_and_a_slice_of_the_wide_range(start_min, length_min):
    start = D0 + pd.Timedelta(minutes=start_min)
    end = min(start + pd.Timedelta(minutes=length_min), D0 + pd.Timedelta(days=4))
    sub = fetch(SyntheticProvider(seed=11), "ADA/USDT", start, end)
    validate_candles(sub, "ADA/USDT")
    ref = _reference()
    expected = ref[(ref["timestamp"] >= start) & (ref["timestamp"] < end)].reset_index(drop=True)
    pd.testing.assert_frame_equal(sub, expected, check_exact=True)


def test_seed_and_symbol_change_the_market():
    a = fetch(no_gaps(0), "ETH/BTC", D0, D0 + pd.Timedelta(days=1))
    b = fetch(no_gaps(1), "ETH/BTC", D0, D0 + pd.Timedelta(days=1))
    c = fetch(no_gaps(0), "LTC/BTC", D0, D0 + pd.Timedelta(days=1))
    assert not np.allclose(a["close"], b["close"])
    assert not np.allclose(a["close"], c["close"])


# -- shape and labels ----------------------------------------------------------------------------------
def test_full_days_without_gaps_have_288_candles_on_the_grid():
    df = fetch(no_gaps(), "BTC/USDT", "2024-01-01", "2024-01-03")
    assert len(df) == 576
    assert df["timestamp"].iloc[0] == pd.Timestamp("2024-01-01 00:00", tz=UTC)
    assert df["timestamp"].iloc[-1] == pd.Timestamp("2024-01-02 23:55", tz=UTC)
    assert (df["timestamp"].diff().dropna() == FIVE).all()
    assert (df[PRICE_COLS] > 0).all().all()
    assert (df["high"] >= df[["open", "close"]].max(axis=1)).all()
    assert (df["low"] <= df[["open", "close"]].min(axis=1)).all()


def test_labelled_synthetic_everywhere():
    p = SyntheticProvider(seed=5)
    df = fetch(p, "BTC/USDT", "2024-01-01", "2024-01-02")
    assert p.synthetic is True and p.kind == "synthetic" and p.exchange == "synthetic"
    assert "SYNTHETIC" in p.describe()
    assert (df["source"] == "synthetic").all()
    empty = fetch(p, "BTC/USDT", "2024-01-01", "2024-01-01")
    assert empty.empty and "source" in empty.columns


def test_still_open_candle_is_dropped():
    now = pd.Timestamp("2024-01-01 00:12", tz=UTC)  # 00:10 candle still open
    df = fetch(no_gaps(), "BTC/USDT", "2024-01-01", "2024-01-02", now=now)
    assert df["timestamp"].tolist() == [
        pd.Timestamp("2024-01-01 00:00", tz=UTC),
        pd.Timestamp("2024-01-01 00:05", tz=UTC),
    ]
    clocked = SyntheticProvider(gap_probability=0.0, outage_probability=0.0, clock=lambda: now)
    assert len(clocked.fetch_ohlcv("BTC/USDT", "2024-01-01", "2024-01-02")) == 2


def test_future_range_is_empty_with_the_wall_clock():
    df = SyntheticProvider().fetch_ohlcv("BTC/USDT", "2999-01-01", "2999-01-02")
    assert df.empty


@pytest.mark.parametrize(
    "boundary",
    [
        pd.Timestamp("2016-01-01", tz=UTC),  # the chaining epoch
        pd.Timestamp("2016-01-01", tz=UTC) + pd.Timedelta(days=512),  # a block boundary
        pd.Timestamp("2016-01-01", tz=UTC) - pd.Timedelta(days=512),  # a block boundary before the epoch
    ],
)
def test_prices_are_continuous_across_days_and_blocks(boundary):
    df = fetch(no_gaps(), "XRP/USDT", boundary - pd.Timedelta(days=2), boundary + pd.Timedelta(days=2))
    assert len(df) == 4 * 288
    np.testing.assert_allclose(df["open"].to_numpy()[1:], df["close"].to_numpy()[:-1], rtol=1e-12)


# -- realism -------------------------------------------------------------------------------------------
def test_gaps_exist_with_defaults_and_scale_with_probability():
    df = fetch(SyntheticProvider(seed=0), "BTC/USDT", "2024-01-01", "2024-03-01")
    full = 60 * 288
    assert 0 < full - len(df) < 0.05 * full
    half = fetch(SyntheticProvider(seed=0, gap_probability=0.5, outage_probability=0.0), "BTC/USDT",
                 "2024-01-01", "2024-01-11")  # fmt: skip
    assert 0.45 < len(half) / (10 * 288) < 0.55


def test_outages_are_runs_of_consecutive_missing_candles():
    p = SyntheticProvider(seed=2, gap_probability=0.0, outage_probability=1.0)
    df = fetch(p, "BTC/USDT", "2024-01-01", "2024-01-11")
    for day, grp in df.groupby(df["timestamp"].dt.floor("1D")):
        missing = 288 - len(grp)
        assert 6 <= missing <= 47, day
        steps = grp["timestamp"].diff().dropna()
        jumps = steps[steps > FIVE]
        # one run inside the day, or the run touches midnight (then no jump inside the day)
        assert len(jumps) <= 1
        if len(jumps) == 1:
            assert jumps.iloc[0] == FIVE * (missing + 1)


def test_common_market_factor_correlates_symbols():
    p = no_gaps(0)
    rets = pd.concat(
        {s: hourly_log_returns(fetch(p, s, "2024-01-01", "2024-03-01")) for s in ("AAA/USDT", "BBB/USDT", "CCC/USDT", "DDD/USDT")},
        axis=1,
    )  # fmt: skip
    corr = rets.corr().to_numpy()
    pairwise = corr[np.triu_indices_from(corr, k=1)]
    assert (pairwise > 0.1).all(), pairwise
    assert pairwise.mean() > 0.2


def test_volatility_clusters():
    r = hourly_log_returns(fetch(no_gaps(0), "BTC/USDT", "2023-01-01", "2024-01-01"))
    acf1 = r.abs().autocorr(1)
    acf24 = r.abs().autocorr(24)
    assert acf1 > 0.1 and acf24 > 0.05, (acf1, acf24)
    daily_vol = r.groupby(r.index.floor("1D")).std()
    assert daily_vol.max() / daily_vol.min() > 3  # calm and stormy days


def test_volume_has_intraday_seasonality():
    df = fetch(no_gaps(0), "BTC/USDT", "2024-01-01", "2024-02-01")
    hour = df["timestamp"].dt.hour
    busy = df.loc[hour.between(14, 16), "volume"].mean()
    quiet = df.loc[hour.between(2, 4), "volume"].mean()
    assert busy > 1.5 * quiet
    assert (df["volume"] > 0).all()


def test_rejects_bad_probabilities():
    with pytest.raises(ValueError):
        SyntheticProvider(gap_probability=1.5)


# -- speed ---------------------------------------------------------------------------------------------
def test_single_day_is_fast():
    p = SyntheticProvider(seed=0)
    fetch(p, "BTC/USDT", "2024-01-01", "2024-01-02")  # warm pandera and the block cache
    t0 = time.perf_counter()
    for day in range(2, 12):
        fetch(p, "BTC/USDT", f"2024-01-{day:02d}", f"2024-01-{day + 1:02d}")
    assert (time.perf_counter() - t0) / 10 < 0.05


def test_a_year_for_ten_symbols_is_fast():
    p = SyntheticProvider(seed=0)
    t0 = time.perf_counter()
    n = sum(len(fetch(p, f"S{i}/USDT", "2023-01-01", "2024-01-01")) for i in range(10))
    assert n > 0.98 * 10 * 365 * 288
    assert time.perf_counter() - t0 < 8.0


@pytest.mark.slow
def test_a_year_for_one_hundred_symbols_in_under_20_seconds():
    p = SyntheticProvider(seed=0)
    t0 = time.perf_counter()
    n = sum(len(fetch(p, f"S{i:03d}/USDT", "2023-01-01", "2024-01-01")) for i in range(100))
    elapsed = time.perf_counter() - t0
    assert n > 0.98 * 100 * 365 * 288
    assert elapsed < 20.0, elapsed
