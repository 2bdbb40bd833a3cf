"""The sweep report: one self-contained page with the grid, the verdicts in plain words, the heat maps and
a sortable row per configuration (equal to the table)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from engine.backtest import WalkForwardConfig
from engine.data.sample import load_sample_candles
from engine.report import fmt
from engine.sweep import run_sweep

CFG = WalkForwardConfig(start="2018-01-21", end="2018-01-30", bootstrap_samples=300)


@pytest.fixture(scope="module")
def candles() -> dict[str, pd.DataFrame]:
    return load_sample_candles()


def test_sweep_report_holds_every_configuration_and_the_verdicts(candles, tmp_path) -> None:
    grid = {"rsi_low": [30, 45], "rsi_high": [60, 75], "max_positions": [1, 3]}
    sweep = run_sweep(candles, "macd_rsi_confluence", grid, CFG)
    path = sweep.report(tmp_path / "nested" / "sweep.html")
    html = path.read_text(encoding="utf-8")
    assert path.is_absolute() and path.exists()
    assert not re.search(r"""(src|href)=["']https?://""", html)  # nothing loaded from the network
    body = html[html.index('id="configs-table"'):]
    body = body[:body.index("</table>")]
    assert body.count("<tr>") == 1 + len(sweep.table)  # header + one row per configuration
    best = sweep.best()
    assert f"(id {int(best['config_id'])}:" in html
    assert fmt.pct(best["mean_window_return"], 3) in html
    pbo = sweep.overfitting()
    assert f"PBO = {pbo.pbo:.2f}" in html and f"{pbo.n_splits:,} ways" in html
    assert f"gives {fmt.p_text(sweep.spa_p_value)}" in html
    assert html.count('class="figure"') == 2 + 3 + 1  # logits and degradation, 3 heat maps, the curves
    assert "verdict verdict-" in html and "The best configuration by the objective" in html


def test_single_varied_parameter_draws_a_line_and_kept_results_give_the_verdict(candles, tmp_path) -> None:
    sweep = run_sweep(candles, "momentum_rank", {"max_positions": [1, 2, 3]}, CFG, keep_results=True)
    html = sweep.report(tmp_path / "one.html").read_text(encoding="utf-8")
    assert "range over the other parameters" in html
    best = sweep.results[int(sweep.best()["config_id"])]
    assert fmt.pct(best.metrics["mean_window_return_ci_low"], 3) in html
