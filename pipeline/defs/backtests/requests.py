"""Backtest request files: YAML specs in `$CRYPTO4H_REQUESTS_DIR` (default `data/requests`) that the
`backtest_requests` sensor turns into `adhoc_backtest` runs.

A file is validated completely before anything is launched, and every problem found is reported
against that file at once (unknown keys, unknown strategy, each bad field, bad strategy parameters,
symbols outside the universe), so one round of fixes is enough. Dates stay text when the YAML is read
(YAML's own date parsing raises raw errors on `2018-13-45`); the engine parses and names them.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from pipeline.defs.backtests.config import BacktestRequest, StrategyName, engine_config, strategy_name
from pipeline.universe import REPO_ROOT, Universe

REQUESTS_ENV = "CRYPTO4H_REQUESTS_DIR"
DEFAULT_REQUESTS_DIR = REPO_ROOT / "data" / "requests"
#: fields the engine checks one by one (so that every bad one is reported, not only the first)
ENGINE_FIELDS = ("start", "end", "window_hours", "shift_hours", "fee_bps", "slippage_bps", "max_positions",
                 "feature_timeframe", "warmup_bars", "sizing", "max_weight", "position_fraction", "compounding",
                 "initial_capital")  # fmt: skip
ENGINE_ERRORS = (ValueError, TypeError, OverflowError)
#: what a request file may ask for: `kind: backtest` (default, adhoc_backtest) or `kind: sweep` (parameter_sweep)
KINDS = ("backtest", "sweep")


class RequestSpecError(ValueError):
    """A request file is not a valid backtest request; the message lists everything to fix."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class _TextDatesLoader(yaml.SafeLoader):
    """Safe YAML without implicit timestamps: `2018-13-45` stays a string for the engine to judge."""


_TextDatesLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def requests_dir() -> Path:
    return Path(os.environ.get(REQUESTS_ENV) or DEFAULT_REQUESTS_DIR).expanduser()


def build_engine_objects(req: BacktestRequest, uni: Universe) -> tuple[Any, Any, list[str]]:
    """(strategy, WalkForwardConfig, symbols) of a request; ValueError with a message for the user."""
    from engine.strategies import get_strategy

    strategy = get_strategy(strategy_name(req.strategy), dict(req.params))
    try:
        cfg = engine_config(req)
    except (TypeError, OverflowError) as exc:
        raise ValueError(f"invalid walk-forward settings: {exc}") from exc
    symbols = list(req.universe) or list(uni.symbols)
    unknown = sorted(set(symbols) - set(uni.symbols))
    if unknown:
        raise ValueError(f"symbols {unknown} are not in universe {uni.name!r}; known: {list(uni.symbols)}")
    if len(set(symbols)) != len(symbols):
        raise ValueError(f"universe lists a symbol twice: {symbols}")
    return strategy, cfg, symbols


def _load(text: str | bytes) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_TextDatesLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise RequestSpecError(f"invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RequestSpecError("a request is a mapping, e.g. 'strategy: macd_rsi_confluence'")
    clean: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, datetime | date):
            v = v.isoformat()
        if k == "universe" and isinstance(v, str):
            v = [s.strip() for s in v.split(",") if s.strip()]
        clean[str(k)] = v
    return clean


#: engine fields judged together (a rule across them); every other engine field is judged on its own
FIELD_GROUPS = (("start", "end"), ("window_hours", "shift_hours"),
                ("sizing", "max_weight", "position_fraction", "max_positions", "compounding", "initial_capital"),
                ("fee_bps", "slippage_bps"))  # fmt: skip


def _group(name: str) -> tuple[str, ...]:
    return next((g for g in FIELD_GROUPS if name in g), (name,))


def _field_problems(clean: dict[str, Any], model: type[BacktestRequest] = BacktestRequest) -> list[str]:
    """Each field's type, then the engine's rules for each group of related fields (with the file's own
    values for the group, defaults elsewhere), then the whole file: every problem, no false alarm."""
    problems, typed = [], {}
    for name, value in clean.items():
        try:
            model(**{name: value})
        except Exception as exc:  # noqa: BLE001 - pydantic/dagster validation, reported as text
            problems.append(f"{name}: {_first_line(exc)}")
        else:
            typed[name] = value
    engine = {k: v for k, v in typed.items() if k in ENGINE_FIELDS}
    for group in dict.fromkeys(_group(n) for n in engine):
        values = {k: engine[k] for k in group if k in engine}
        group_error = _engine_error(values)
        if group_error is None:
            continue
        alone = [f"{k}: {e}" for k in values if (e := _engine_error({k: values[k]})) is not None]
        problems += alone if len(values) > 1 and alone else [f"{', '.join(values)}: {group_error}"]
    if not problems:
        try:
            engine_config(BacktestRequest(**engine))
        except ENGINE_ERRORS as exc:  # a rule across groups
            problems.append(str(exc))
    return problems


def _engine_error(values: dict[str, Any]) -> str | None:
    try:
        engine_config(BacktestRequest(**values))
    except ENGINE_ERRORS as exc:
        return str(exc)
    return None


def _strategy_and_symbol_problems(known: dict[str, Any], universe: Universe, check_params: bool) -> list[str]:
    from engine.strategies import get_strategy

    problems = []
    name = strategy_name(BacktestRequest().strategy) if "strategy" not in known else str(known["strategy"])
    params = known.get("params") or {}
    if check_params and isinstance(params, dict):
        try:
            get_strategy(name, params)
        except ValueError as exc:
            problems.append(f"params: {exc}")
    symbols = known.get("universe") or []
    if isinstance(symbols, list):
        unknown = sorted({str(s) for s in symbols} - set(universe.symbols))
        if unknown:
            problems.append(f"universe: symbols {unknown} are not in universe {universe.name!r}; known: "
                            f"{list(universe.symbols)}")  # fmt: skip
        if len(set(symbols)) != len(symbols):
            problems.append(f"universe: a symbol is listed twice: {symbols}")
    return problems


def _first_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("For further information", "1 validation error"))]
    return " ".join(useful[:2]) or type(exc).__name__


def parse_request(text: str | bytes, request_key: str, universe: Universe) -> BacktestRequest:
    """YAML text -> a validated `BacktestRequest`, or a `SweepRequest` for `kind: sweep` (engine-checked),
    or RequestSpecError listing every problem."""
    from pipeline.defs.sweeps.config import SweepRequest, validate_request

    clean = _load(text)
    kind = str(clean.pop("kind", "backtest"))
    if kind not in KINDS:
        raise RequestSpecError(f"unknown kind {kind!r}; valid kinds: {list(KINDS)}")
    model = SweepRequest if kind == "sweep" else BacktestRequest
    allowed = set(model.model_fields) - {"request_key"}
    problems = []
    unknown = sorted(set(clean) - allowed)
    if unknown:
        problems.append(f"unknown keys {unknown}; allowed: {sorted(allowed)}")
    known = {k: v for k, v in clean.items() if k in allowed}
    strategy_known = str(known.get("strategy", "")) in StrategyName.__members__ or "strategy" not in known
    if not strategy_known:
        problems.append(f"unknown strategy {known.pop('strategy')!r}; valid strategies: "
                        f"{sorted(StrategyName.__members__)}")  # fmt: skip
    problems += _field_problems(known, model)
    # parameters can only be checked against a known strategy (a sweep's grid is checked by the engine below)
    problems += _strategy_and_symbol_problems(known, universe, check_params=strategy_known and kind == "backtest")
    if problems:
        raise RequestSpecError(problems)
    req = model(**known, request_key=request_key)
    try:
        validate_request(req, universe) if kind == "sweep" else build_engine_objects(req, universe)
    except ENGINE_ERRORS as exc:
        raise RequestSpecError(str(exc)) from exc
    return req
