"""Static figures as inline SVG (matplotlib, no pyplot): small, crisp at any zoom, byte-reproducible.

Every axis states its unit; times are UTC. Functions take lists of series so the single-run report and
the comparison share the same drawings.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib as mpl
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from engine.report.data import Curve

#: Okabe-Ito, readable for colour-blind readers; the first is the strategy in a single report
PALETTE = ["#0b5cad", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#8c6d31", "#000000"]
BENCH = "#6b7280"
NULL = "#e69f00"
LOSS = "#c2410c"
GAIN = "#0b5cad"
INK = "#1f2937"
MUTED = "#6b7280"
FULL = 11.0  # inches, the width of the page column
HALF = 5.4

STYLE = {
    "font.family": ["DejaVu Sans"],
    "font.size": 9,
    "axes.edgecolor": "#d1d5db",
    "axes.labelcolor": INK,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#eef0f3",
    "grid.linewidth": 0.8,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "legend.frameon": False,
    "legend.fontsize": 8.5,
    "svg.fonttype": "none",  # text stays text: selectable, smaller
    "svg.hashsalt": "crypto4h-report",  # stable ids: the same result gives the same bytes
    "figure.dpi": 72,
}


@dataclass
class Series:
    """One run's data for a figure: a label and a colour."""

    label: str
    color: str

    def __post_init__(self) -> None:
        self.label = self.label.replace("$", r"\$")  # user text, never mathtext


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    FigureCanvasSVG(fig)
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight",
                pad_inches=0.05)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)  # RDF boilerplate, no use inline
    # path coordinates cut to 0.1 pt (a fraction of a screen pixel): long curves shrink by about a third
    text = re.sub(r'(<path[^>]*? d=")([^"]*)"', lambda m: m.group(1) + _round_path(m.group(2)) + '"', text)
    # scale with the page column instead of fixed points
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="figure" role="img"', text, count=1)


_DECIMALS = re.compile(r"(\.\d)\d+")


def _round_path(d: str) -> str:
    """Keep one decimal (truncated: a template substitution runs in C, a callback per number took seconds
    on a sweep's 200 curves)."""
    return _DECIMALS.sub(r"\1", d)


def _pct_axis(ax, axis: str = "y", digits: int | None = None) -> None:
    def label(v: float, _pos: int) -> str:
        d = digits if digits is not None else (0 if abs(v) >= 10 or v == 0 else 1 if abs(v) >= 1 else 2)
        return f"{v:.{d}f}%".replace("-", "−")

    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(FuncFormatter(label))


def _time_axis(ax) -> None:
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(
        locator, formats=["%Y", "%b", "%b %d", "%H:%M", "%H:%M", "%S"],
        zero_formats=["", "%Y", "%b %Y", "%b %d", "%b %d", "%H:%M"], offset_formats=["", "%Y", "%Y", "%Y-%m-%d", "%Y-%m-%d", "%Y-%m-%d %H:%M"]))


def _figure(width: float, height: float, rows: int = 1, ratios: Sequence[float] | None = None):
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, gridspec_kw={"height_ratios": ratios} if ratios else None)
    return fig, axes


def equity(
    curves: Sequence[tuple[Curve, Series]],
    benchmark: Curve | None = None,
    band: tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray] | None = None,
    compounded: Sequence[tuple[Curve, Series]] = (),
    confidence: float = 0.95,
) -> str:
    """Cumulative return (top) and drawdown from peak (bottom), in percent of capital."""
    with mpl.rc_context(STYLE):
        fig, (top, bottom) = _figure(FULL, 5.6, 2, [2.6, 1])
        if band is not None:
            times, mean, low, high = band
            top.fill_between(times, low * 100, high * 100, color=NULL, alpha=0.18, linewidth=0,
                             label=f"random picks, {confidence:.0%} band")
            top.plot(times, mean * 100, color=NULL, linewidth=1.2, linestyle=(0, (4, 2)), label="random picks, mean",
                     zorder=3)
        if benchmark is not None:
            top.plot(benchmark.times, benchmark.values * 100, color=BENCH, linewidth=2.0, alpha=0.75,
                     label=benchmark.label)
            bottom.plot(benchmark.times, benchmark.drawdown * 100, color=BENCH, linewidth=0.9)
        single = len(curves) == 1
        for curve, s in curves:
            top.plot(curve.times, curve.values * 100, color=s.color, linewidth=1.8, label=s.label)
            if single:
                bottom.fill_between(curve.times, curve.drawdown * 100, 0, color=LOSS, alpha=0.22, linewidth=0)
                bottom.plot(curve.times, curve.drawdown * 100, color=LOSS, linewidth=0.9, label=s.label)
            else:
                bottom.plot(curve.times, curve.drawdown * 100, color=s.color, linewidth=1.1)
        for curve, s in compounded:
            top.plot(curve.times, curve.values * 100, color=s.color, linewidth=1.4, linestyle=(0, (1, 1.5)),
                     label=s.label)
            bottom.plot(curve.times, curve.drawdown * 100, color=s.color, linewidth=0.9, linestyle=(0, (1, 1.5)))
        top.axhline(0, color=INK, linewidth=0.7)
        top.set_ylabel("cumulative return (% of capital)")
        bottom.set_ylabel("drawdown (%)")
        bottom.set_xlabel("time (UTC); each window counted when it closes")
        handles, labels = top.get_legend_handles_labels()
        rank = {benchmark.label if benchmark else None: 1, "random picks, mean": 2}
        order = sorted(range(len(labels)), key=lambda i: rank.get(labels[i], 3 if labels[i].startswith("random") else 0))
        top.legend([handles[i] for i in order], [labels[i] for i in order], loc="lower left",
                   bbox_to_anchor=(0, 1.0), ncols=_legend_columns(labels), borderaxespad=0.2)
        _pct_axis(top)
        _pct_axis(bottom)
        bottom.yaxis.set_major_locator(MaxNLocator(4))
        _time_axis(bottom)
        return _svg(fig)


def distribution(
    returns: Sequence[tuple[np.ndarray, Series]], round_trip_cost: float | None = None
) -> str:
    """Histogram of net trade returns in percent; one run splits gains and losses by colour."""
    with mpl.rc_context(STYLE):
        fig, ax = _figure(HALF, 3.7)
        values = [np.asarray(r, dtype=np.float64) * 100 for r, _ in returns]
        pooled = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.array([])
        bins = _bins(pooled)
        if len(returns) == 1 and len(pooled):
            v = np.clip(pooled, bins[0], bins[-1])
            ax.hist(v[v < 0], bins=bins, color=LOSS, alpha=0.75, label="losing trades")
            ax.hist(v[v >= 0], bins=bins, color=GAIN, alpha=0.75, label="winning trades")
            ax.axvline(float(np.mean(pooled)), color=INK, linewidth=1.1, label=f"mean {_p(np.mean(pooled))}")
            ax.axvline(float(np.median(pooled)), color=INK, linewidth=1.1, linestyle=(0, (3, 2)),
                       label=f"median {_p(np.median(pooled))}")
            ax.set_ylabel("trades (count)")
        else:
            for v, s in zip(values, (s for _, s in returns), strict=True):
                v = v[np.isfinite(v)]
                if len(v):
                    ax.hist(np.clip(v, bins[0], bins[-1]), bins=bins, histtype="step", linewidth=1.5,
                            color=s.color, density=True, label=f"{s.label} (n = {len(v):,})")
            ax.set_ylabel("density (share of trades per % of return)")
        if round_trip_cost is not None:
            ax.axvline(-round_trip_cost * 100, color=MUTED, linewidth=0.9, linestyle=(0, (1, 2)),
                       label=f"round-trip cost {_p(-round_trip_cost * 100)}")
        ax.axvline(0, color=INK, linewidth=0.6)
        ax.set_xlabel("net return per trade (%); trades beyond the 1st/99th percentile sit in the end bins")
        _pct_axis(ax, "x")
        if len(pooled):
            ax.legend(loc="upper right")
        else:
            ax.text(0.5, 0.5, "no completed trades", transform=ax.transAxes, ha="center", color=MUTED)
        return _svg(fig)


def _legend_columns(labels: Sequence[str], width: int = 150) -> int:
    """As many columns as fit one figure width (about `width` characters of legend text)."""
    longest = max((len(label) for label in labels), default=1) + 6  # the handle and the gap
    return max(1, min(4, len(labels), width // longest))


def _bins(values: np.ndarray, target: int = 36) -> np.ndarray:
    """Edges of a round width with 0 on an edge, so no bin mixes gains and losses."""
    lo, hi = np.quantile(values, [0.01, 0.99]) if len(values) else (-1.0, 1.0)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    raw = max(hi - lo, 1e-6) / target
    step = 10 ** np.floor(np.log10(raw))
    width = next(m * step for m in (1, 2, 2.5, 5, 10) if m * step >= raw)
    return np.arange(np.floor(lo / width) * width, np.ceil(hi / width) * width + width / 2, width)


DASHES = ["solid", (0, (6, 2)), (0, (2, 2)), (0, (6, 2, 2, 2))]


def _line(i: int) -> dict:
    """Run `i`'s line style: runs that coincide (same trades at another fee) still show both colours."""
    return {"linewidth": 1.7, "linestyle": DASHES[i % len(DASHES)], "zorder": 2 + i}


def _p(v: float) -> str:
    return f"{v:+.2f}%".replace("-", "−")


#: above this many decisions the bars show daily means (thousands of bars make a heavy, unreadable SVG)
MAX_BARS = 400


def rank_ic(series: Sequence[tuple[pd.DataFrame, Series]], smooth: int) -> str:
    """Per-decision rank IC as thin bars (single run) and its rolling mean over `smooth` decisions."""
    with mpl.rc_context(STYLE):
        fig, ax = _figure(FULL, 3.2)
        for i, (df, s) in enumerate(series):
            ic = pd.Series(df["rank_ic"].astype(float).to_numpy(),
                           index=pd.DatetimeIndex(pd.to_datetime(df["decision_time"], utc=True)).tz_localize(None))
            what, mean = "per decision time", float(ic.mean())
            if len(ic) > MAX_BARS:
                ic = ic.resample("1D").mean().dropna()
                smooth, what = 7, "daily mean"
            t = ic.index
            if len(series) == 1:
                width = (t[1:] - t[:-1]).min() * 0.8 if len(t) > 1 else pd.Timedelta(hours=1)
                for keep, color, sign in ((ic > 0, GAIN, "> 0"), (ic <= 0, LOSS, "≤ 0")):
                    ax.bar(t[keep], ic[keep], width=width, color=color, alpha=0.35, linewidth=0,
                           label=f"rank IC {sign}, {what}")
                ax.axhline(mean, color=s.color, linewidth=0.9, linestyle=(0, (4, 2)),
                           label=f"mean {mean:+.3f}".replace("-", "−"))
            roll = ic.rolling(smooth, min_periods=max(2, smooth // 2)).mean()
            unit = "days" if what == "daily mean" else "decisions"
            ax.plot(t, roll, color=s.color, **_line(i),
                    label=(f"rolling mean, {smooth} {unit}" if len(series) == 1 else s.label))
        ax.axhline(0, color=INK, linewidth=0.6)
        drawn = [np.abs(np.asarray(line.get_ydata(), dtype=float)) for line in ax.get_lines()]
        drawn += [np.abs([p.get_height() for p in ax.patches])]
        peak = max([0.1, *(float(np.nanmax(d)) for d in drawn if np.isfinite(d).any())])
        ax.set_ylim(-min(1.05, 1.15 * peak), min(1.05, 1.15 * peak))  # symmetric: 0 stays in the middle
        ax.set_ylabel("Spearman rank IC (score vs net return)")
        ax.set_xlabel("decision time (UTC)")
        _time_axis(ax)
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncols=_legend_columns(ax.get_legend_handles_labels()[1]),
                  borderaxespad=0.2)
        return _svg(fig)


def costs(series: Sequence[tuple[pd.DataFrame, float | None, float, Series]]) -> str:
    """Mean window return against the total cost per side; marks the configured cost and the break-even."""
    with mpl.rc_context(STYLE):
        fig, ax = _figure(HALF, 3.3)
        single = len(series) == 1
        for i, (df, break_even_cost, configured, s) in enumerate(series):
            x = df["cost_bps_per_side"].astype(float).to_numpy()
            y = df["mean_window_return"].astype(float).to_numpy() * 100
            ax.plot(x, y, color=s.color, marker="o", markersize=4, label=s.label, **_line(i))
            if single:
                ax.axvline(configured, color=MUTED, linewidth=0.9, linestyle=(0, (3, 2)),
                           label=f"this run: {configured:g} bps")
            if break_even_cost is not None and x.min() <= break_even_cost <= x.max():
                ax.plot([break_even_cost], [0], marker="D", markersize=6, color=s.color, markeredgecolor="white",
                        linestyle="none",
                        label=f"break-even {break_even_cost:.1f} bps" if single else None)
        ax.axhline(0, color=INK, linewidth=0.7)
        ax.set_xlabel("total cost per side, fee + slippage (bps)")
        ax.set_ylabel("mean return per window (%)")
        _pct_axis(ax, digits=2)
        ax.legend(loc="upper right")
        return _svg(fig)
