"""Files provider safety: confined to the configured data folders, corrupt archives and conflicting
duplicates as clear errors, and never a byte of file text in an error message."""

from __future__ import annotations

import gzip
import os
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from engine.data import FilesProvider, ProviderError, make_provider, read_candle_file
from engine.data.base import MalformedDataError
from engine.data.file_formats import DuplicateCandlesWarning
from engine.data.files import DATA_DIRS_ENV, DEFAULT_DATA_DIRS, allowed_data_dirs

UTC = "UTC"
T0 = 1704067200000
STEP = 300_000
SECRET = "hunter2-top-secret"
HEADER = "timestamp,open,high,low,close,volume\n"
FAR_FUTURE = pd.Timestamp("2030-01-01", tz=UTC)


def rows(n: int, first: int = 0) -> str:
    return "".join(f"{T0 + (first + i) * STEP},100,101,99,100.5,1\n" for i in range(n))


def kline_zip(path: Path, n: int = 288) -> Path:
    text = "".join(
        f"{T0 + i * STEP},100,101,99,100.5,1,{T0 + (i + 1) * STEP - 1},1,1,1,1,0\n" for i in range(n)
    )
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(path.stem + ".csv", text)
    return path


def day(provider, symbol="ETH/BTC"):
    return provider.fetch_ohlcv(symbol, pd.Timestamp("2024-01-01", tz=UTC), pd.Timestamp("2024-01-02", tz=UTC),
                                now=FAR_FUTURE)  # fmt: skip


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    allowed = tmp_path / "data"
    allowed.mkdir()
    monkeypatch.setenv(DATA_DIRS_ENV, str(allowed))
    return allowed


# -- confinement ---------------------------------------------------------------------------------------
def test_default_folders_are_the_repo_data_folder_and_the_sample(monkeypatch):
    monkeypatch.delenv(DATA_DIRS_ENV, raising=False)
    root = Path(__file__).resolve().parents[1]
    assert allowed_data_dirs() == tuple(p.resolve() for p in DEFAULT_DATA_DIRS)
    assert (root / "data", root / "engine" / "sample_data") == DEFAULT_DATA_DIRS
    assert make_provider("files", root=root / "engine" / "sample_data").symbols()


def test_a_root_outside_the_allowed_folders_is_refused_naming_them(data_dir, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "ETH_BTC-5m.csv").write_text(HEADER + rows(3))
    for root in (outside, data_dir / ".." / "elsewhere", Path("/etc")):
        with pytest.raises(ProviderError) as err:
            FilesProvider(root)
        msg = str(err.value)
        assert "not a directory under the allowed data folders" in msg and str(data_dir) in msg
        assert DATA_DIRS_ENV in msg


def test_a_symlink_out_of_the_data_folder_is_refused(data_dir, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text(HEADER + rows(3))
    os.symlink(secret, data_dir / "ETH_BTC-5m.csv")
    with pytest.raises(ProviderError, match="resolves to a file outside the allowed data folders"):
        day(FilesProvider(data_dir))
    linked_root = data_dir / "link"
    os.symlink(tmp_path, linked_root)
    with pytest.raises(ProviderError, match="not a directory under the allowed data folders"):
        FilesProvider(linked_root)


def test_patterns_cannot_leave_the_root(data_dir):
    for pattern in ("../*/{symbol}-5m.csv", "/etc/{symbol}"):
        with pytest.raises(ProviderError, match="relative to the root, without '..'"):
            FilesProvider(data_dir, pattern=pattern)


def test_several_allowed_folders_separated_by_pathsep(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    monkeypatch.setenv(DATA_DIRS_ENV, f"{a}{os.pathsep}{b}")
    assert allowed_data_dirs() == (a.resolve(), b.resolve())
    FilesProvider(b)


# -- corrupt files and no echo -------------------------------------------------------------------------
def test_a_corrupt_zip_member_names_the_file(data_dir):
    path = kline_zip(data_dir / "ETHBTC-5m-2024-01.zip")
    raw = bytearray(path.read_bytes())
    start = raw.index(b"PK\x03\x04") + 30 + len("ETHBTC-5m-2024-01.csv")
    raw[start + 20 : start + 60] = b"\x00" * 40  # damage the deflate stream
    path.write_bytes(bytes(raw))
    with pytest.raises(MalformedDataError) as err:
        day(FilesProvider(data_dir))
    msg = str(err.value)
    assert str(path) in msg and "corrupt or truncated" in msg


def test_not_a_zip_and_a_truncated_gz_name_the_file(data_dir):
    (data_dir / "ETHBTC-5m-2024-01.zip").write_bytes(b"PK\x03\x04 but not really a zip")
    with pytest.raises(MalformedDataError, match=r"ETHBTC-5m-2024-01.zip: cannot read file"):
        day(FilesProvider(data_dir))
    gz = data_dir / "LTC_BTC-5m.csv.gz"
    gz.write_bytes(gzip.compress((HEADER + rows(2000)).encode())[:300])
    with pytest.raises(MalformedDataError, match=r"LTC_BTC-5m.csv.gz: cannot (read file|parse as CSV)"):
        read_candle_file(gz)


@pytest.mark.parametrize(
    "text",
    [
        f"password={SECRET}\n",  # a secrets file: the first line is the secret
        f"user,{SECRET}\n1,2\n",
        HEADER + f"{T0},100,{SECRET},99,100.5,1\n",
        f"{T0},100,101,99,100.5\n",  # 5 columns, headerless
        f"{SECRET}\n",
    ],
)
def test_errors_never_echo_file_content(data_dir, text):
    path = data_dir / "ETH_BTC-5m.csv"
    path.write_text(text)
    with pytest.raises(ProviderError) as err:
        day(FilesProvider(data_dir))
    assert SECRET not in str(err.value) and str(path) in str(err.value)
    assert SECRET not in repr(err.value)
    assert err.value.__cause__ is None or SECRET not in str(err.value.__cause__)


# -- duplicates ----------------------------------------------------------------------------------------
def test_conflicting_duplicates_in_a_file_are_refused_naming_the_lines(data_dir):
    path = data_dir / "ETH_BTC-5m.csv"
    path.write_text(HEADER + rows(3) + f"{T0 + STEP},100,101,99,100.75,1\n")
    with pytest.raises(MalformedDataError) as err:
        day(FilesProvider(data_dir))
    msg = str(err.value)
    assert "lines 3, 5 at 2024-01-01T00:05:00+00:00" in msg and "duplicates: last" in msg
    with pytest.warns(DuplicateCandlesWarning, match="lines 3, 5"):
        df, cov = FilesProvider(data_dir, duplicates="last").fetch_with_coverage(
            "ETH/BTC", pd.Timestamp("2024-01-01", tz=UTC), pd.Timestamp("2024-01-02", tz=UTC), now=FAR_FUTURE
        )
    assert df["close"].tolist()[:3] == [100.5, 100.75, 100.5]
    assert any("lines 3, 5" in n for n in cov.notes)


def test_exact_duplicates_are_dropped_silently(data_dir, recwarn):
    (data_dir / "ETH_BTC-5m.csv").write_text(HEADER + rows(3) + rows(1, first=1))
    assert len(day(FilesProvider(data_dir))) == 3
    assert not [w for w in recwarn if issubclass(w.category, DuplicateCandlesWarning)]


def test_overlapping_archives_with_different_values_are_refused_naming_the_files(data_dir):
    kline_zip(data_dir / "ETHBTC-5m-2024-01.zip", n=288)
    daily = data_dir / "ETHBTC-5m-2024-01-01.csv"
    daily.write_text(f"{T0},100,101,99,100.25,1,{T0 + STEP - 1},1,1,1,1,0\n")
    with pytest.raises(MalformedDataError, match=r"files ETHBTC-5m-2024-01-01.csv, ETHBTC-5m-2024-01.zip at"):
        day(FilesProvider(data_dir))
    daily.write_text(f"{T0},100,101,99,100.5,1,{T0 + STEP - 1},1,1,1,1,0\n")  # same values: fine
    assert len(day(FilesProvider(data_dir))) == 288


def test_bad_duplicates_option(data_dir):
    with pytest.raises(ProviderError, match="duplicates must be one of"):
        FilesProvider(data_dir, duplicates="first")
