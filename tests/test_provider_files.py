"""FilesProvider / read_candle_file: our CSV, gz and Parquet, Binance kline archives (ms and us), errors."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest

import engine.data.files as files_mod
from engine.data import BadSymbolError, FilesProvider, ProviderError, read_candle_file
from engine.data.file_formats import DuplicateCandlesWarning
from engine.data.files import DATA_DIRS_ENV, symbol_from_path

UTC = "UTC"
FAR_FUTURE = pd.Timestamp("2030-01-01", tz=UTC)
T0 = 1704067200000  # 2024-01-01 00:00 UTC in ms
STEP = 300_000

OUR_CSV = (
    "timestamp,open,high,low,close,volume\n"
    "1704067200000,100.0,101.0,99.5,100.5,12.0\n"
    "1704067500000,100.5,102.0,100.0,101.5,8.5\n"
    "1704067800000,101.5,101.5,100.5,101.0,3.25\n"
)
EXPECTED = pd.DataFrame(
    {
        "timestamp": pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:05", "2024-01-01 00:10"]).tz_localize(
            UTC
        ),
        "open": [100.0, 100.5, 101.5],
        "high": [101.0, 102.0, 101.5],
        "low": [99.5, 100.0, 100.5],
        "close": [100.5, 101.5, 101.0],
        "volume": [12.0, 8.5, 3.25],
    }
)


@pytest.fixture(autouse=True)
def _allow_tmp_path(monkeypatch, tmp_path):
    """The files provider reads only configured data folders; here the test's temp folder."""
    monkeypatch.setenv(DATA_DIRS_ENV, str(tmp_path))


def binance_row(open_ms: int, o: str, h: str, low: str, c: str, v: str, us: bool = False) -> str:
    """One line of a Binance public-data kline CSV (12 columns, no header)."""
    scale = 1000 if us else 1
    close_time = (open_ms + STEP) * scale - 1
    return f"{open_ms * scale},{o},{h},{low},{c},{v},{close_time},1234.5,42,1.0,100.0,0"


BINANCE_ROWS = [
    ("100.0", "101.0", "99.5", "100.5", "12.0"),
    ("100.5", "102.0", "100.0", "101.5", "8.5"),
    ("101.5", "101.5", "100.5", "101.0", "3.25"),
]


def binance_csv(us_rows=(), first_ms: int = T0) -> str:
    return (
        "\n".join(binance_row(first_ms + i * STEP, *r, us=i in us_rows) for i, r in enumerate(BINANCE_ROWS))
        + "\n"
    )


def write_zip(path: Path, member: str, text: str) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, text)
    return path


# -- formats -------------------------------------------------------------------------------------------
def test_our_csv(tmp_path):
    path = tmp_path / "ETH_BTC-5m.csv"
    path.write_text(OUR_CSV)
    pd.testing.assert_frame_equal(read_candle_file(path), EXPECTED)


def test_our_csv_gz(tmp_path):
    path = tmp_path / "ETH_BTC-5m.csv.gz"
    path.write_bytes(gzip.compress(OUR_CSV.encode()))
    pd.testing.assert_frame_equal(read_candle_file(path), EXPECTED)


def test_our_parquet_with_int_ms_and_with_utc_datetimes(tmp_path):
    raw = pd.read_csv(io.StringIO(OUR_CSV))
    ints = tmp_path / "ETH_BTC-5m.parquet"
    raw.to_parquet(ints)
    pd.testing.assert_frame_equal(read_candle_file(ints), EXPECTED)
    dated = tmp_path / "LTC_BTC-5m.parquet"
    EXPECTED.to_parquet(dated)
    pd.testing.assert_frame_equal(read_candle_file(dated), EXPECTED)


def test_binance_zip_with_millisecond_timestamps(tmp_path):
    path = write_zip(tmp_path / "ETHBTC-5m-2024-01.zip", "ETHBTC-5m-2024-01.csv", binance_csv())
    pd.testing.assert_frame_equal(read_candle_file(path), EXPECTED)


def test_binance_zip_with_microsecond_timestamps(tmp_path):
    """Spot archives from 2025 on use microseconds: 1735689600000000 is 2025-01-01 00:00 UTC."""
    first = 1735689600000
    path = write_zip(
        tmp_path / "BTCUSDT-5m-2025-01.zip",
        "BTCUSDT-5m-2025-01.csv",
        binance_csv(us_rows=(0, 1, 2), first_ms=first),
    )
    text = zipfile.ZipFile(path).read("BTCUSDT-5m-2025-01.csv").decode()
    assert text.startswith("1735689600000000,")
    df = read_candle_file(path)
    assert df["timestamp"].tolist() == [
        pd.Timestamp("2025-01-01 00:00", tz=UTC),
        pd.Timestamp("2025-01-01 00:05", tz=UTC),
        pd.Timestamp("2025-01-01 00:10", tz=UTC),
    ]
    assert df["close"].tolist() == [100.5, 101.5, 101.0]


def test_timestamp_unit_is_detected_per_value(tmp_path):
    path = tmp_path / "ETHBTC-5m-2024-01-01.csv"
    path.write_text(binance_csv(us_rows=(1,)))  # middle row in microseconds, the others in ms
    assert "\n1704067500000000," in path.read_text()
    pd.testing.assert_frame_equal(read_candle_file(path), EXPECTED)


def test_binance_csv_with_a_header_row(tmp_path):
    header = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n"
    path = tmp_path / "ETHUSDT-5m-2024-01.csv"
    path.write_text(header + binance_csv())
    pd.testing.assert_frame_equal(read_candle_file(path), EXPECTED)


def test_unsorted_and_duplicated_rows_are_sorted_and_deduplicated_keeping_the_last(tmp_path):
    lines = OUR_CSV.splitlines()
    revised = "1704067500000,100.5,102.0,100.0,101.75,8.5"
    path = tmp_path / "ETH_BTC-5m.csv"
    path.write_text("\n".join([lines[0], lines[3], lines[2], lines[1], revised]) + "\n")
    with pytest.raises(ProviderError, match=r"lines 3, 5 at 2024-01-01T00:05:00"):
        read_candle_file(path)  # conflicting values are refused by default
    with pytest.warns(DuplicateCandlesWarning, match=r"lines 3, 5 at 2024-01-01T00:05:00.*kept the later"):
        df = read_candle_file(path, duplicates="last")
    assert df["timestamp"].tolist() == EXPECTED["timestamp"].tolist()
    assert df["close"].tolist() == [100.5, 101.75, 101.0]


# -- errors --------------------------------------------------------------------------------------------
def test_non_numeric_value_names_file_line_and_column(tmp_path):
    path = tmp_path / "ETH_BTC-5m.csv"
    path.write_text(OUR_CSV.replace("102.0", "abc"))
    with pytest.raises(ProviderError) as err:
        read_candle_file(path)
    msg = str(err.value)
    assert str(path) in msg and "line 3" in msg and "not a number" in msg and "'high'" in msg
    assert "abc" not in msg  # file content is never echoed


def test_missing_value_names_the_line(tmp_path):
    path = tmp_path / "ETH_BTC-5m.csv"
    path.write_text(OUR_CSV.replace(",3.25", ","))
    with pytest.raises(ProviderError, match=r"line 4: missing value in column 'volume'"):
        read_candle_file(path)


def test_rule_violation_names_file_symbol_rule_and_line(tmp_path):
    path = tmp_path / "ETH_BTC-5m.csv"
    path.write_text(OUR_CSV.replace("1704067800000,101.5,101.5,100.5", "1704067800000,101.5,99.0,100.5"))
    with pytest.raises(ProviderError) as err:
        read_candle_file(path)
    msg = str(err.value)
    assert str(path) in msg and "'ETH/BTC'" in msg and "high >= max(open, close)" in msg
    assert "line numbers" in msg
    offending = [ln for ln in msg.splitlines() if ln.lstrip().startswith("4 ")]
    assert offending, msg  # the offending row is labelled with its line number (4)


def test_timestamp_off_the_grid_is_rejected(tmp_path):
    path = tmp_path / "ETH_BTC-5m.csv"
    path.write_text(OUR_CSV.replace("1704067500000", "1704067530000"))
    with pytest.raises(ProviderError, match="5m grid"):
        read_candle_file(path)


def test_seconds_are_not_milliseconds(tmp_path):
    path = tmp_path / "ETH_BTC-5m.csv"
    path.write_text(OUR_CSV.replace("1704067500000", "1704067500"))
    with pytest.raises(
        ProviderError, match=r"line 3: timestamp 1704067500 is neither epoch milliseconds nor microseconds"
    ):
        read_candle_file(path)


def test_missing_columns_and_empty_and_ragged_files(tmp_path):
    no_volume = tmp_path / "A_B-5m.csv"
    no_volume.write_text("timestamp,open,high,low,close\n1704067200000,1,1,1,1\n")
    with pytest.raises(ProviderError, match=r"A_B-5m.csv: line 1: header .* lacks columns \['volume'\]"):
        read_candle_file(no_volume)
    empty = tmp_path / "C_D-5m.csv"
    empty.write_text("")
    with pytest.raises(ProviderError, match="C_D-5m.csv: line 1: file is empty"):
        read_candle_file(empty)
    ragged = tmp_path / "E_F-5m.csv"
    ragged.write_text(OUR_CSV + "1704068100000,1,1,1,1,1,1,1\n")
    with pytest.raises(ProviderError, match="E_F-5m.csv"):
        read_candle_file(ragged)


def test_bad_zip_archives(tmp_path):
    two = tmp_path / "ETHBTC-5m-2024-01.zip"
    with zipfile.ZipFile(two, "w") as zf:
        zf.writestr("a.csv", binance_csv())
        zf.writestr("b.csv", binance_csv())
    with pytest.raises(ProviderError, match="exactly one file"):
        read_candle_file(two)
    corrupt = tmp_path / "LTCBTC-5m-2024-01.zip"
    corrupt.write_bytes(b"not a zip")
    with pytest.raises(ProviderError, match="LTCBTC-5m-2024-01.zip"):
        read_candle_file(corrupt)


# -- provider ------------------------------------------------------------------------------------------
def test_symbol_names():
    assert symbol_from_path("ETH_BTC-5m.csv.gz") == "ETH/BTC"
    assert symbol_from_path("/x/ETHBTC-5m-2018-01.zip") == "ETHBTC"


def test_provider_reads_our_files_by_symbol_and_bounds_the_range(tmp_path):
    (tmp_path / "ETH_BTC-5m.csv").write_text(OUR_CSV)
    p = FilesProvider(tmp_path)
    assert p.symbols() == ["ETH/BTC"]
    assert p.exchange == "binance" and p.kind == "files" and p.synthetic is False
    df = p.fetch_ohlcv(
        "ETH/BTC",
        pd.Timestamp(T0 + STEP, unit="ms", tz=UTC),
        pd.Timestamp("2025-01-01", tz=UTC),
        now=FAR_FUTURE,
    )
    assert df["timestamp"].tolist() == EXPECTED["timestamp"].tolist()[1:]
    now = pd.Timestamp("2024-01-01 00:14", tz=UTC)  # the 00:10 candle is not closed yet
    df = p.fetch_ohlcv(
        "ETH/BTC", pd.Timestamp("2024-01-01", tz=UTC), pd.Timestamp("2024-01-02", tz=UTC), now=now
    )
    assert len(df) == 2


def test_provider_finds_binance_archives_in_the_public_data_layout(tmp_path):
    folder = tmp_path / "spot" / "monthly" / "klines" / "ETHBTC" / "5m"
    folder.mkdir(parents=True)
    jan = binance_csv(first_ms=T0)
    feb_first = 1706745600000  # 2024-02-01 00:00 UTC
    feb = binance_csv(first_ms=feb_first)
    write_zip(folder / "ETHBTC-5m-2024-01.zip", "ETHBTC-5m-2024-01.csv", jan)
    write_zip(folder / "ETHBTC-5m-2024-02.zip", "ETHBTC-5m-2024-02.csv", feb)
    (folder / "ETHBTC-5m-2024-02.zip.CHECKSUM").write_text("deadbeef  ETHBTC-5m-2024-02.zip\n")
    p = FilesProvider(tmp_path)
    assert p.symbols() == ["ETHBTC"]
    both = p.fetch_ohlcv(
        "ETH/BTC", pd.Timestamp("2024-01-01", tz=UTC), pd.Timestamp("2024-03-01", tz=UTC), now=FAR_FUTURE
    )
    assert len(both) == 6 and both["timestamp"].iloc[3] == pd.Timestamp("2024-02-01", tz=UTC)
    fresh = FilesProvider(tmp_path)
    jan_only = fresh.fetch_ohlcv(
        "ETH/BTC", pd.Timestamp("2024-01-01", tz=UTC), pd.Timestamp("2024-01-02", tz=UTC), now=FAR_FUTURE
    )
    assert len(jan_only) == 3
    assert fresh.parse_count == 1  # February's archive was skipped by its name


def test_parsed_files_are_cached_per_instance(tmp_path, monkeypatch):
    calls = []
    real = files_mod.read_candle_file
    monkeypatch.setattr(files_mod, "read_candle_file", lambda *a, **k: calls.append(a) or real(*a, **k))
    (tmp_path / "ETH_BTC-5m.csv").write_text(OUR_CSV)
    p = FilesProvider(tmp_path)
    start = pd.Timestamp("2024-01-01", tz=UTC)
    for day in range(20):
        p.fetch_ohlcv(
            "ETH/BTC", start + pd.Timedelta(days=day), start + pd.Timedelta(days=day + 1), now=FAR_FUTURE
        )
    assert len(calls) == 1 and p.parse_count == 1


def test_changed_file_is_re_read(tmp_path):
    path = tmp_path / "ETH_BTC-5m.csv"
    path.write_text(OUR_CSV)
    p = FilesProvider(tmp_path)
    rng = (pd.Timestamp("2024-01-01", tz=UTC), pd.Timestamp("2024-01-02", tz=UTC))
    assert len(p.fetch_ohlcv("ETH/BTC", *rng, now=FAR_FUTURE)) == 3
    path.write_text("\n".join(OUR_CSV.splitlines()[:3]) + "\n")
    assert len(p.fetch_ohlcv("ETH/BTC", *rng, now=FAR_FUTURE)) == 2
    assert p.parse_count == 2


def test_unknown_symbol_and_bad_root(tmp_path):
    p = FilesProvider(tmp_path)
    with pytest.raises(BadSymbolError, match="'XRP/BTC'"):
        p.fetch_ohlcv("XRP/BTC", pd.Timestamp("2024-01-01", tz=UTC), pd.Timestamp("2024-01-02", tz=UTC))
    with pytest.raises(ProviderError, match="not a directory"):
        FilesProvider(tmp_path / "missing")


def test_custom_pattern(tmp_path):
    (tmp_path / "candles_ETH_BTC.csv").write_text(OUR_CSV)
    p = FilesProvider(tmp_path, exchange="kraken", pattern="candles_{symbol}.csv")
    df = p.fetch_ohlcv(
        "ETH/BTC", pd.Timestamp("2024-01-01", tz=UTC), pd.Timestamp("2024-01-02", tz=UTC), now=FAR_FUTURE
    )
    assert len(df) == 3 and p.exchange == "kraken"


def test_broken_file_surfaces_through_the_provider(tmp_path):
    (tmp_path / "ETH_BTC-5m.csv").write_text(OUR_CSV.replace("102.0", "abc"))
    p = FilesProvider(tmp_path)
    with pytest.raises(ProviderError, match="ETH_BTC-5m.csv: line 3"):
        p.fetch_ohlcv("ETH/BTC", pd.Timestamp("2024-01-01", tz=UTC), pd.Timestamp("2024-01-02", tz=UTC))
