"""What the paper area shows in the UI: typed tables with units (fractions in %, times UTC) and the equity
plot as a PNG file under the reports folder, referenced by URL so the UI shows it inline (the same
mechanism as `pipeline/defs/backtests/runs.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from pipeline.metadata import image_markdown, save_png, table
from pipeline.reports import reports_dir, reports_url

OPEN_COLUMNS = ("strategy", "decision_time", "symbol", "mode", "rank", "weight", "score", "entry_price", "settles_at")
SETTLED_COLUMNS = ("strategy", "decision_time", "symbol", "mode", "weight", "entry_price", "exit_price",
                   "return_pct", "max_drawdown", "status", "exit_time", "settled_at")  # fmt: skip
DECISION_COLUMNS = ("strategy", "decision_time", "mode", "n_eligible", "n_selected", "picks", "note")
SUMMARY_COLUMNS = ("strategy", "decisions", "settled_windows", "open_trades", "paper_total_return",
                   "backtest_total_return", "paper_max_drawdown", "backtest_max_drawdown", "paper_final_equity",
                   "backtest_final_equity")  # fmt: skip
DIFF_COLUMNS = ("strategy", "decision_time", "symbol", "part", "field", "paper", "replay", "explanation")
REVISION_COLUMNS = ("symbol", "open_time", "kind", "change", "old_sha", "new_sha", "first_seen_at", "used_by")
DESCRIPTIONS = {
    "mode": "live: recorded by its own tick in time; late: by its own tick, late; caught_up: by a later tick",
    "weight": "share of the sleeve's capital, %",
    "entry_price": "close of the 5m candle stamped t - 5m (quote currency)",
    "return_pct": "net of fee + slippage on both sides, %",
    "max_drawdown": "min(low in the window) / entry - 1, %",
    "settles_at": "t + window (UTC): settled by the first tick after it that finds the window's candles",
    "paper_final_equity": "compounded sleeves, x initial capital",
    "backtest_final_equity": "compounded sleeves, x initial capital",
    "explanation": "empty = unexplained (the data did not change: look for lookahead or non-determinism)",
}


def typed(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> dg.TableMetadataValue:
    return table(rows, columns, DESCRIPTIONS)


def open_trades_table(trades: pd.DataFrame, limit: int = 50) -> dg.TableMetadataValue:
    from pipeline.results import stored_walk_forward_config

    rows = []
    for r in trades.loc[trades["status"] == "open"].tail(limit).to_dict("records"):
        window = pd.Timedelta(milliseconds=stored_walk_forward_config(r["config"]).window_ms)
        rows.append({**r, "settles_at": r["decision_time"] + window})
    return typed(rows, OPEN_COLUMNS)


def settled_trades_table(trades: pd.DataFrame, limit: int = 50) -> dg.TableMetadataValue:
    done = trades.loc[trades["status"] != "open"].sort_values(["decision_time", "strategy", "rank"])
    return typed(done.tail(limit).to_dict("records"), SETTLED_COLUMNS)


def plot_file(stamp: pd.Timestamp, name: str) -> tuple[Path, str]:
    """(path, URL) of a paper plot: one file per tick, so an older materialisation keeps its own picture."""
    path = reports_dir() / "paper" / f"{stamp:%Y%m%dT%H%M}-{name}.png"
    return path, f"{reports_url()}/{path.relative_to(reports_dir()).as_posix()}"


def save_plot(fig: Any, stamp: pd.Timestamp, name: str, title: str) -> dict[str, dg.MetadataValue]:
    path, url = plot_file(stamp, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(fig, path)
    return {"equity_plot": image_markdown(url, title), "plot_file": dg.MetadataValue.path(str(path))}


def revision_rows(revisions: pd.DataFrame, decisions: pd.DataFrame, trades: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per revised candle: what changed (old -> new) and which decisions and trades used it."""
    from engine.paper import candle_hashes
    from pipeline.results import stored_walk_forward_config

    rows = []
    for r in revisions.to_dict("records"):
        o = r["open_time"]
        fields = ("open", "high", "low", "close", "volume")
        if r["kind"] == "changed":
            change = "; ".join(f"{f} {float(r['old_' + f])!r} -> {float(r['new_' + f])!r}" for f in fields
                               if r["old_" + f] != r["new_" + f])  # fmt: skip
        elif r["kind"] == "removed":
            change = f"removed (was close {float(r['old_close'])!r})"
        else:
            change = f"added after the range was read (close {float(r['new_close'])!r})"
        new = pd.DataFrame([{f: r["new_" + f] for f in fields}])
        new_sha = candle_hashes(new)[0] if r["kind"] != "removed" else "-"
        uses = []
        mine = trades.loc[trades["symbol"] == r["symbol"]]
        for tr in mine.to_dict("records"):
            window = pd.Timedelta(milliseconds=stored_walk_forward_config(tr["config"]).window_ms)
            t = tr["decision_time"]
            if o == t - pd.Timedelta(minutes=5):
                uses.append(f"entry price of {tr['strategy']} @ {t:%Y-%m-%d %H:%M}")
            elif t <= o < t + window:
                state = "open" if tr["status"] == "open" else f"settled {tr['settled_at']:%Y-%m-%d %H:%M}"
                uses.append(f"window of {tr['strategy']} @ {t:%Y-%m-%d %H:%M} ({state})")
        read = decisions.loc[(decisions["history_start"] <= o) & (decisions["decision_time"] > o)
                             & decisions["inputs"].map(lambda x, s=r["symbol"]: s in (x or {}))]  # fmt: skip
        if len(read):
            uses.append(f"features of {len(read)} decisions ({read['decision_time'].min():%Y-%m-%d %H:%M} .. "
                        f"{read['decision_time'].max():%Y-%m-%d %H:%M})")  # fmt: skip
        rows.append({"symbol": r["symbol"], "open_time": o, "kind": r["kind"], "change": change,
                     "old_sha": r["old_sha"] if r["kind"] != "added" else "-", "new_sha": new_sha,
                     "first_seen_at": r["first_seen_at"], "used_by": "; ".join(uses) or "-"})  # fmt: skip
    return rows
