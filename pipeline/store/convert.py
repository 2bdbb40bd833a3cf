"""Value conversions between pandas/numpy and SQL: epoch-ms times, NaN/NaT -> NULL, JSON-safe objects."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import PurePath
from typing import Any

import numpy as np
import pandas as pd


def to_ms(value: Any) -> int | None:
    """A point in time as UTC epoch milliseconds; None/NaT -> None.

    Integers are taken as epoch ms already; naive datetimes and strings are read as UTC.
    """
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, bool):
        raise TypeError(f"not a point in time: {value!r}")
    if isinstance(value, int | np.integer):
        return int(value)
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)


def series_to_ms(values: pd.Series) -> list[int | None]:
    """A column of times (tz-aware, naive-as-UTC, epoch-ms ints or objects) as epoch ms with None."""
    s = pd.Series(values)
    if pd.api.types.is_integer_dtype(s.dtype):
        return [int(v) for v in s.to_numpy()]
    if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(s.dtype):
        naive = s.dt.tz_convert("UTC").dt.tz_localize(None) if s.dt.tz is not None else s
        mask = naive.isna().to_numpy()
        ints = naive.to_numpy(dtype="datetime64[ms]").astype(np.int64)
        return [None if m else int(v) for v, m in zip(ints, mask, strict=True)]
    return [to_ms(v) for v in s.tolist()]


def ms_to_timestamps(values: Iterable[int | None]) -> pd.Series:
    """Epoch ms (with None) -> datetime64[ns, UTC] series (with NaT)."""
    arr = pd.array(list(values), dtype="Int64")
    return pd.Series(pd.to_datetime(arr, unit="ms", utc=True), dtype="datetime64[ns, UTC]")


def to_float(value: Any) -> float | None:
    """A numeric scalar as a Python float; None/NaN/NaT/NA -> None (infinities are kept)."""
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError(f"expected a number, got the string {value!r}")
    if pd.isna(value):
        return None
    return float(value)


def to_int(value: Any) -> int | None:
    """An integral scalar as a Python int; None/NaN -> None."""
    f = to_float(value)
    if f is None:
        return None
    if not float(f).is_integer():
        raise ValueError(f"expected an integer, got {value!r}")
    return int(f)


def to_bool(value: Any, default: bool = False) -> bool:
    """A truthy scalar as bool; None/NaN -> `default`."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return default
    return bool(value)


def to_text(value: Any) -> str | None:
    """A scalar as text; a list/tuple/array is joined with ', '; None/NaN -> None."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple | set | np.ndarray | pd.Series):
        return ", ".join(str(v) for v in value)
    if pd.isna(value):
        return None
    return str(value)


def json_safe(obj: Any) -> Any:
    """Recursively turn `obj` into plain JSON (NaN/inf/NaT -> null, numpy -> Python, times -> ISO)."""
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating | Decimal):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, pd.Timestamp | dt.datetime | dt.date | dt.time):
        return None if pd.isna(obj) else obj.isoformat()
    if isinstance(obj, pd.Timedelta | dt.timedelta):
        return None if pd.isna(obj) else pd.Timedelta(obj).isoformat()
    if isinstance(obj, enum.Enum):
        return json_safe(obj.value)
    if isinstance(obj, PurePath):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return json_safe(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, pd.Series):
        return json_safe(obj.tolist())
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, list | tuple | set | frozenset):
        items = sorted(obj, key=str) if isinstance(obj, set | frozenset) else obj
        return [json_safe(v) for v in items]
    if obj is pd.NaT or obj is pd.NA:
        return None
    return str(obj)


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float | None]:
    """Flatten nested metric dicts/lists to dotted names with float-or-None values."""
    out: dict[str, float | None] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_metrics(value, f"{name}."))
        elif isinstance(value, list | tuple | np.ndarray):
            out.update(flatten_metrics({str(i): v for i, v in enumerate(value)}, f"{name}."))
        else:
            try:
                out[name] = to_float(value)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"metric {name!r} must be a number or None, got {value!r}") from exc
    return out


# --- columns read back from result tables ---------------------------------------------------------


def float_list(s: pd.Series) -> list[float | None]:
    if pd.api.types.is_float_dtype(s.dtype) or pd.api.types.is_integer_dtype(s.dtype):
        arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
        return [None if np.isnan(v) else float(v) for v in arr]
    return [to_float(v) for v in s.tolist()]


def column_or_none(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name] if name in df.columns else pd.Series([None] * len(df), index=df.index, dtype=object)


def utc_or_none(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def utc_series(values: list[Any]) -> pd.Series:
    return pd.Series(pd.to_datetime(pd.Series(values, dtype=object), utc=True), dtype="datetime64[ns, UTC]")


def int_column(values: list[Any]) -> pd.Series:
    """int64 without nulls, float64 with NaN otherwise (what pandas itself would give)."""
    if any(v is None for v in values):
        return pd.Series([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return pd.Series(values, dtype=np.int64)


def float_column(values: list[Any]) -> pd.Series:
    return pd.Series([np.nan if v is None else v for v in values], dtype=np.float64)


def features_frame(features: list[Any], n: int) -> pd.DataFrame:
    records = [f if isinstance(f, dict) else {} for f in features]
    keys = list(dict.fromkeys(k for r in records for k in r))
    if not keys:
        return pd.DataFrame(index=range(n))
    data = {}
    for k in keys:
        vals = [r.get(k) for r in records]
        numeric = all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in vals)
        data[k] = float_column(vals) if numeric else pd.Series(vals, dtype=object)
    return pd.DataFrame(data)


def now() -> datetime:
    """The current time, tz-aware UTC."""
    return datetime.now(UTC)
