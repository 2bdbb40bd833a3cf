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
    off by an operator stays off when the code's registry is synced again.
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
        if name in existing and "active" not in rows_by_name[name]:
            new["active"] = existing[name]["active"]
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
