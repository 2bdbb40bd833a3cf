"""What users read in the Dagster UI and in logs: typed tables, units, rounded numbers and plots.

One place decides how a metric is shown, so every table agrees: fractions of capital or price (returns,
shares, drawdowns) are shown in percent with `%` in the column name, `*_bps` values in basis points,
counts as integers, and statistics without a unit (profit factor, Sharpe, IC, p-values) as plain numbers.
Tables that are data are `TableMetadataValue`s (sortable, typed); markdown is kept for prose and images.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import dagster as dg
import pandas as pd

#: fractions shown in percent (exact names; `_ci_low` / `_ci_high` variants follow their base name)
PERCENT = frozenset({
    "coverage", "win_rate", "avg_return", "median_return", "max_drawdown_trade", "max_drawdown_aggregated",
    "total_return", "exposure", "return_pct", "gross_return_pct", "max_drawdown", "mean_window_return",
    "median_window_return", "weight", "benchmark_mean_window_return", "benchmark_total_return",
    "benchmark_max_drawdown_aggregated", "null_mean_window_return", "null_std", "window_return",
    "benchmark_return", "invested_weight", "return_q05", "cvar_05", "worst_trade", "quantile_spread_mean",
    "cagr", "volatility_annual", "max_drawdown_compounded", "avg_invested_share", "cash_share",
    "missing_share", "mean_difference", "atr_pct", "ema_dist", "bb_width", "volume_trend", "paper_total_return",
    "backtest_total_return", "paper_max_drawdown", "backtest_max_drawdown", "old_return_pct", "new_return_pct",
})  # fmt: skip
COUNTS = frozenset({
    "trade_count", "window_count", "decision_times", "void_trades", "rank_ic_count", "longest_losing_streak",
    "bootstrap_block", "run_id", "rank", "rows", "symbols", "n_trades", "n_selected", "n_eligible",
})  # fmt: skip
#: unit suffixes of the labels; `turnover` is capital bought + sold per day as a multiple of capital
SUFFIX = {"turnover": " (x/day)", "longest_losing_streak": " (windows)", "paper_final_equity": " (x capital)",
          "backtest_final_equity": " (x capital)"}


def _base(name: str) -> str:
    for tail in ("_ci_low", "_ci_high"):
        if name.endswith(tail):
            return name[: -len(tail)]
    return name


def is_percent(name: str) -> bool:
    base = _base(name)
    return base in PERCENT or base.startswith("mean_window_return_at_")


def label(name: str) -> str:
    """Column header with its unit: `win_rate` -> `win_rate %`, `break_even_fee_bps` unchanged."""
    if is_percent(name):
        return f"{name} %"
    return name + SUFFIX.get(name, "")


def number(name: str, value: Any) -> Any:
    """The value a typed table holds for `name`: percent x100 rounded to 3 decimals, bps to 1 decimal,
    counts as int, other floats to 4 significant digits; None stays None (shown empty)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return fmt_ts(value)
    if isinstance(value, bool | str):
        return value
    if _base(name) in COUNTS:
        return int(value)
    if isinstance(value, int) and not is_percent(name):
        return value
    x = float(value)
    if is_percent(name):
        return round(x * 100, 3)
    if name.endswith("_bps"):
        return round(x, 1)
    return float(f"{x:.4g}")


def fmt_value(value: Any, column: str = "") -> str:
    """Human text for a cell (logs, markdown, terminals): `1.23%`, `12.5 bps`, 4 significant digits."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, pd.Timestamp):
        return fmt_ts(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if is_percent(column):  # small per-window returns need the third decimal
            return f"{value:.3%}" if abs(value) < 0.01 else f"{value:.2%}"
        return f"{value:.1f} bps" if column.endswith("_bps") else f"{value:.4g}"
    text = str(value).replace("|", "/").replace("\n", " ")
    return text if len(text) <= 120 else text[:117] + "..."


def fmt_ts(ts: Any) -> str:
    """Compact UTC text for metadata and logs."""
    return "-" if ts is None or pd.isna(ts) else pd.Timestamp(ts).strftime("%Y-%m-%d %H:%M UTC")


def pct(share: float) -> str:
    """A limit as a percentage without losing small values: 0.5 -> '50%', 0.001 -> '0.1%'."""
    return f"{share * 100:g}%"


def _column_type(name: str, values: list[Any]) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "bool"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int"
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "float"
    return "string"


def table(
    rows: Iterable[Mapping[str, Any]], columns: Sequence[str], descriptions: Mapping[str, str] | None = None
) -> dg.TableMetadataValue:
    """A typed table: one column per name (header with its unit), values converted by `number`."""
    converted = [{label(c): number(c, r.get(c)) for c in columns} for r in rows]
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(
                label(c), _column_type(c, [r[label(c)] for r in converted]), description=(descriptions or {}).get(c)
            )
            for c in columns
        ]
    )
    return dg.MetadataValue.table(records=[dg.TableRecord(r) for r in converted], schema=schema)


def frame_table(df: pd.DataFrame, columns: Sequence[str], limit: int = 20) -> dg.TableMetadataValue:
    """The first `limit` rows of a frame as a typed table (columns the frame lacks are left out)."""
    cols = [c for c in columns if c in df.columns]
    return table(df.head(limit).to_dict("records"), cols)


def md_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A markdown table for prose-like metadata and run logs (same cells as `fmt_value`)."""
    lines = ["| " + " | ".join(label(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(fmt_value(row.get(c), c) for c in columns) + " |")
    return "\n".join(lines)


def text_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """The same cells as `md_table`, aligned as plain text for terminals (the demo's summary)."""
    cells = [[label(c) for c in columns]] + [[fmt_value(r.get(c), c) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def numeric_entries(metrics: Mapping[str, Any], keys: Iterable[str]) -> dict[str, dg.MetadataValue]:
    """Numeric metadata (charted over time by the UI's Plots tab), in the units of the tables."""
    out: dict[str, dg.MetadataValue] = {}
    for key in keys:
        value = number(key, metrics.get(key))
        if isinstance(value, bool) or value is None:
            continue
        out[label(key)] = dg.MetadataValue.int(value) if isinstance(value, int) else dg.MetadataValue.float(value)
    return out


def save_png(fig: Any, path: Any) -> None:
    """Write a matplotlib figure as a PNG file (readable in the UI without zooming) and close it."""
    import matplotlib.pyplot as plt

    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def image_markdown(url: str, title: str) -> dg.MetadataValue:
    """A short markdown image by URL: the UI renders markdown under 1,000 characters inline."""
    return dg.MetadataValue.md(f"![{title}]({url})")


def equity_figure(curves: Mapping[str, pd.DataFrame], title: str) -> Any | None:
    """Equity (top) and drawdown (bottom) of each sleeve curve; None without data.

    `curves[name]` needs `decision_time`, `equity` and `drawdown` columns (fractions of capital).
    """
    curves = {k: v for k, v in curves.items() if len(v)}
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # 480 x 380 px: the UI shows markdown images at their own size, so this fits the asset page column
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(4.8, 3.8), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for name, df in curves.items():
        x = pd.to_datetime(df["decision_time"], utc=True).dt.tz_localize(None)
        ax1.plot(x, df["equity"] * 100, label=name, linewidth=1.6)
        ax2.fill_between(x, df["drawdown"] * 100, 0, alpha=0.35, label=name, step="post")
    ax1.set_ylabel("cum. return (% of capital)", fontsize=9)
    ax1.set_title(title, fontsize=10)
    ax1.axhline(0, color="grey", linewidth=0.8)
    ax1.legend(fontsize=8, loc="upper left")
    ax1.grid(alpha=0.3)
    ax2.set_ylabel("drawdown (%)", fontsize=9)
    ax2.set_xlabel("decision time (UTC)", fontsize=9)
    ax2.grid(alpha=0.3)
    for ax in (ax1, ax2):
        ax.tick_params(labelsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
