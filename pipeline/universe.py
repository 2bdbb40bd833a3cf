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
import math
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
from pipeline.store.models import EXCHANGE_MAX_CHARS, SYMBOL_MAX_CHARS

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


#: (kind, lowest, highest, what it means) per check field; out-of-range limits refuse all data or none
_CHECK_RULES: dict[str, tuple[type, float, float, str]] = {
    "freshness_minutes": (int, 5, 10 * 24 * 60, "minutes since the newest candle closed (a 5m candle "
                          "closes every 5 minutes, so at least 5)"),
    "max_missing_share": (float, 0.0, 1.0, "a share of the day's 5m slots (0.25 = 25%)"),
    "max_jump": (float, 0.0, 100.0, "a 5m close-to-close move as a fraction (0.5 = 50%), above 0"),
    "scope_days": (int, 1, 3660, "days the checks look back, at least 1"),
}  # fmt: skip


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
    #: first open time wanted when `start` is a timestamp (e.g. the first candle of a file); None =
    #: midnight UTC of `start`
    data_start: pd.Timestamp | None = None

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

    def partition_bounds(self, day: date) -> tuple[pd.Timestamp, pd.Timestamp]:
        """Open-time range `[start, end)` of a daily partition, clipped to the universe's data range
        (`data_start`, `end`): what ingestion should ask the provider for and judge complete."""
        start, end = utc_day_bounds(day)
        if self.data_start is not None:
            start = max(start, self.data_start)
        if self.end is not None:
            end = min(end, self.end)
        return start, max(start, end)

    def reference_time(self, now: pd.Timestamp | None = None) -> pd.Timestamp:
        """ "Now" for freshness: the wall clock, or the end of a historical universe."""
        now = now if now is not None else pd.Timestamp.now(tz="UTC")
        return min(now, self.end) if self.end is not None else now


def _fail(path: Path | None, msg: str) -> UniverseConfigError:
    return UniverseConfigError(f"universe config {path or '<dict>'}: {msg}")


def _parse_symbol(raw: Any, path: Path | None) -> str:
    if not isinstance(raw, str):
        raise _fail(path, f"symbol {raw!r} must be a string like 'ETH/BTC'")
    if len(raw) > SYMBOL_MAX_CHARS:
        raise _fail(path, f"symbol {raw[:20]!r}... has {len(raw)} characters; the store holds at most "
                          f"{SYMBOL_MAX_CHARS}")  # fmt: skip
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


def _parse_start(raw: Any, path: Path | None) -> tuple[date, pd.Timestamp | None]:
    """`start`: a date (first partition) or a UTC timestamp (first partition = its day, and the first
    open time wanted = the timestamp itself)."""
    if isinstance(raw, date) and not isinstance(raw, datetime):
        return raw, None
    text = str(raw).strip()
    try:
        return date.fromisoformat(text), None
    except ValueError:
        pass
    try:
        exact = to_utc(raw, "start")
    except (ValueError, TypeError):
        raise _fail(path, f"start {raw!r} is not an ISO date (YYYY-MM-DD) or UTC timestamp") from None
    return exact.date(), (exact if exact != exact.normalize() else None)


def _parse_checks(raw: Any, path: Path | None) -> CheckSettings:
    """Every check limit a number in its documented range (a wrong limit refuses all data, or none)."""
    if raw is None:
        return CheckSettings()
    if not isinstance(raw, dict) or set(raw) - _CHECK_KEYS:
        raise _fail(path, f"'checks' accepts only {sorted(_CHECK_KEYS)}")
    values = {}
    for key, value in raw.items():
        kind, lo, hi, meaning = _CHECK_RULES[key]
        number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        whole = number and float(value) == int(value)
        if not number or (kind is int and not whole):
            want = "a whole number" if kind is int else "a number"
            raise _fail(path, f"checks.{key} must be {want} ({meaning}), got {value!r}")
        bad_low = value <= lo if key == "max_jump" else value < lo
        if bad_low or value > hi:
            rng = f"> {lo:g}" if key == "max_jump" else f">= {lo:g}"
            raise _fail(path, f"checks.{key} must be {rng} and <= {hi:g} ({meaning}), got {value!r}")
        values[key] = kind(value)
    return CheckSettings(**values)


def _parse_end(raw: Any, path: Path | None) -> pd.Timestamp:
    try:
        return to_utc(raw, "end")
    except (ValueError, TypeError):
        raise _fail(path, f"end {raw!r} is not an ISO date or timestamp") from None


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
    if len(exchange.strip()) > EXCHANGE_MAX_CHARS:
        raise _fail(path, f"'exchange' has {len(exchange.strip())} characters; the store holds at most "
                          f"{EXCHANGE_MAX_CHARS}")  # fmt: skip
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
    start, data_start = _parse_start(data["start"], path)
    end = _parse_end(data["end"], path) if data.get("end") is not None else None
    if end is not None and (end.date() < start or (data_start is not None and end <= data_start)):
        raise _fail(path, f"end {end} is before start {data_start or start}")
    checks = _parse_checks(data.get("checks"), path)
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
        data_start=data_start,
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
        data = yaml.load(p.read_text(), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise _fail(p, f"invalid YAML: {exc}") from exc
    return universe_from_dict(data, p)


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves dates and timestamps as text, so a bad date (2024-02-30) is reported by
    the field parsers with the file and field name instead of escaping from PyYAML as a bare error."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def utc_day_bounds(day: date) -> tuple[pd.Timestamp, pd.Timestamp]:
    """`[00:00, 24:00)` UTC of a calendar day."""
    start = pd.Timestamp(datetime(day.year, day.month, day.day, tzinfo=UTC))
    return start, start + pd.Timedelta(days=1)
