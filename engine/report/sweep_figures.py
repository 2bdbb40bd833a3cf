"""Figures of the sweep report, drawn with the run report's style (inline SVG, units on every axis)."""

from __future__ import annotations

import math

import matplotlib as mpl
import numpy as np
import pandas as pd

from engine.report.data import utc_times
from engine.report.figures import (
    BENCH,
    FULL,
    HALF,
    INK,
    LOSS,
    MUTED,
    PALETTE,
    STYLE,
    _figure,
    _pct_axis,
    _svg,
    _time_axis,
)
from engine.report.fmt import value as fmt_value


def heat_map(table: pd.DataFrame, x: str, y: str, column: str, label: str, percent: bool) -> str:
    """Mean of `column` over the other parameters for each (x, y) pair, annotated in each cell."""
    grid = table.pivot_table(index=y, columns=x, values=column, aggfunc="mean", dropna=False)
    values = grid.to_numpy(np.float64) * (100 if percent else 1)
    with mpl.rc_context(STYLE):
        fig, ax = _figure(HALF, 0.9 + 0.42 * max(3, len(grid.index)))
        finite = values[np.isfinite(values)]
        span = float(np.max(np.abs(finite))) if len(finite) else 1.0
        image = ax.imshow(values, cmap="RdBu", vmin=-span or -1, vmax=span or 1, aspect="auto", origin="lower")
        ax.grid(False)
        ax.set_xticks(range(len(grid.columns)), [fmt_value(v) for v in grid.columns])
        ax.set_yticks(range(len(grid.index)), [fmt_value(v) for v in grid.index])
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        # numbers in the cells while they fit (narrower cells: fewer digits, smaller type; past 12 columns
        # the colours and the bar speak alone)
        columns = len(grid.columns)
        size, digits = (7.5, 3) if columns <= 6 else (6.0, 2)
        for (i, j), v in np.ndenumerate(values):
            if columns <= 12 and math.isfinite(v):
                text = f"{v:+.{digits}f}" if percent else f"{v:.2f}"
                ax.text(j, i, text.replace("-", "−"), ha="center", va="center", fontsize=size,
                        color="white" if abs(v) > 0.6 * span else INK)
        bar = fig.colorbar(image, ax=ax, shrink=0.9)
        bar.set_label(label)
        return _svg(fig)


def line_by_value(table: pd.DataFrame, x: str, column: str, label: str, percent: bool) -> str:
    """One varied parameter: the mean of `column` per value, and the range over the other parameters."""
    g = table.groupby(x, sort=True)[column]
    scale = 100 if percent else 1
    with mpl.rc_context(STYLE):
        fig, ax = _figure(HALF, 3.2)
        pos = np.arange(len(g.mean()))
        ax.fill_between(pos, g.min() * scale, g.max() * scale, color=PALETTE[0], alpha=0.15, linewidth=0,
                        label="range over the other parameters")
        ax.plot(pos, g.mean() * scale, color=PALETTE[0], marker="o", label="mean")
        ax.set_xticks(pos, [fmt_value(v) for v in g.mean().index])
        ax.axhline(0, color=INK, linewidth=0.6)
        ax.set_xlabel(x)
        ax.set_ylabel(label)
        if percent:
            _pct_axis(ax, digits=2)
        ax.legend(loc="best")
        return _svg(fig)


def logits(values: np.ndarray, pbo: float | None) -> str:
    """Histogram of the in-sample winner's out-of-sample rank logits; the area left of 0 is PBO."""
    with mpl.rc_context(STYLE):
        fig, ax = _figure(HALF, 3.3)
        if len(values):
            lo, hi = float(np.min(values)), float(np.max(values))
            edges = np.linspace(min(lo, -0.5), max(hi, 0.5), 31)
            ax.hist(values[values <= 0], bins=edges, color=LOSS, alpha=0.75, label=f"logit ≤ 0: PBO {pbo:.2f}")
            ax.hist(values[values > 0], bins=edges, color=PALETTE[0], alpha=0.75, label="logit > 0")
            ax.legend(loc="upper left")
        ax.axvline(0, color=INK, linewidth=0.8)
        ax.set_xlabel("logit of the in-sample winner's out-of-sample rank (> 0: above the median)")
        ax.set_ylabel("splits (count)")
        return _svg(fig)


def degradation(is_perf: np.ndarray, oos_perf: np.ndarray, metric: str) -> str:
    """The in-sample winner's metric in sample against out of sample: a density of the splits (thousands
    of points would make a heavy page)."""
    scale, unit = (100, " (% per window)") if metric == "mean" else (1, " (per window)")
    keep = np.isfinite(is_perf) & np.isfinite(oos_perf)
    x, y = is_perf[keep] * scale, oos_perf[keep] * scale
    with mpl.rc_context(STYLE):
        fig, ax = _figure(HALF, 3.3)
        if len(x):
            pad = lambda v: (float(v.min()), float(v.max()) + 1e-12 if v.max() == v.min() else float(v.max()))  # noqa: E731
            counts, xe, ye = np.histogram2d(x, y, bins=40, range=[pad(x), pad(y)])
            image = ax.imshow(np.ma.masked_equal(counts.T, 0), origin="lower", aspect="auto", cmap="Blues",
                              extent=(xe[0], xe[-1], ye[0], ye[-1]), interpolation="nearest")
            fig.colorbar(image, ax=ax, shrink=0.9).set_label("splits (count)")
        ax.grid(False)
        ax.axhline(0, color=INK, linewidth=0.6)
        ax.set_xlabel(f"in-sample {metric}{unit}")
        ax.set_ylabel(f"out-of-sample {metric}{unit}")
        return _svg(fig)


#: points per grey curve in `curves`
CROWD_POINTS = 1000


def curves(returns: pd.DataFrame, best: int, benchmark: pd.Series, sleeve: float, window_hours: float) -> str:
    """Every configuration's non-compounded sleeve curve (grey), the best (blue) and the benchmark."""
    times = utc_times(returns.index) + pd.Timedelta(hours=float(window_hours))
    cum = returns.cumsum().to_numpy() * sleeve * 100
    # the grey crowd at most ~CROWD_POINTS points per curve (every k-th value of the exact curve, the last
    # always): a page column is ~1,000 px wide, and 200 curves of 9,000 points made the report slow to write
    keep = np.unique(np.r_[np.arange(0, len(cum), max(1, len(cum) // CROWD_POINTS)), len(cum) - 1]) if len(cum) else []
    with mpl.rc_context(STYLE):
        fig, ax = _figure(FULL, 3.8)
        # rasterised: hundreds of grey curves as vector paths weighed megabytes; as one embedded image
        # they stay a small part of the report while the best curve and the benchmark stay vectors
        ax.plot(times[keep], cum[keep], color=MUTED, linewidth=0.6, alpha=min(0.5, 8 / max(1, cum.shape[1])),
                rasterized=True)
        ax.plot(times, benchmark.cumsum().to_numpy() * sleeve * 100, color=BENCH, linewidth=2.0, alpha=0.75,
                linestyle=(0, (4, 2)), label="equal-weight universe benchmark")
        ax.plot(times, returns[best].cumsum().to_numpy() * sleeve * 100, color=PALETTE[0], linewidth=1.8,
                label=f"best configuration ({best})")
        ax.plot([], [], color=MUTED, linewidth=0.8, label=f"the other {returns.shape[1] - 1} configurations")
        ax.axhline(0, color=INK, linewidth=0.7)
        ax.set_ylabel("cumulative return (% of capital)")
        ax.set_xlabel("time (UTC); each window counted when it closes")
        _pct_axis(ax)
        _time_axis(ax)
        ax.legend(loc="upper left")
        return _svg(fig)
