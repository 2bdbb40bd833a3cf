"""Fixtures for the Dagster pipeline tests: a temp DAGSTER_HOME, a temp SQLite store, small universes.

Every test gets its own DAGSTER_HOME and store through the environment (the resources read
`CRYPTO4H_DB_URL` / `CRYPTO4H_UNIVERSE` / `CRYPTO4H_REQUESTS_DIR`), so nothing touches `data/` or
`dagster_home/`. The research tests share one ingested store per module to keep the suite fast.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from pipeline_helpers import ingest, make_defs, write_universe

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def instance(dagster_home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test(temp_dir=str(dagster_home)) as inst:
        yield inst


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("CRYPTO4H_DB_URL", url)
    return url


@pytest.fixture
def universe_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write_universe(tmp_path / "universe.yaml")
    monkeypatch.setenv("CRYPTO4H_UNIVERSE", str(path))
    return path


@pytest.fixture
def live_universe_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A live universe (no end) that started a few days ago, for schedule tests."""
    today = pd.Timestamp.now(tz="UTC").date()
    path = write_universe(tmp_path / "live.yaml", start=(today - timedelta(days=5)).isoformat(), end=None)
    monkeypatch.setenv("CRYPTO4H_UNIVERSE", str(path))
    return path


@pytest.fixture
def requests_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "requests"
    folder.mkdir()
    monkeypatch.setenv("CRYPTO4H_REQUESTS_DIR", str(folder))
    return folder


@pytest.fixture
def reports_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "reports"
    monkeypatch.setenv("CRYPTO4H_REPORTS_DIR", str(folder))
    return folder


@pytest.fixture
def env(dagster_home: Path, db_url: str, universe_file: Path, requests_dir: Path, reports_dir: Path) -> dict:
    """Everything a pipeline test needs, isolated in tmp_path."""
    return {"home": dagster_home, "db_url": db_url, "universe": universe_file, "requests": requests_dir,
            "reports": reports_dir}  # fmt: skip


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """One store with the small universe's full history, shared by a module (read-mostly tests)."""
    root = tmp_path_factory.mktemp("ingested")
    mp = pytest.MonkeyPatch()
    url = f"sqlite:///{root / 'store.db'}"
    uni_path = write_universe(root / "universe.yaml")
    mp.setenv("CRYPTO4H_DB_URL", url)
    mp.setenv("CRYPTO4H_UNIVERSE", str(uni_path))
    mp.setenv("DAGSTER_HOME", str(root))
    mp.setenv("CRYPTO4H_REPORTS_DIR", str(root / "reports"))
    defs = make_defs(uni_path, url)
    result = ingest(defs, uni_path)
    assert result.success
    try:
        yield {"db_url": url, "universe": uni_path, "defs": defs, "root": root, "monkeypatch": mp,
               "reports": root / "reports"}  # fmt: skip
    finally:
        mp.undo()
