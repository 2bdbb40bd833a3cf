"""The provider registry, the shipped real sample, and the lean-import promise of engine.data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from engine.data import (
    PROVIDER_KINDS,
    SAMPLE_DIR,
    CcxtProvider,
    FilesProvider,
    MarketDataProvider,
    NobitexProvider,
    SyntheticProvider,
    load_sample_candles,
    make_provider,
    sample_provider,
    sample_symbols,
)

ROOT = Path(__file__).resolve().parents[1]
UTC = "UTC"
SAMPLE_SYMBOLS = ["ADA/BTC", "DASH/BTC", "ETH/BTC", "LTC/BTC", "NXT/BTC", "XLM/BTC"]


def test_registry_builds_every_kind():
    assert PROVIDER_KINDS == ("synthetic", "files", "ccxt", "nobitex")
    assert isinstance(make_provider("synthetic", seed=3), SyntheticProvider)
    assert isinstance(make_provider("files", root=SAMPLE_DIR), FilesProvider)
    assert isinstance(make_provider("ccxt", exchange_id="binance", sleep=lambda s: None), CcxtProvider)
    assert isinstance(make_provider("nobitex", session=object()), NobitexProvider)
    for kind in PROVIDER_KINDS:
        opts = {"files": {"root": SAMPLE_DIR}, "nobitex": {"session": object()}}.get(kind, {})
        provider = make_provider(kind, **opts)
        assert isinstance(provider, MarketDataProvider) and provider.kind == kind


def test_unknown_kind_lists_the_valid_ones():
    with pytest.raises(
        ValueError, match="unknown provider kind 'yahoo'; valid kinds: synthetic, files, ccxt, nobitex"
    ):
        make_provider("yahoo")


def test_sample_symbols_and_frames():
    assert sample_symbols() == SAMPLE_SYMBOLS
    frames = load_sample_candles()
    assert list(frames) == SAMPLE_SYMBOLS
    eth = frames["ETH/BTC"]
    # first line of ETH_BTC-5m.csv.gz: 1515560100000,0.0984,0.0994766,0.09828605,0.0994766,1820.54447418
    assert eth["timestamp"].iloc[0] == pd.Timestamp("2018-01-10 04:55", tz=UTC)
    assert eth.loc[0, ["open", "high", "low", "close", "volume"]].tolist() == [
        0.0984, 0.0994766, 0.09828605, 0.0994766, 1820.54447418
    ]  # fmt: skip
    assert len(eth) == 20 * 288  # complete: 2018-01-10 04:55 .. 2018-01-30 04:50
    ada = frames["ADA/BTC"]
    assert len(ada) == 5720  # ADA has 40 missing candles
    assert (ada["timestamp"].diff().dropna() > pd.Timedelta(minutes=5)).any()
    assert list(load_sample_candles(["LTC/BTC"])) == ["LTC/BTC"]
    with pytest.raises(KeyError, match="DOGE/BTC"):
        load_sample_candles(["DOGE/BTC"])


def test_sample_provider_matches_the_loaded_frames():
    p = sample_provider()
    assert p.exchange == "binance" and p.symbols() == SAMPLE_SYMBOLS
    start, end = pd.Timestamp("2018-01-12", tz=UTC), pd.Timestamp("2018-01-13", tz=UTC)
    df = p.fetch_ohlcv("ADA/BTC", start, end)
    full = load_sample_candles(["ADA/BTC"])["ADA/BTC"]
    expected = full[(full["timestamp"] >= start) & (full["timestamp"] < end)].reset_index(drop=True)
    pd.testing.assert_frame_equal(df, expected)


def test_sample_lives_inside_the_package():
    assert SAMPLE_DIR == ROOT / "engine" / "sample_data"


def test_importing_engine_data_does_not_import_ccxt_or_requests():
    code = "import sys, engine.data; print(sorted(m for m in ('ccxt', 'requests') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
