"""Reports in a real browser (headless Chromium): they draw, run their script without errors, and the
trades table sorts and filters. Skipped only when Chromium is absent outside CI; in CI it must run."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from engine.report import write_comparison, write_report
from tests.report_helpers import chromium, chromium_args, in_ci, sample_run, screenshot, with_new_fields

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def browser():
    if chromium() is None:
        if in_ci():
            pytest.fail("CI=true but chromium is missing (.ci/run installs Debian's chromium)", pytrace=False)
        pytest.skip("chromium is not installed (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    macd, momentum = (with_new_fields(sample_run(s)) for s in ("macd_rsi_confluence", "momentum_rank"))
    return {
        "momentum": write_report(momentum, out / "momentum.html"),
        "comparison": write_comparison([macd, momentum], out / "comparison.html"),
        "trades": momentum.trades,
    }


def _load(url: str, profile: Path) -> tuple[str, list[str]]:
    """The DOM after the page's script ran, and the console messages the page logged."""
    cmd = [*chromium_args(chromium(), profile), "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000",
           "--dump-dom", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console


def _trade_rows(dom: str) -> list[list[str]]:
    """`data-v` raw values of the visible trades table rows."""
    body = re.search(r'<table class="data" id="trades-table">.*?<tbody>(.*?)</tbody>', dom, re.S)
    assert body, "trades table not rendered"
    return [re.findall(r'data-v="([^"]*)"', row) for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)]


def test_screenshot_is_not_blank(reports, tmp_path):
    png = screenshot(reports["momentum"], tmp_path / "shot.png", tmp_path / "profile")
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape[:2] == (3000, 1400)
    non_background = (np.abs(img.astype(int) - img[5, 5].astype(int)).sum(axis=2) > 30).mean()
    colours = len(np.unique(img.reshape(-1, 3)[::7], axis=0))
    assert non_background > 0.3, non_background  # the white page on the grey background, text and figures
    assert colours > 200, colours


def test_script_runs_without_errors_and_draws_the_table(reports, tmp_path):
    dom, console = _load(reports["momentum"].as_uri(), tmp_path / "profile")
    assert console == [], console
    rows = _trade_rows(dom)
    assert len(rows) == 50  # first page
    assert f'data-shown="{len(reports["trades"])}"' in dom
    assert dom.count("<svg") >= 4


def test_trades_table_sorts_and_filters_from_the_address(reports, tmp_path):
    url = reports["momentum"].as_uri() + "#trades:sort=return_pct&dir=desc&symbol=ETH%2FBTC&size=0"
    dom, console = _load(url, tmp_path / "profile")
    assert console == [], console
    rows = _trade_rows(dom)
    trades = reports["trades"]
    expected = trades.loc[trades["symbol"] == "ETH/BTC"]
    assert len(rows) == len(expected) > 10
    assert {row[1] for row in rows} == {"ETH/BTC"}
    assert 'aria-sort="descending"' in dom
    keys = re.findall(r'<th [^>]*data-key="([^"]+)"', dom)
    returns = [float(row[keys.index("return_pct")]) for row in rows]
    assert returns == sorted(returns, reverse=True)
    assert returns[0] == pytest.approx(expected["return_pct"].max(), rel=1e-6)


def test_comparison_trades_filter_by_run(reports, tmp_path):
    url = reports["comparison"].as_uri() + "#trades:run=momentum_rank&outcome=win&size=0"
    dom, console = _load(url, tmp_path / "profile")
    assert console == [], console
    rows = _trade_rows(dom)
    trades = reports["trades"]
    assert len(rows) == int((trades["return_pct"] > 0).sum())
    assert {row[0] for row in rows} == {"momentum_rank"}
