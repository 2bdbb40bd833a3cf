"""The one path every backtest takes: load candles -> run the engine -> record -> metadata.

Scheduled backtests (the research refresh), ad-hoc Launchpad runs and request files all call
`run_and_record`, so they load, validate, fingerprint, reuse and record runs the same way. All trading
logic is the engine's; this module moves data between the store, the engine and Dagster metadata.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pandas as pd

from pipeline.metadata import fmt_ts
from pipeline.universe import REPO_ROOT, Universe


class RunFailed(Exception):
    """A backtest could not run (no data, bad settings); the message says what to do. Recorded as failed."""


@dataclass
class RecordedRun:
    """A backtest as stored: fresh (`result` set) or reused from an identical earlier run."""

    run_id: int
    strategy: str
    kind: str
    config: Any  # engine WalkForwardConfig
    params: dict[str, Any]
    symbols: list[str]
    metrics: dict[str, Any]
    windows: pd.DataFrame
    trades: pd.DataFrame
    reused: bool = False
    result: Any = None  # engine WalkForwardResult when the run was computed now
    notes: list[str] = field(default_factory=list)

    @property
    def period(self) -> str:
        """First .. last decision time, and how many."""
        times = self.windows["decision_time"] if len(self.windows) else []
        if not len(times):
            return "no decision time"
        return f"{fmt_ts(times.iloc[0])} .. {fmt_ts(times.iloc[-1])} ({len(times)} decision times)"


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
    descriptions and parameter defaults; the `active` flag and the parameter values are the operator's,
    kept in the store (set them with the `configure_strategy` job or `python -m pipeline.strategies`)."""
    from engine.strategies import list_strategies

    return [
        {"name": i.name, "description": i.description, "defaults": dict(i.parameters)}
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


def run_config(cfg: Any, strategy: Any, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config recorded with a run: walk-forward settings, strategy, parameters, and extras."""
    from pipeline.store.convert import json_safe

    config = {**cfg.to_dict(), "strategy": strategy.name, "params": dict(strategy.params), **(extra or {})}
    return json.loads(json.dumps(json_safe(config), sort_keys=True))


def data_span(candles: Mapping[str, pd.DataFrame]) -> str:
    """What data a run had: symbols and the open-time range of their candles."""
    if not candles:
        return "no candles at all"
    first = min(df["timestamp"].iloc[0] for df in candles.values())
    last = max(df["timestamp"].iloc[-1] for df in candles.values())
    return f"{len(candles)} symbols with candles from {fmt_ts(first)} to {fmt_ts(last)} (open times)"


def stored_span(db: Any, exchange: str, symbols: Sequence[str]) -> str | None:
    """What the store holds for `symbols` over all time (None when nothing): one aggregate per symbol."""
    spans = [s for s in (db.candle_summary(exchange, sym) for sym in symbols) if s["rows"]]
    if not spans:
        return None
    first, last = min(s["first"] for s in spans), max(s["last"] for s in spans)
    return f"{len(spans)} symbols with candles from {fmt_ts(first)} to {fmt_ts(last)} (open times)"


def _needs(cfg: Any, warmup: int) -> str:
    """What a run needs, in words: its decision range and the warm-up history before it."""
    tf_hours = cfg.timeframe_ms / 3_600_000
    span = f"{fmt_ts(cfg.start)} .. {fmt_ts(cfg.end)}" if cfg.start is not None or cfg.end is not None else "any period"
    return (
        f"decision times in {span} with {cfg.window_hours:g}h windows, after a warm-up of {warmup} closed "
        f"{cfg.feature_timeframe} bars (about {warmup * tf_hours / 24:.1f} days) per symbol"
    )


def require_decisions(result: Any, candles: Mapping[str, pd.DataFrame]) -> None:
    """A run with no decision time or no eligible symbol at any of them measured nothing: refuse it."""
    from engine.features import default_warmup_bars

    cfg = result.config
    warmup = cfg.warmup_bars or default_warmup_bars()
    windows = result.windows
    if len(windows) == 0:
        raise RunFailed(f"no decision time fits the data: the run needs {_needs(cfg, warmup)}; "
                        f"the store has {data_span(candles)}")  # fmt: skip
    if int(windows["n_eligible"].sum()) == 0:
        raise RunFailed(f"no symbol was eligible at any of the {len(windows)} decision times (warm-up not "
                        f"reached or entry candles missing): the run needs {_needs(cfg, warmup)}; the store "
                        f"has {data_span(candles)}")  # fmt: skip


#: config keys that change the period or the statistics, not the configuration being tried
NOT_A_TRIAL = frozenset({"start", "end", "seed", "bootstrap_samples", "confidence", "cost_levels_bps", "request"})


def trial_key(config: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in config.items() if k not in NOT_A_TRIAL}, sort_keys=True, default=str)


def trials_tried(db: Any, strategy: str, universe: Sequence[str], config: Mapping[str, Any]) -> int:
    """How many distinct configurations of `strategy` were tried on this universe (the store's successful
    runs of any kind, sweeps included, plus this one): the `n_trials` of the deflated Sharpe."""
    return len(tried_configs(db, strategy, universe) | {trial_key(config)})


def tried_configs(db: Any, strategy: str, universe: Sequence[str]) -> set[str]:
    """The distinct configurations of `strategy` tried on this universe: successful runs and sweeps."""
    wanted = sorted(universe)
    runs = db.list_backtests(strategy=strategy, status="success", limit=100_000)
    seen = {trial_key(r.config or {}) for r in runs.itertuples(index=False) if sorted(r.universe or []) == wanted}
    seen |= {trial_key(c) for u, c in db.sweeps.tried_configs(strategy) if sorted(u) == wanted}
    return seen


def deflated_sharpe_metrics(result: Any, n_trials: int) -> dict[str, Any]:
    """The run's deflated Sharpe given the configurations tried (on the sleeve contributions the `sharpe`
    metric uses, annualised the same way)."""
    from engine.stats import deflated_sharpe, periods_per_year

    dsr = deflated_sharpe(result.windows["contribution"].to_numpy(), n_trials,
                          periods_per_year=periods_per_year(result.config.shift_hours))  # fmt: skip
    return {"deflated_sharpe": dsr.probability, "deflated_sharpe_threshold": dsr.threshold, "n_trials": n_trials}


def _reusable(db: Any, strategy: str, kind: str, fingerprint: str, config: dict[str, Any]) -> int | None:
    """The id of an earlier successful run with the same data, code version and config, if any."""
    runs = db.list_backtests(strategy=strategy, kind=kind, status="success", data_fingerprint=fingerprint,
                             code_version=code_version(), limit=20)  # fmt: skip
    for row in runs.itertuples(index=False):
        if json.dumps(row.config, sort_keys=True) == json.dumps(config, sort_keys=True):
            return int(row.id)
    return None


def _from_store(db: Any, run_id: int, strategy: Any, cfg: Any, kind: str, symbols: list[str]) -> RecordedRun:
    return RecordedRun(
        run_id=run_id, strategy=strategy.name, kind=kind, config=cfg, params=dict(strategy.params),
        symbols=symbols, metrics=db.backtest_metrics(run_id), windows=db.backtest_windows(run_id),
        trades=db.backtest_trades(run_id), reused=True,
    )  # fmt: skip


def run_and_record(
    db: Any,
    uni: Universe,
    strategy: Any,
    cfg: Any,
    *,
    kind: str,
    symbols: Sequence[str] | None = None,
    candles: Mapping[str, pd.DataFrame] | None = None,
    histories: Any = None,
    fingerprint: str | None = None,
    request_key: str | None = None,
    extra_config: Mapping[str, Any] | None = None,
    reuse: bool = False,
    reusable: Callable[[int], bool] | None = None,
) -> RecordedRun:
    """Load -> run the engine -> record; raise `RunFailed` (after recording the failure) when it cannot run.

    `candles` (and `histories`, the same candles prepared by `engine.backtest.prepare_histories`, and
    their `fingerprint`) let a caller that runs several strategies load and compute features once.
    With `reuse`, an earlier successful run with the same data fingerprint, config and code version is
    returned instead of recording an identical one (if `reusable(run_id)` agrees, e.g. its report exists).
    """
    from engine.backtest import run_walk_forward
    from engine.fingerprint import data_fingerprint

    config = run_config(cfg, strategy, extra_config)
    wanted = list(symbols or uni.symbols)

    def fail(message: str) -> RunFailed:
        db.record_failed_backtest(strategy=strategy.name, kind=kind, config=config, universe=wanted,
                                  error=message, request_key=request_key)  # fmt: skip
        return RunFailed(message)

    if candles is None:
        end = pd.Timestamp(cfg.end) if cfg.end is not None else None
        candles = load_candles(db, uni, symbols=wanted, end=end)
    if not candles:
        held = stored_span(db, uni.exchange, wanted)
        if held is None:
            raise fail(f"no stored candles for {wanted} on {uni.exchange!r}: materialise `candles` first "
                       "(backfill from the UI, `python -m pipeline.backfill` or `make demo`)")  # fmt: skip
        from engine.features import default_warmup_bars

        raise fail(f"no stored candles for {wanted} on {uni.exchange!r} before the run's end "
                   f"{fmt_ts(cfg.end)}: the run needs {_needs(cfg, cfg.warmup_bars or default_warmup_bars())}; "
                   f"the store has {held}")  # fmt: skip
    fingerprint = fingerprint or data_fingerprint(candles)
    found = _reusable(db, strategy.name, kind, fingerprint, config) if reuse else None
    if found is not None and (reusable is None or reusable(found)):
        return _from_store(db, found, strategy, cfg, kind, sorted(candles))
    try:
        result = run_walk_forward(histories if histories is not None else candles, strategy, cfg)
        require_decisions(result, candles)
    except (ValueError, RunFailed) as exc:
        raise fail(str(exc)) from exc
    except Exception as exc:  # a bug in a strategy: recorded and reported like any failed run
        raise fail(f"{type(exc).__name__} in strategy {strategy.name!r}: {exc}") from exc
    result.metrics.update(deflated_sharpe_metrics(result, trials_tried(db, strategy.name, sorted(candles), config)))
    run_id = db.record_backtest(
        strategy=strategy.name, kind=kind, config=config, universe=sorted(candles),
        data_fingerprint=fingerprint, code_version=code_version(), trades=result.trades,
        windows=result.windows, metrics=numeric_metrics(result.metrics), request_key=request_key,
    )  # fmt: skip
    missing = sorted(set(wanted) - set(candles))
    notes = [f"no stored candles for {missing}; they are left out"] if missing else []
    return RecordedRun(
        run_id=run_id, strategy=strategy.name, kind=kind, config=cfg, params=dict(result.params),
        symbols=sorted(candles), metrics=result.metrics, windows=result.windows, trades=result.trades,
        result=result, notes=notes,
    )  # fmt: skip


def curve_from_windows(windows: pd.DataFrame, sleeve_factor: float) -> pd.DataFrame:
    """Rebuild the sleeve curve from stored window returns with the engine's own formula."""
    from engine.metrics import equity_curve

    if windows is None or windows.empty:
        return pd.DataFrame(columns=["decision_time", "equity", "drawdown"])
    df = windows.sort_values("decision_time")
    _, equity, drawdown = equity_curve(df["window_return"].fillna(0.0).to_numpy(), sleeve_factor)
    return pd.DataFrame({"decision_time": df["decision_time"].to_numpy(), "equity": equity, "drawdown": drawdown})
