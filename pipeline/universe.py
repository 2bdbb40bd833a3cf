"""The research universe: which exchange, which data source, which symbols, since when.

It lives in a YAML file (env `CRYPTO4H_UNIVERSE`, default `config/universe.yaml`) because the symbol
list decides the static partition keys of `candles`: it must be known when the code location loads, and
a reviewed file is a better home for it than a resource field. Validation happens here, at load, so a
typo in the file fails with a message naming the file and the field rather than deep inside a run. That
includes the provider: it is built once from `provider.options` (no network), so an unknown or bad
option fails `dagster definitions validate` and the code-location load, not the first run.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from engine.data import PROVIDER_KINDS, ProviderError, make_provider
from engine.timeframes import to_utc

ENV_VAR = "CRYPTO4H_UNIVERSE"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_UNIVERSE_PATH = REPO_ROOT / "config" / "universe.yaml"

_SYMBOL_PART = re.compile(r"^[A-Z0-9][A-Z0-9._]*$")
_ALLOWED_KEYS = {"name", "description", "exchange", "provider", "symbols", "start", "end", "checks"}
_CHECK_KEYS = {"freshness_minutes", "max_missing_share", "max_jump", "scope_days"}


class UniverseConfigError(ValueError):
    """The universe file is wrong; the message names the file and the field to fix."""


def symbol_to_key(symbol: str) -> str:
    """`ETH/BTC` -> `ETH-BTC`: Dagster partition keys cannot contain `/`."""
    return symbol.replace("/", "-")


def key_to_symbol(key: str) -> str:
    """`ETH-BTC` -> `ETH/BTC` (symbols never contain `-`, so this is exact)."""
    return key.replace("-", "/")


@dataclass(frozen=True)
class CheckSettings:
    """Thresholds of the candle asset checks (see `pipeline.checks`)."""

    freshness_minutes: int = 90
    max_missing_share: float = 0.25
    max_jump: float = 0.5
    scope_days: int = 2


@dataclass(frozen=True)
class Universe:
    """A validated universe file."""

    name: str
    exchange: str
    provider_kind: str
    provider_options: dict[str, Any]
    symbols: tuple[str, ...]
    start: date
    #: open-time end of a historical universe (exclusive); None = live, partitions run up to today
    end: pd.Timestamp | None = None
    description: str = ""
    checks: CheckSettings = field(default_factory=CheckSettings)
    source_path: Path | None = None

    @property
    def symbol_keys(self) -> list[str]:
        return [symbol_to_key(s) for s in self.symbols]

    @property
    def is_historical(self) -> bool:
        return self.end is not None

    @property
    def last_date(self) -> date | None:
        """Last partition date of a historical universe (the day holding the last candle)."""
        if self.end is None:
            return None
        return (self.end - pd.Timedelta(milliseconds=1)).date()

    def reference_time(self, now: pd.Timestamp | None = None) -> pd.Timestamp:
        """"Now" for freshness: the wall clock, or the end of a historical universe."""
        now = now if now is not None else pd.Timestamp.now(tz="UTC")
        return min(now, self.end) if self.end is not None else now


def _fail(path: Path | None, msg: str) -> UniverseConfigError:
    return UniverseConfigError(f"universe config {path or '<dict>'}: {msg}")


def _parse_symbol(raw: Any, path: Path | None) -> str:
    if not isinstance(raw, str):
        raise _fail(path, f"symbol {raw!r} must be a string like 'ETH/BTC'")
    parts = raw.split("/")
    if len(parts) != 2 or not all(parts):
        raise _fail(path, f"symbol {raw!r} must be BASE/QUOTE with exactly one '/', e.g. 'ETH/BTC'")
    for part in parts:
        if not _SYMBOL_PART.match(part):
            raise _fail(
                path,
                f"symbol {raw!r}: {part!r} may only hold upper-case letters, digits, '.' and '_' "
                "('-' is reserved for partition keys: ETH/BTC is stored as the key ETH-BTC)",
            )
    return raw


def _parse_date(raw: Any, path: Path | None, what: str) -> date:
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    try:
        return date.fromisoformat(str(raw))
    except ValueError as exc:
        raise _fail(path, f"{what} {raw!r} is not an ISO date (YYYY-MM-DD)") from exc


def _parse_end(raw: Any, path: Path | None) -> pd.Timestamp:
    try:
        return to_utc(raw, "end")
    except ValueError as exc:
        raise _fail(path, f"end {raw!r} is not an ISO date or timestamp") from exc


def _substitute(value: Any) -> Any:
    """Expand `{sample_dir}` and `{repo}` in option strings so configs stay machine independent."""
    if isinstance(value, str) and "{" in value:
        subs = {"repo": str(REPO_ROOT)}
        if "{sample_dir}" in value:
            from engine.data.sample import SAMPLE_DIR

            subs["sample_dir"] = str(SAMPLE_DIR)
        try:
            return value.format(**subs)
        except (KeyError, IndexError, ValueError):
            return value
    if isinstance(value, dict):
        return {k: _substitute(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v) for v in value]
    return value


def check_provider_options(kind: str, options: dict[str, Any], path: Path | None = None) -> None:
    """Build the provider once (constructors do no network I/O) so bad options fail at load time.

    Raises UniverseConfigError naming the file, the provider kind and the option to fix.
    """
    key = (kind, json.dumps(options, sort_keys=True, default=str))
    if key in _CHECKED_PROVIDERS:
        return
    try:
        make_provider(kind, **options)
    except TypeError as exc:  # unknown or missing constructor argument
        bad = _UNEXPECTED.search(str(exc))
        what = f"unknown option {bad.group(1)!r}" if bad else str(exc).split(") ", 1)[-1]
        raise _fail(
            path, f"provider.options for kind {kind!r}: {what} (see the {kind} provider in engine/data)"
        ) from exc
    except (ValueError, ProviderError) as exc:
        raise _fail(path, f"provider.options for kind {kind!r} are rejected: {exc}") from exc
    _CHECKED_PROVIDERS.add(key)


_UNEXPECTED = re.compile(r"unexpected keyword argument '([^']+)'")
_CHECKED_PROVIDERS: set[tuple[str, str]] = set()


def universe_from_dict(data: Any, path: Path | None = None, *, check_provider: bool = True) -> Universe:
    """Validate a parsed universe document; every error names the field to fix.

    `check_provider` builds the provider once to validate its options (see `check_provider_options`).
    """
    if not isinstance(data, dict):
        raise _fail(path, "expected a mapping with exchange, provider, symbols and start")
    unknown = sorted(set(data) - _ALLOWED_KEYS)
    if unknown:
        raise _fail(path, f"unknown keys {unknown}; allowed: {sorted(_ALLOWED_KEYS)}")
    exchange = data.get("exchange")
    if not isinstance(exchange, str) or not exchange.strip():
        raise _fail(path, "'exchange' is required (the exchange name candles are stored under)")
    provider = data.get("provider")
    if isinstance(provider, str):
        provider = {"kind": provider}
    if not isinstance(provider, dict) or "kind" not in provider:
        raise _fail(path, f"'provider' must be a mapping with 'kind' (one of {list(PROVIDER_KINDS)})")
    kind = provider["kind"]
    if kind not in PROVIDER_KINDS:
        raise _fail(path, f"unknown provider kind {kind!r}; valid kinds: {list(PROVIDER_KINDS)}")
    options = provider.get("options") or {}
    if not isinstance(options, dict):
        raise _fail(path, "'provider.options' must be a mapping")
    extra = sorted(set(provider) - {"kind", "options"})
    if extra:
        raise _fail(path, f"unknown provider keys {extra}; use 'kind' and 'options'")
    raw_symbols = data.get("symbols")
    if not isinstance(raw_symbols, list) or not raw_symbols:
        raise _fail(path, "'symbols' must be a non-empty list like ['ETH/BTC', 'LTC/BTC']")
    symbols = tuple(_parse_symbol(s, path) for s in raw_symbols)
    dupes = sorted({s for s in symbols if symbols.count(s) > 1})
    if dupes:
        raise _fail(path, f"duplicate symbols {dupes}")
    if "start" not in data:
        raise _fail(path, "'start' (first partition date, YYYY-MM-DD) is required")
    start = _parse_date(data["start"], path, "start")
    end = _parse_end(data["end"], path) if data.get("end") is not None else None
    if end is not None and end.date() < start:
        raise _fail(path, f"end {end} is before start {start}")
    checks_raw = data.get("checks") or {}
    if not isinstance(checks_raw, dict) or set(checks_raw) - _CHECK_KEYS:
        raise _fail(path, f"'checks' accepts only {sorted(_CHECK_KEYS)}")
    try:
        checks = CheckSettings(**{k: type(getattr(CheckSettings, k))(v) for k, v in checks_raw.items()})
    except (TypeError, ValueError) as exc:
        raise _fail(path, f"bad 'checks' value: {exc}") from exc
    options = _substitute(options)
    if check_provider:
        check_provider_options(kind, options, path)
    return Universe(
        name=str(data.get("name") or (path.stem if path else "universe")),
        description=str(data.get("description") or ""),
        exchange=exchange.strip(),
        provider_kind=kind,
        provider_options=options,
        symbols=symbols,
        start=start,
        end=end,
        checks=checks,
        source_path=path,
    )


def universe_path(path: str | os.PathLike[str] | None = None) -> Path:
    """Explicit path, else `$CRYPTO4H_UNIVERSE`, else `config/universe.yaml` in the repo."""
    raw = path or os.environ.get(ENV_VAR) or DEFAULT_UNIVERSE_PATH
    p = Path(raw).expanduser()
    if not p.is_absolute():
        p = (Path.cwd() / p) if (Path.cwd() / p).exists() else (REPO_ROOT / p)
    return p.resolve()


def load_universe(path: str | os.PathLike[str] | None = None) -> Universe:
    """Read and validate a universe file."""
    p = universe_path(path)
    if not p.is_file():
        raise UniverseConfigError(f"universe config {p} not found (set {ENV_VAR} or create the file)")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise _fail(p, f"invalid YAML: {exc}") from exc
    return universe_from_dict(data, p)


def utc_day_bounds(day: date) -> tuple[pd.Timestamp, pd.Timestamp]:
    """`[00:00, 24:00)` UTC of a calendar day."""
    start = pd.Timestamp(datetime(day.year, day.month, day.day, tzinfo=UTC))
    return start, start + pd.Timedelta(days=1)
