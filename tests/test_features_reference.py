"""Indicator conventions: every engine feature equals an independent plain-numpy reference on the real
sample (relative tolerance 1e-9), including the first valid (non-NaN) index.

The references below never call TA-Lib: they spell out TA-Lib's conventions (SMA seeds, Wilder
smoothing, MACD's aligned fast EMA, population standard deviation) in loops over the bars, and the bars
themselves come from a pandas groupby on the floored open time (tests/engine_helpers.reference_bars).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from engine_helpers import SAMPLE_SYMBOLS, load_candles, reference_bars
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.bars import aggregate
from engine.features import compute_features

RTOL = 1e-9

# ---------------------------------------------------------------------------------------------------------
# reference indicators (plain numpy, written from the definitions)
# ---------------------------------------------------------------------------------------------------------


def ref_sma(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    for i in range(n - 1, len(x)):
        out[i] = x[i - n + 1 : i + 1].mean()
    return out


def ref_std(x: np.ndarray, n: int) -> np.ndarray:
    """Rolling population standard deviation (ddof=0), two-pass per window."""
    out = np.full(len(x), np.nan)
    for i in range(n - 1, len(x)):
        out[i] = x[i - n + 1 : i + 1].std(ddof=0)
    return out


def ref_ema(x: np.ndarray, n: int, seed_start: int = 0) -> np.ndarray:
    """EMA with k = 2/(n+1), seeded with the SMA of x[seed_start : seed_start+n]; first value at
    seed_start + n - 1; NaN before."""
    k = 2.0 / (n + 1)
    out = np.full(len(x), np.nan)
    first = seed_start + n - 1
    if first >= len(x):
        return out
    prev = x[seed_start : first + 1].mean()
    out[first] = prev
    for i in range(first + 1, len(x)):
        prev = prev + k * (x[i] - prev)
        out[i] = prev
    return out


def ref_rsi(close: np.ndarray, n: int = 14) -> np.ndarray:
    """Wilder RSI: average gain/loss seeded with the plain mean of the first n changes (changes 1..n),
    then avg = (avg*(n-1) + current)/n. First value at index n."""
    out = np.full(len(close), np.nan)
    change = np.diff(close)
    gain, loss = np.maximum(change, 0.0), np.maximum(-change, 0.0)
    if len(change) < n:
        return out
    avg_gain, avg_loss = gain[:n].mean(), loss[:n].mean()
    out[n] = 100.0 * avg_gain / (avg_gain + avg_loss)
    for i in range(n, len(change)):
        avg_gain = (avg_gain * (n - 1) + gain[i]) / n
        avg_loss = (avg_loss * (n - 1) + loss[i]) / n
        out[i + 1] = 100.0 * avg_gain / (avg_gain + avg_loss)
    return out


def ref_macd_hist(close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9) -> np.ndarray:
    """TA-Lib MACD: the slow EMA is seeded with the SMA of close[0:slow] (first value at slow-1); the
    fast EMA is seeded so that it *also* starts at slow-1, i.e. with the SMA of close[slow-fast : slow]
    (not close[0:fast]). The signal EMA runs on the MACD line from slow-1, seeded with the SMA of its first
    `signal` values, so the histogram's first value is at (slow-1) + (signal-1) = 33."""
    slow_ema = ref_ema(close, slow)
    fast_ema = ref_ema(close, fast, seed_start=slow - fast)
    macd = fast_ema - slow_ema
    sig = ref_ema(macd, signal, seed_start=slow - 1)
    return macd - sig


def ref_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    """True range uses the previous close (so it starts at index 1); the first ATR (index n) is the mean
    of TR[1..n]; then Wilder smoothing."""
    out = np.full(len(close), np.nan)
    tr = np.full(len(close), np.nan)
    for i in range(1, len(close)):
        tr[i] = max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
    if len(close) <= n:
        return out
    atr = tr[1 : n + 1].mean()
    out[n] = atr
    for i in range(n + 1, len(close)):
        atr = (atr * (n - 1) + tr[i]) / n
        out[i] = atr
    return out


def ref_bb_width(close: np.ndarray, n: int = 20, k: float = 2.0) -> np.ndarray:
    middle = ref_sma(close, n)
    sd = ref_std(close, n)
    upper, lower = middle + k * sd, middle - k * sd
    return (upper - lower) / middle


def ref_linreg_slope(y: np.ndarray, n: int = 20) -> np.ndarray:
    """Least-squares slope of y on x = 0..n-1 over the last n values (centered formula)."""
    out = np.full(len(y), np.nan)
    x = np.arange(n, dtype=np.float64)
    xc = x - x.mean()
    denom = (xc * xc).sum()
    for i in range(n - 1, len(y)):
        w = y[i - n + 1 : i + 1]
        out[i] = (xc * (w - w.mean())).sum() / denom
    return out


def ref_volume_z(volume: np.ndarray, n: int = 20) -> np.ndarray:
    mean, sd = ref_sma(volume, n), ref_std(volume, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (volume - mean) / sd
    return np.where(sd == 0, 0.0, z)  # NaN stays NaN during warm-up


def ref_quote_volume_24h(candles: pd.DataFrame, bar_index: pd.DatetimeIndex, timeframe: str) -> np.ndarray:
    """Straight from the raw 5m rows: sum of close*volume over the 5m candles of the bars whose whole span
    lies in the 24h that end at the bar's close, i.e. candles with open time in [H + tf - 24h, H + tf).
    NaN while that 24h starts before the first bar (the history does not cover it)."""
    tf = pd.Timedelta(timeframe)
    ts = candles["timestamp"]
    qv = (candles["close"] * candles["volume"]).to_numpy()
    history_start = ts.iloc[0].floor(timeframe)
    out = np.full(len(bar_index), np.nan)
    for j, h in enumerate(bar_index):
        lo, hi = h + tf - pd.Timedelta("24h"), h + tf
        if lo < history_start:
            continue
        mask = ((ts >= lo) & (ts < hi)).to_numpy()
        out[j] = qv[mask].sum()
    return out


def reference_features(candles: pd.DataFrame, timeframe: str = "1h") -> pd.DataFrame:
    bars = reference_bars(candles, timeframe)
    close, high, low = (bars[c].to_numpy(np.float64) for c in ("close", "high", "low"))
    volume = bars["volume"].to_numpy(np.float64)
    hist = ref_macd_hist(close)
    slope = np.r_[np.nan, np.diff(hist)]
    return pd.DataFrame(
        {
            "rsi": ref_rsi(close),
            "macd_hist": hist,
            "macd_hist_slope": slope,
            "ema_dist": ref_ema(close, 12) / ref_ema(close, 26) - 1.0,
            "trend_slope": ref_linreg_slope(np.log(close)),
            "atr_pct": ref_atr(high, low, close) / close,
            "bb_width": ref_bb_width(close),
            "volume_z": ref_volume_z(volume),
            "volume_trend": ref_sma(volume, 5) / ref_sma(volume, 20) - 1.0,
            "quote_volume_24h": ref_quote_volume_24h(candles, bars.index, timeframe),
        },
        index=bars.index,
    )


#: first valid bar index of each feature on a gap-free bar sequence (from the definitions, 1h or 4h)
EXPECTED_FIRST_VALID = {
    "rsi": 14,  # needs 14 changes
    "macd_hist": 33,  # (26 - 1) + (9 - 1): TA-Lib aligns the fast EMA with the slow one
    "macd_hist_slope": 34,
    "ema_dist": 25,  # EMA(26) is seeded with the SMA of the first 26 closes
    "trend_slope": 19,
    "atr_pct": 14,  # TR starts at bar 1; first ATR = mean of TR[1..14]
    "bb_width": 19,
    "volume_z": 19,
    "volume_trend": 19,
}


# ---------------------------------------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------------------------------------


def first_valid(values: np.ndarray) -> int:
    finite = np.flatnonzero(~np.isnan(values))
    return int(finite[0]) if len(finite) else -1


def assert_feature_matches(engine: np.ndarray, ref: np.ndarray, name: str, where: str, rtol: float = RTOL) -> None:
    """Same NaN pattern (hence the same first valid index), then |e - r| <= atol + rtol*|r| where the
    absolute floor atol = rtol * median|r| only matters for values crossing zero (macd_hist, slopes,
    ema_dist, z-scores), where a relative test alone is meaningless."""
    assert first_valid(engine) == first_valid(ref), (
        f"{where} {name}: first valid index {first_valid(engine)} (engine) vs {first_valid(ref)} (reference)"
    )
    nan_e, nan_r = np.isnan(engine), np.isnan(ref)
    assert (nan_e == nan_r).all(), f"{where} {name}: NaN pattern differs at bars {np.flatnonzero(nan_e != nan_r)[:5]}"
    e, r = engine[~nan_r], ref[~nan_r]
    assert np.isfinite(e).all() and np.isfinite(r).all(), f"{where} {name}: non-finite values"
    atol = rtol * float(np.median(np.abs(r))) if len(r) else 0.0
    err = np.abs(e - r)
    bad = err > atol + rtol * np.abs(r)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise AssertionError(
            f"{where} {name}: {bad.sum()} values off, first at valid position {i}: engine {e[i]!r} vs "
            f"reference {r[i]!r} (rel err {err[i] / max(abs(r[i]), 1e-300):.3g}, atol {atol:.3g})"
        )


@pytest.fixture(scope="module", params=SAMPLE_SYMBOLS)
def sample(request):
    return request.param, load_candles(request.param)


# ---------------------------------------------------------------------------------------------------------
# aggregation
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("timeframe", ["1h", "4h"])
def test_aggregation_matches_groupby_reference(sample, timeframe):
    symbol, candles = sample
    engine = aggregate(candles, timeframe)
    ref = reference_bars(candles, timeframe)
    assert isinstance(engine.index, pd.DatetimeIndex) and str(engine.index.tz) == "UTC"
    assert engine.index.equals(ref.index), f"{symbol} {timeframe}: bar open times differ"
    for col in ("open", "high", "low", "close"):  # selections, not arithmetic: exact
        np.testing.assert_array_equal(engine[col].to_numpy(), ref[col].to_numpy(), err_msg=f"{symbol} {col}")
    np.testing.assert_array_equal(engine["n_candles"].to_numpy(), ref["n_candles"].to_numpy())
    for col in ("volume", "quote_volume"):  # sums: summation order may differ
        np.testing.assert_allclose(engine[col].to_numpy(), ref[col].to_numpy(), rtol=1e-12, err_msg=f"{symbol} {col}")
    # bars are stamped with their open time on the UTC grid of the timeframe
    assert (engine.index == engine.index.floor(timeframe)).all()


def test_first_hour_bar_is_the_partial_one():
    """The sample runs 04:55 .. 04:50: the first and last 04:00 bars exist and hold only the candles that
    exist (1 and 11), no invented data."""
    bars = aggregate(load_candles("ETH/BTC"), "1h")
    assert bars.index[0] == pd.Timestamp("2018-01-10 04:00", tz="UTC")
    assert bars.index[-1] == pd.Timestamp("2018-01-30 04:00", tz="UTC")
    assert bars["n_candles"].iloc[0] == 1
    assert bars["n_candles"].iloc[-1] == 11
    assert (bars["n_candles"].iloc[1:-1] == 12).all()  # ETH has no gaps


# ---------------------------------------------------------------------------------------------------------
# features vs references
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("timeframe", ["1h", "4h"])
def test_every_feature_matches_reference(sample, timeframe):
    symbol, candles = sample
    engine = compute_features(candles, timeframe=timeframe)
    ref = reference_features(candles, timeframe)
    assert engine.index.equals(ref.index), f"{symbol} {timeframe}: feature rows are not the bars"
    expected_cols = set(EXPECTED_FIRST_VALID) | {"quote_volume_24h"}
    assert expected_cols <= set(engine.columns), f"missing features {expected_cols - set(engine.columns)}"
    for name in ref.columns:
        assert_feature_matches(engine[name].to_numpy(np.float64), ref[name].to_numpy(), name, f"{symbol} {timeframe}")


@pytest.mark.parametrize("timeframe", ["1h", "4h"])
def test_first_valid_index_is_talib_convention(sample, timeframe):
    """The first valid positions are pinned to the numbers the definitions give, not just to the
    reference (a reference bug could otherwise hide an engine bug)."""
    symbol, candles = sample
    engine = compute_features(candles, timeframe=timeframe)
    for name, idx in EXPECTED_FIRST_VALID.items():
        assert first_valid(engine[name].to_numpy(np.float64)) == idx, f"{symbol} {timeframe} {name}"
    # time-based 24h volume: the first bar whose trailing 24h starts at or after the first bar's open
    first_bar = engine.index[0]
    tf = pd.Timedelta(timeframe)
    expected = engine.index[engine.index + tf - pd.Timedelta("24h") >= first_bar][0]
    qv = engine["quote_volume_24h"]
    assert qv.first_valid_index() == expected, f"{symbol} {timeframe} quote_volume_24h"


def test_macd_fast_ema_is_aligned_with_the_slow_one():
    """Guard the subtle convention: seeding the fast EMA on close[0:12] (the 'independent' EMA(12)) gives a
    different histogram. The engine must follow TA-Lib (aligned seed) and the two conventions must be
    distinguishable on real data, otherwise the reference test above would prove nothing."""
    candles = load_candles("ETH/BTC")
    close = reference_bars(candles)["close"].to_numpy()
    aligned = ref_macd_hist(close)
    slow = ref_ema(close, 26)
    independent_macd = ref_ema(close, 12) - slow
    independent = independent_macd - ref_ema(independent_macd, 9, seed_start=25)
    engine = compute_features(candles)["macd_hist"].to_numpy()
    assert first_valid(engine) == 33
    assert np.nanmax(np.abs(aligned - independent)) > 1e-6 * np.nanmedian(np.abs(aligned))
    assert_feature_matches(engine, aligned, "macd_hist", "ETH/BTC")


def test_ema_dist_uses_independently_seeded_emas():
    """ema_dist is EMA(12)/EMA(26) - 1 with each EMA seeded on its *own* first n closes (unlike MACD)."""
    candles = load_candles("LTC/BTC")
    close = reference_bars(candles)["close"].to_numpy()
    independent = ref_ema(close, 12) / ref_ema(close, 26) - 1.0
    aligned = ref_ema(close, 12, seed_start=14) / ref_ema(close, 26) - 1.0
    engine = compute_features(candles)["ema_dist"].to_numpy()
    assert np.nanmax(np.abs(aligned - independent)) > 1e-9
    assert_feature_matches(engine, independent, "ema_dist", "LTC/BTC")


def test_features_on_gapped_symbol_follow_the_bars_not_the_clock():
    """ADA has a 2h50 gap: the indicators run over the existing bars (no invented bars), while the 24h
    quote volume is time-based and simply shrinks over the gap."""
    candles = load_candles("ADA/BTC")
    feats = compute_features(candles)
    gap_hours = pd.DatetimeIndex(["2018-01-15 12:00", "2018-01-15 13:00"], tz="UTC")
    assert not feats.index.isin(gap_hours).any()
    assert len(feats) == len(reference_bars(candles))


@settings(max_examples=15, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_bars=st.integers(40, 120),
    scale=st.sampled_from([1e-5, 1e-2, 1.0, 3e4]),
)
def test_features_match_reference_on_random_walks(seed, n_bars, scale):
    """Property: on random gap-free price paths at very different price scales (BTC-quoted altcoins
    trade near 1e-5), every feature still equals the reference."""
    rng = np.random.default_rng(seed)
    n = n_bars * 12
    close = scale * np.exp(np.cumsum(rng.normal(0, 0.003, n)))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.002, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.002, n))
    volume = rng.lognormal(3, 1, n)
    ts = pd.date_range("2021-03-01", periods=n, freq="5min", tz="UTC")
    candles = pd.DataFrame({"timestamp": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume})
    engine = compute_features(candles, timeframe="1h")
    ref = reference_features(candles, "1h")
    for name in ref.columns:
        assert_feature_matches(engine[name].to_numpy(np.float64), ref[name].to_numpy(), name, f"random seed={seed}")
