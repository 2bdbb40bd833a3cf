"""HTML reports: self-contained, complete, escaped, and robust to empty, void and partial results."""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from types import SimpleNamespace

import pandas as pd
import pytest

import engine.stats
from engine.data.sample import load_sample_candles
from engine.report import fmt, write_comparison, write_report
from tests.report_helpers import sample_run, with_new_fields

SECTIONS = ("verdict", "metrics", "equity", "distribution", "symbols", "months", "rank-ic", "costs",
            "trades-section")
NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


@pytest.fixture(scope="module")
def momentum():
    return sample_run("momentum_rank")


@pytest.fixture(scope="module")
def macd():
    return sample_run("macd_rsi_confluence")


class _Links(HTMLParser):
    """Every attribute that could make a browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.fetches: list[tuple[str, str, str]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "id":
                self.ids.add(value)
            if name in ("src", "href", "xlink:href", "srcset", "data", "poster", "action") and value:
                self.fetches.append((tag, name, value))


def _parse(html: str) -> _Links:
    p = _Links()
    p.feed(html)
    return p


def _trades_json(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="trades-data">(.*?)</script>', html, re.S)
    assert m, "trades data missing"
    return json.loads(m.group(1))


def test_report_is_self_contained_and_complete(tmp_path, momentum):
    path = write_report(with_new_fields(momentum), tmp_path / "r.html")
    html = path.read_text(encoding="utf-8")
    links = _parse(html)
    external = [f for f in links.fetches if not f[2].startswith("#")]
    assert external == [], external
    assert not re.search(r"<link\b|@import|\burl\(\s*['\"]?(?!#)", html, re.I)  # url(#clip) is in-page
    assert not re.search(r"\bfetch\(|XMLHttpRequest|WebSocket|<iframe", html)
    assert set(re.findall(r"https?://[^\"'\s)<>]+", html)) <= NAMESPACES
    assert set(SECTIONS) <= links.ids
    assert html.count("<svg") == 4  # equity, distribution, rank IC, costs
    assert "random picks, 95% band" in html and "Per-month statistics are not in" not in html
    assert "<script>" in html and "trades-table" in html and 'data-v="' in html
    assert "2018-01" in html and "momentum_rank" in html
    payload = _trades_json(html)
    assert len(payload["rows"]) == len(momentum.trades)
    keys = [c["key"] for c in payload["columns"]]
    assert {"decision_time", "symbol", "return_pct", "void", "rsi"} <= set(keys)


def test_report_on_current_engine_fields_degrades_gracefully(tmp_path, momentum):
    r = copy.copy(momentum)
    r.windows = momentum.windows.drop(columns=["null_mean_return", "null_std_return"], errors="ignore")
    for name in ("monthly", "rank_ic", "equity"):
        if hasattr(r, name):
            setattr(r, name, None)
    r.metrics = {k: v for k, v in momentum.metrics.items() if k not in ("sharpe", "median_window_return")}
    html = write_report(r, tmp_path / "r.html").read_text()
    assert set(SECTIONS) <= _parse(html).ids
    assert "Per-month statistics are not in this result" in html
    assert "No rank IC per decision time in this result" in html
    assert "Random-picks band not shown" in html
    assert "Sharpe ratio" in html  # the row stays, with a dash


def test_returns_the_path_and_creates_parent_folders(tmp_path, momentum):
    target = tmp_path / "a" / "b" / "c" / "report.html"
    out = momentum.report(target)
    assert out == target.resolve() and out.is_file()
    assert write_report(momentum, str(tmp_path / "x.html")) == (tmp_path / "x.html").resolve()


def test_same_result_gives_the_same_bytes(tmp_path, momentum):
    a = write_report(momentum, tmp_path / "a.html").read_bytes()
    b = write_report(momentum, tmp_path / "b.html").read_bytes()
    assert a == b


def test_user_text_is_escaped(tmp_path):
    evil = '<script>alert("x")</script>&"/BTC'
    candles = load_sample_candles(["ETH/BTC", "LTC/BTC", "XLM/BTC"])
    candles[evil] = candles.pop("XLM/BTC")
    r = sample_run("momentum_rank", candles=candles)
    assert evil in set(r.trades["symbol"])
    r.params = {**r.params, "<b>key</b>": "</script><img src=x onerror=alert(1)>"}
    r.strategy = "<i>custom</i>"
    html = write_report(with_new_fields(r), tmp_path / "r.html").read_text()
    assert "<script>alert" not in html and "<img src=x" not in html and "<i>custom" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;&#34;/BTC" in html  # symbol table and filter
    assert "&lt;i&gt;custom&lt;/i&gt;" in html and "&lt;b&gt;key&lt;/b&gt;" in html
    assert html.count("</script>") == html.count("<script")  # the JSON cannot close its script element
    assert evil in {row[1] for row in _trades_json(html)["rows"]}
    comparison = write_comparison({evil: r, "cost $\\frac{$ a_b": r}, tmp_path / "c.html").read_text()  # no mathtext
    assert "<script>alert" not in comparison and "&lt;script&gt;alert" in comparison


def test_zero_trades(tmp_path):
    r = sample_run("macd_rsi_confluence", params={"rsi_low": 99.0, "rsi_high": 100.0})
    assert r.metrics["trade_count"] == 0
    html = write_report(r, tmp_path / "r.html").read_text()
    assert "No trades: nothing to judge." in html and "verdict-empty" in html
    assert "No completed trades." in html and "no completed trades" in html  # table and figure
    assert _trades_json(html)["rows"] == []
    assert set(SECTIONS) <= _parse(html).ids


def test_zero_decision_times(tmp_path):
    r = sample_run("momentum_rank", start="2018-01-22 00:00", end="2018-01-22 03:00")
    assert len(r.windows) == 0
    html = write_report(r, tmp_path / "r.html").read_text()
    assert "No decision times: nothing to draw." in html and "No trades" in html


def test_void_trades(tmp_path):
    eth = load_sample_candles(["ETH/BTC"])["ETH/BTC"]
    gap = (eth["timestamp"] >= "2018-01-25 00:00") & (eth["timestamp"] < "2018-01-25 06:00")
    r = sample_run("momentum_rank", candles={"ETH/BTC": eth.loc[~gap].reset_index(drop=True)}, max_positions=1)
    assert r.metrics["void_trades"] >= 1
    html = write_report(with_new_fields(r), tmp_path / "r.html").read_text()
    payload = _trades_json(html)
    void_col = [c["key"] for c in payload["columns"]].index("void")
    ret_col = [c["key"] for c in payload["columns"]].index("return_pct")
    voids = [row for row in payload["rows"] if row[void_col]]
    assert len(voids) == r.metrics["void_trades"] and all(row[ret_col] is None for row in voids)
    assert f"{r.metrics['void_trades']} void (no candle)" in html


def test_portfolio_mode_shows_sizing_and_the_compounded_capital(tmp_path, momentum):
    r = sample_run("momentum_rank", sizing="inverse_volatility", max_weight=0.5, compounding=True,
                   initial_capital=10_000)
    html = write_report(r, tmp_path / "r.html").read_text()
    assert "inverse volatility (1/atr_pct), max 50% per position" in html
    assert "yes, initial capital 10,000" in html
    assert "momentum_rank, compounded capital" in html  # legend of the equity figure
    assert "Capital curve (portfolio mode)" in html and "annualised from 8 days" in html
    assert fmt.pct(r.metrics["max_drawdown_compounded"]) in html
    v1 = write_report(momentum, tmp_path / "v1.html").read_text()
    assert "Capital curve (portfolio mode)" not in v1 and "compounded capital" not in v1
    assert "at most 3, equal weights" in v1 and "no (v1: each sleeve stakes its initial share)" in v1
    both = write_comparison([momentum, r], tmp_path / "c.html").read_text()
    assert "CAGR, capital curve (annualised: short runs exaggerate it)" in both and "Compounding" in both


def test_comparison_says_whether_the_lead_is_significant(tmp_path, momentum, macd):
    """The real paired test (engine.stats.compare_window_returns) decides the wording; never a bare best."""
    runs = [with_new_fields(macd), with_new_fields(momentum)]
    path = write_comparison(runs, tmp_path / "deep" / "cmp.html")
    html = path.read_text()
    links = _parse(html)
    assert [f for f in links.fetches if not f[2].startswith("#")] == []
    assert {"verdict", "metrics", "pairs", "equity", "distribution", "rank-ic", "months", "trades-section"} <= links.ids
    assert "momentum_rank has the highest mean window return" in html
    assert re.search(r"is (not )?significant at the 5% level", html) and "one-sided p" in html
    assert not re.search(r"\bbest\b", html, re.I)
    for m in ("mean_window_return", "win_rate"):
        low = fmt.pct(momentum.metrics.get(f"{m}_ci_low"), 3 if m == "mean_window_return" else 1,
                      sign=m == "mean_window_return")
        assert low in html
    payload = _trades_json(html)
    assert payload["columns"][0]["key"] == "run"
    assert {row[0] for row in payload["rows"]} == {"macd_rsi_confluence", "momentum_rank"}
    assert len(payload["rows"]) == len(macd.trades) + len(momentum.trades)


def test_comparison_labels_are_unique(tmp_path, momentum):
    other = sample_run("momentum_rank", fee_bps=20)
    html = write_comparison([momentum, other, momentum], tmp_path / "c.html").read_text()
    assert "momentum_rank (fee_bps=10) #1" in html and "momentum_rank (fee_bps=20)" in html
    assert "momentum_rank (fee_bps=10) #3" in html
    with pytest.raises(ValueError):
        write_comparison([], tmp_path / "empty.html")


def test_formatting_units():
    assert fmt.pct(0.0123) == "+1.23%" and fmt.pct(-0.0005, 3) == "−0.050%" and fmt.pct(-1e-9) == "0.00%"
    assert fmt.share(0.536) == "53.6%" and fmt.bps(10) == "10 bps" and fmt.bps(14.779) == "14.8 bps"
    assert fmt.p_value(0.0001) == "< 0.001" and fmt.p_text(0.0001) == "p < 0.001" and fmt.p_text(0.2) == "p = 0.200"
    assert fmt.price(0.00003987) == "0.000039870" and fmt.price(12345.678) == "12,346"
    assert fmt.money(10_000) == "10,000" and fmt.money(10040.5) == "10,040.50"
    assert fmt.interval(-0.002, 0.003, digits=3) == "[−0.200%, +0.300%]"
    for missing in (None, float("nan"), float("inf"), "x"):
        assert fmt.pct(missing) == fmt.MISSING and fmt.bps(missing) == fmt.MISSING
    assert fmt.interval(None, 0.1) == fmt.MISSING
    assert fmt.utc(pd.Timestamp("2018-01-22 02:00", tz="UTC")) == "2018-01-22 02:00"
    assert fmt.period(pd.Timestamp("2018-01-22", tz="UTC"), pd.Timestamp("2018-01-30", tz="UTC")) == "2018-01-22 → 2018-01-30"
    assert fmt.hours(4) == "4 h" and fmt.hours(48) == "2 d"


@pytest.mark.parametrize(
    ("metrics", "kind"),
    [
        ({"trade_count": 0}, "empty"),
        ({"trade_count": 9, "mean_window_return_ci_low": 0.001, "mean_window_return_ci_high": 0.003,
          "null_p_value": 0.01}, "edge"),
        ({"trade_count": 9, "mean_window_return_ci_low": 0.001, "mean_window_return_ci_high": 0.003,
          "null_p_value": 0.30}, "partial"),  # a rising market, not skill
        ({"trade_count": 9, "mean_window_return_ci_low": -0.001, "mean_window_return_ci_high": 0.003,
          "null_p_value": 0.01}, "partial"),
        ({"trade_count": 9, "mean_window_return_ci_low": -0.003, "mean_window_return_ci_high": -0.001,
          "null_p_value": 0.9}, "loss"),
        ({"trade_count": 9, "mean_window_return_ci_low": -0.003, "mean_window_return_ci_high": 0.002,
          "null_p_value": 0.2}, "none"),
        ({"trade_count": 9}, "none"),
    ],
)
def test_verdict_needs_a_positive_interval_and_a_win_over_random_picks(metrics, kind):
    from engine.report.verdict import classify

    result = SimpleNamespace(metrics=metrics, config=SimpleNamespace(confidence=0.95))
    assert classify(result)[0] == kind


def test_command_line_renders_the_sample(tmp_path, capsys):
    from engine.report.__main__ import main

    paths = main([str(tmp_path / "out")])
    assert [p.name for p in paths] == ["macd_rsi_confluence.html", "momentum_rank.html", "comparison.html"]
    assert all(p.is_file() and p.stat().st_size > 50_000 for p in paths)
    assert "comparison.html" in capsys.readouterr().out


def test_comparison_of_runs_without_common_windows_says_so(tmp_path, momentum, monkeypatch):
    def fake(a, b, *, block, samples, confidence, seed):
        return {"mean_difference": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0}

    monkeypatch.setattr(engine.stats, "compare_window_returns", fake, raising=False)
    later = sample_run("macd_rsi_confluence", start="2018-01-28", end="2018-01-30")
    early = sample_run("momentum_rank", start="2018-01-22", end="2018-01-24")
    html = write_comparison([early, later], tmp_path / "c.html").read_text()
    assert "cannot be tested: the runs share 0 decision time(s)" in html
    assert "too few common decision times to test" in html
