"""The sweep report: one self-contained page with the grid, the verdicts in plain words, the heat maps and
a sortable row per configuration (equal to the table)."""

from __future__ import annotations

import re

import numpy as np
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


def synthetic_sweep(edge: float, seed: int = 0):
    """A SweepResult from simulated per-window returns (no market data): config 3 earns `edge` per window."""
    from engine.sweep import SweepResult

    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=1600, freq="2h", tz="UTC", name="decision_time")
    returns = pd.DataFrame(rng.normal(0, 0.01, (1600, 8)), index=index, columns=pd.Index(range(8), name="config_id"))
    returns[3] += edge
    table = pd.DataFrame({"config_id": range(8), "max_positions": range(1, 9),
                          "mean_window_return": returns.mean().to_numpy()})
    cfg = WalkForwardConfig(fee_bps=0, bootstrap_samples=300)
    bench = pd.Series(np.zeros(1600), index=index)
    return SweepResult("momentum_rank", cfg, [{"config_id": i, "max_positions": i + 1} for i in range(8)], table,
                       returns, {0.0: bench}, n_trials=8)


def test_overfitting_verdict_in_plain_words() -> None:
    from engine.report.sweep import overfitting_verdict

    edge = overfitting_verdict(synthetic_sweep(0.004))
    assert edge.kind == "edge" and edge.title == "The best configuration's lead survives the search."
    assert "PBO = 0.00" in edge.text and "significant at the 5% level" in edge.text
    noise = overfitting_verdict(synthetic_sweep(0.0, seed=1))
    assert noise.kind in ("loss", "partial") and "not significant at the 5% level" in noise.text
    assert "no configuration beats the benchmark once the number tried is accounted for" in noise.text
