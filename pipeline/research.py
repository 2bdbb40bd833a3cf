"""Glue shared by the research assets and the ad-hoc job: load candles, run the engine, record, format.

All trading logic is the engine's; this module only moves data between the store, the engine and
Dagster metadata (markdown tables, a base64 plot).
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import pandas as pd

from pipeline.universe import REPO_ROOT, Universe

SUMMARY_COLUMNS = (
    "trade_count", "coverage", "win_rate", "avg_return", "median_return", "profit_factor",
    "max_drawdown_trade", "max_drawdown_aggregated", "total_return", "exposure", "turnover",
)  # fmt: skip
#: columns of the trade previews in asset/op metadata
TRADE_PREVIEW = ("decision_time", "symbol", "rank", "score", "entry_price", "exit_price", "return_pct",
                 "max_drawdown", "weight", "void")  # fmt: skip
PERCENT_COLUMNS = {
    "coverage", "win_rate", "avg_return", "median_return", "max_drawdown_trade", "max_drawdown_aggregated",
    "total_return", "exposure", "return_pct", "max_drawdown", "mean_window_return", "weight",
}  # fmt: skip


@lru_cache(maxsize=1)
def code_version() -> str:
    """`git describe` of the checkout (with -dirty), else the installed package version."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=5, check=True,
        )  # fmt: skip
        if out.stdout.strip():
            return f"git:{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import version

        return f"crypto4h {version('crypto4h')}"
    except Exception:  # noqa: BLE001 - any metadata failure means "unknown"
        return "unknown"


def load_candles(
    db: Any,
    uni: Universe,
    symbols: Sequence[str] | None = None,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> dict[str, pd.DataFrame]:
    """Stored candles per symbol (symbols without rows are dropped: the engine wants data)."""
    data = db.read_universe(uni.exchange, list(symbols or uni.symbols), start=start, end=end)
    return {s: df for s, df in data.items() if len(df)}


def strategy_rows() -> list[dict[str, Any]]:
    """Registry rows for `store.sync_strategies`: the engine registry is the source of truth for names,
    descriptions and parameters; the `active` flag is the operator's, kept in the store."""
    from engine.strategies import list_strategies

    return [
        {"name": i.name, "description": i.description, "parameters": dict(i.parameters)}
        for i in list_strategies()
    ]


def active_strategies(db: Any) -> list[dict[str, Any]]:
    """Sync the engine registry into the store, then return the active strategies (name, parameters)."""
    db.sync_strategies(strategy_rows())
    return db.active_strategies()


def latest_run(db: Any, strategy: str, kind: str) -> pd.Series | None:
    """The newest successful run of `strategy` of `kind` (None when there is none), queried directly so
    that any number of newer ad-hoc or failed runs cannot hide it."""
    runs = db.list_backtests(strategy=strategy, limit=1, kind=kind, status="success")
    return None if runs.empty else runs.iloc[0]


def stored_walk_forward_config(config: Mapping[str, Any] | None) -> Any:
    """The engine's `WalkForwardConfig` of a stored run (the stored dict also holds strategy/params)."""
    from engine.backtest import WalkForwardConfig

    if isinstance(config, str):
        config = json.loads(config)
    fields = set(WalkForwardConfig.__dataclass_fields__)
    return WalkForwardConfig.from_dict({k: v for k, v in (config or {}).items() if k in fields})


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The store keeps numeric metrics only; labels like `strategy` are already in the run row."""
    return {k: v for k, v in metrics.items() if not isinstance(v, str)}


def record_result(
    db: Any,
    result: Any,
    *,
    kind: str,
    candles: Mapping[str, pd.DataFrame],
    request_key: str | None = None,
    extra_config: Mapping[str, Any] | None = None,
) -> int:
    """Store a walk-forward result with its full config, data fingerprint and code version."""
    from engine.fingerprint import data_fingerprint

    config = {**result.config.to_dict(), "strategy": result.strategy, "params": dict(result.params)}
    config.update(extra_config or {})
    return db.record_backtest(
        strategy=result.strategy,
        kind=kind,
        config=config,
        universe=sorted(candles),
        data_fingerprint=data_fingerprint(candles),
        code_version=code_version(),
        trades=result.trades,
        windows=result.windows,
        metrics=numeric_metrics(result.metrics),
        request_key=request_key,
    )


# --- formatting ---------------------------------------------------------------------------------------


def fmt_value(value: Any, column: str = "") -> str:
    """Human text for a metric cell: percentages for returns and shares, one decimal for basis points
    (`*_bps` columns), 4 significant digits otherwise."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if column in PERCENT_COLUMNS:
            return f"{value:.2%}"
        return f"{value:.1f}" if column.endswith("_bps") else f"{value:.4g}"
    text = str(value).replace("|", "/").replace("\n", " ")
    return text if len(text) <= 120 else text[:117] + "..."


def md_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A markdown table (no tabulate dependency); columns missing in a row show '-'."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(fmt_value(row.get(c), c) for c in columns) + " |")
    return "\n".join(lines)


def text_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """The same cells as `md_table`, aligned as plain text for terminals (the demo's summary)."""
    cells = [list(columns)] + [[fmt_value(r.get(c), c) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def frame_table(df: pd.DataFrame, columns: Sequence[str], limit: int = 20) -> str:
    """The first `limit` rows of a frame as markdown."""
    cols = [c for c in columns if c in df.columns]
    return md_table(df.head(limit).to_dict("records"), cols)


def summary_row(strategy: str, run_id: int | None, metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {"strategy": strategy, "run_id": run_id, **{k: metrics.get(k) for k in SUMMARY_COLUMNS}}


def equity_plot_markdown(curves: Mapping[str, pd.DataFrame], title: str) -> str | None:
    """Equity and drawdown of each strategy's sleeve curve as an inline base64 PNG (None if no data).

    `curves[name]` needs `decision_time`, `equity` and `drawdown` columns.
    """
    curves = {k: v for k, v in curves.items() if len(v)}
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for name, df in curves.items():
        x = pd.to_datetime(df["decision_time"], utc=True).dt.tz_localize(None)
        ax1.plot(x, df["equity"] * 100, label=name, linewidth=1.2)
        ax2.fill_between(x, df["drawdown"] * 100, 0, alpha=0.35, label=name, step="post")
    ax1.set_ylabel("cumulative return %")
    ax1.set_title(title, fontsize=10)
    ax1.axhline(0, color="grey", linewidth=0.6)
    ax1.legend(fontsize=8, loc="upper left")
    ax2.set_ylabel("drawdown %")
    ax2.set_xlabel("decision time (UTC)")
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return f"![{title}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"


def curve_from_windows(windows: pd.DataFrame, sleeve_factor: float) -> pd.DataFrame:
    """Rebuild the sleeve curve from stored window returns with the engine's own formula."""
    from engine.metrics import equity_curve

    if windows is None or windows.empty:
        return pd.DataFrame(columns=["decision_time", "equity", "drawdown"])
    df = windows.sort_values("decision_time")
    _, equity, drawdown = equity_curve(df["window_return"].fillna(0.0).to_numpy(), sleeve_factor)
    return pd.DataFrame({"decision_time": df["decision_time"].to_numpy(), "equity": equity, "drawdown": drawdown})
