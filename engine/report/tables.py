"""Table models for the templates: display text plus a raw sort key per cell, and the trades as JSON.

Small tables (metrics, symbols, months) are rendered as HTML; the trades table can hold tens of
thousands of rows, so it ships as compact JSON that the page's script pages, sorts and filters.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from engine.report import fmt


@dataclass
class Column:
    key: str
    label: str
    format: Callable[[Any], str] = str
    numeric: bool = True
    title: str = ""  # tooltip: definition and unit


@dataclass
class Table:
    columns: list[Column]
    rows: list[list[tuple[str, Any]]] = field(default_factory=list)  # (text, sort key)
    note: str = ""

    @classmethod
    def from_frame(cls, df: pd.DataFrame | None, columns: list[Column], note: str = "") -> Table:
        table = cls([c for c in columns if df is None or c.key in df.columns], note=note)
        if df is None:
            return table
        for rec in df.to_dict("records"):
            table.rows.append([(c.format(rec.get(c.key)), _sort_key(rec.get(c.key))) for c in table.columns])
        return table


def _sort_key(v: Any) -> str:
    n = fmt.num(v)
    if n is not None:
        return repr(n)
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def pct2(x: Any) -> str:
    return fmt.pct(x, 2)


def pct3(x: Any) -> str:
    return fmt.pct(x, 3)


SYMBOL_COLUMNS = [
    Column("symbol", "Symbol", str, numeric=False),
    Column("trade_count", "Trades", fmt.count, title="completed trades (count)"),
    Column("contribution", "Contribution", pct2, title="share of the total (non-compounded) return"),
    Column("win_rate", "Win rate", fmt.share, title="share of trades with a positive net return"),
    Column("avg_return", "Mean / trade", pct2, title="mean net return per trade"),
    Column("median_return", "Median / trade", pct2),
    Column("profit_factor", "Profit factor", fmt.ratio, title="sum of gains / |sum of losses|"),
    Column("max_drawdown_trade", "Worst intra-trade DD", pct2, title="lowest low in a window vs entry"),
]

MONTH_COLUMNS = [
    Column("month", "Month (UTC)", str, numeric=False),
    Column("windows", "Windows", fmt.count),
    Column("trades", "Trades", fmt.count),
    Column("win_rate", "Win rate", fmt.share),
    Column("mean_window_return", "Mean / window", pct3),
    Column("total_return", "Total", pct2, title="sum of sleeve contributions in the month (non-compounded)"),
    Column("benchmark_total_return", "Benchmark total", pct2),
    Column("max_drawdown", "Max drawdown", pct2),
]


def symbol_table(result: Any) -> Table:
    sm = getattr(result, "symbol_metrics", None)
    if not isinstance(sm, pd.DataFrame) or sm.empty:
        return Table(SYMBOL_COLUMNS)
    trades = result.trades
    sm = sm.copy()
    if len(trades) and {"weight", "return_pct", "void"} <= set(trades.columns):
        outcome = trades["return_pct"].where(~trades["void"].astype(bool), 0.0).fillna(0.0)
        contrib = (trades["weight"] * outcome).groupby(trades["symbol"].astype(str)).sum()
        sm["contribution"] = sm["symbol"].astype(str).map(contrib * float(result.config.sleeve_factor))
    return Table.from_frame(sm, SYMBOL_COLUMNS)


def month_table(result: Any) -> Table | None:
    monthly = getattr(result, "monthly", None)
    if not isinstance(monthly, pd.DataFrame):
        return None
    return Table.from_frame(monthly, MONTH_COLUMNS)


# ---- trades as JSON -------------------------------------------------------------------------------------

#: (column, label, kind) in display order; kinds are formatted by the page script like `fmt` does here
TRADE_CORE = [
    ("decision_time", "Decision (UTC)", "time"),
    ("symbol", "Symbol", "text"),
    ("rank", "Rank", "int"),
    ("score", "Score", "score"),
    ("weight", "Weight", "share"),
    ("entry_price", "Entry price", "price"),
    ("exit_time", "Exit (UTC)", "time"),
    ("exit_price", "Exit price", "price"),
    ("gross_return_pct", "Gross return", "pct"),
    ("return_pct", "Net return", "pct"),
    ("max_drawdown", "Intra-trade DD", "pct"),
    ("n_candles", "5m candles", "int"),
    ("void", "Status", "void"),
]
_HIDDEN = {"entry_time", "direction", "gross_ratio"}


#: significant digits kept in the page per kind: enough for display, sorting and the CSV export
DIGITS = {"share": 4, "score": 5, "pct": 6, "price": 7, "num": 4}


def _cell(v: Any, kind: str) -> Any:
    if kind == "time":
        return None if v is None or pd.isna(v) else fmt.utc(v)
    if kind in ("text",):
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
    if kind == "void":
        return bool(v)
    n = fmt.num(v)
    if n is None:
        return None
    if kind == "int":
        return int(n)
    v = float(f"{n:.{DIGITS.get(kind, 7)}g}")
    return int(v) if v.is_integer() and abs(v) < 2**53 else v


def trades_payload(runs: Sequence[tuple[str, pd.DataFrame]]) -> dict[str, Any]:
    """{columns: [{key,label,kind,group}], rows: [[...]]}; a `run` column when there are several runs."""
    frames = [df for _, df in runs if isinstance(df, pd.DataFrame)]
    present = set().union(*(df.columns for df in frames)) if frames else set()
    core = [(k, label, kind) for k, label, kind in TRADE_CORE if k in present]
    known = {k for k, _, _ in TRADE_CORE} | _HIDDEN
    extra: list[str] = []
    for df in frames:
        extra += [c for c in df.columns if c not in known and c not in extra and pd.api.types.is_numeric_dtype(df[c])]
    cols = ([("run", "Run", "text")] if len(runs) > 1 else []) + core + [(c, c, "num") for c in extra]
    detail = {"exit_time", "n_candles", *extra}
    if len(runs) > 1:  # the run column takes their place; they stay one click away
        detail |= {"weight", "gross_return_pct"}
    rows: list[list[Any]] = []
    for label, df in runs:
        if not isinstance(df, pd.DataFrame) or df.empty:
            continue
        data = {k: (df[k].to_numpy() if k in df.columns else np.full(len(df), None)) for k, _, _ in cols if k != "run"}
        for i in range(len(df)):
            row = [label] if len(runs) > 1 else []
            row += [_cell(data[k][i], kind) for k, _, kind in cols if k != "run"]
            rows.append(row)
    columns = [{"key": k, "label": label, "kind": kind, "group": "detail" if k in detail else "core"}
               for k, label, kind in cols]
    return {"columns": columns, "rows": rows}


def script_json(payload: Any) -> str:
    """JSON safe inside <script>: no '</script>', no HTML comment openers, no line separators."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
