"""The strategy registry table: names, descriptions, parameters and the operator's active flag."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from pipeline.store.convert import (
    json_safe,
    now,
    to_bool,
    to_text,
    utc_or_none,
)
from pipeline.store.models import Strategy

strategies_t = Strategy.__table__


def sync_strategies(conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Make the registry match `rows`: insert new, update changed, deactivate the ones not listed.

    Rows are never deleted (runs refer to strategies by name); `updated_at` moves only on a change. A row
    without an `active` key keeps the stored flag (new strategies start active), so a strategy switched
    off by an operator stays off when the code's registry is synced again. Likewise a row may give
    `defaults` instead of `parameters`: the stored values the operator set are kept for every parameter
    that still exists, new parameters get their default, removed ones are dropped.
    """
    wanted: dict[str, dict[str, Any]] = {}
    rows_by_name: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        name = row.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"strategy row without a name: {row!r}")
        if name in wanted:
            raise ValueError(f"strategy {name!r} listed twice")
        rows_by_name[name] = row
        wanted[name] = {
            "name": name,
            "description": to_text(row.get("description")) or "",
            "parameters": json_safe(row.get("parameters") or {}),
            "active": to_bool(row.get("active"), default=True),
        }
    existing = {r["name"]: dict(r) for r in conn.execute(sa.select(strategies_t)).mappings()}
    for name, new in wanted.items():
        row = rows_by_name[name]
        if name in existing and "active" not in row:
            new["active"] = existing[name]["active"]
        if "parameters" not in row and "defaults" in row:
            stored = (existing[name]["parameters"] or {}) if name in existing else {}
            defaults = json_safe(row["defaults"] or {})
            new["parameters"] = {k: stored.get(k, v) for k, v in defaults.items()}
    stamp = now()
    for name, new in wanted.items():
        old = existing.get(name)
        if old is None:
            conn.execute(strategies_t.insert().values(**new, updated_at=stamp))
        elif any(old[k] != new[k] for k in ("description", "parameters", "active")):
            conn.execute(
                strategies_t.update().where(strategies_t.c.name == name).values(**new, updated_at=stamp)
            )
    gone = [n for n, old in existing.items() if n not in wanted and old["active"]]
    if gone:
        conn.execute(
            strategies_t.update().where(strategies_t.c.name.in_(gone)).values(active=False, updated_at=stamp)
        )


def active_strategies(conn: sa.Connection) -> list[dict[str, Any]]:
    """Active strategies as dicts (name, description, parameters, active, updated_at), by name."""
    query = sa.select(strategies_t).where(strategies_t.c.active.is_(True)).order_by(strategies_t.c.name)
    out = []
    for r in conn.execute(query).mappings():
        row = dict(r)
        row["updated_at"] = utc_or_none(row["updated_at"])
        row["parameters"] = row["parameters"] or {}
        out.append(row)
    return out


def set_strategy(
    conn: sa.Connection, name: str, *, active: bool | None = None, parameters: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The operator's switch: turn a registered strategy on or off and/or set its parameters (already
    validated by the engine registry); returns the stored row."""
    row = conn.execute(sa.select(strategies_t).where(strategies_t.c.name == name)).mappings().first()
    if row is None:
        raise ValueError(f"strategy {name!r} is not in the registry")
    values: dict[str, Any] = {}
    if active is not None:
        values["active"] = bool(active)
    if parameters is not None:
        values["parameters"] = json_safe(dict(parameters))
    if values:
        conn.execute(strategies_t.update().where(strategies_t.c.name == name).values(**values, updated_at=now()))
    out = dict(conn.execute(sa.select(strategies_t).where(strategies_t.c.name == name)).mappings().one())
    out["updated_at"] = utc_or_none(out["updated_at"])
    return out


def all_strategies(conn: sa.Connection) -> list[dict[str, Any]]:
    """Every registry row (active or not), by name."""
    out = []
    for r in conn.execute(sa.select(strategies_t).order_by(strategies_t.c.name)).mappings():
        row = dict(r)
        row["updated_at"] = utc_or_none(row["updated_at"])
        row["parameters"] = row["parameters"] or {}
        out.append(row)
    return out
