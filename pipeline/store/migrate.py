"""Run the store's Alembic migrations programmatically (no alembic.ini needed).

`upgrade(engine)` brings a database to the head revision in one transaction; concurrent callers are
serialised (PostgreSQL advisory lock, SQLite `BEGIN IMMEDIATE`) and a database already at head is left
untouched. For developers: `python -m pipeline.store {upgrade,current,check,revision -m MSG}`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from pipeline.store.engine_url import (
    ENV_VAR,
    SQLITE_BEGIN_OPTION,
    describe_db_error,
    make_engine,
    resolve_url,
    safe_url,
)
from pipeline.store.models import metadata

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_PG_LOCK_KEY = 0x63727934  # "cry4": serialises concurrent migrations on one PostgreSQL database


def alembic_config(url: str | None = None) -> Config:
    """An Alembic Config built in code, pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    """The newest revision shipped with the code."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind `engine` to `revision`, idempotently, in one transaction."""
    cfg = alembic_config()
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)


def candle_partitions(conn: Connection) -> set[str]:
    """Names of the PostgreSQL partitions of `candles` (one per series; none on SQLite).

    They are data, not schema: created by the store when a series is first written, so schema
    comparisons and autogenerate skip them.
    """
    if conn.dialect.name != "postgresql":
        return set()
    rows = conn.exec_driver_sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass('candles')"
    )
    return {r[0] for r in rows}


def include_name_filter(conn: Connection) -> Callable[[str | None, str, Mapping], bool]:
    """An Alembic `include_name` hook that leaves the candle partitions out of comparisons."""
    partitions = candle_partitions(conn)

    def include_name(name: str | None, type_: str, _parent_names: Mapping) -> bool:
        return not (type_ == "table" and name in partitions)

    return include_name


def schema_diff(engine: Engine) -> list:
    """Differences between the models and the live database (empty when migrations match the models)."""
    with engine.connect() as conn:
        opts = {"compare_type": True, "include_name": include_name_filter(conn)}
        ctx = MigrationContext.configure(conn, opts=opts)
        return compare_metadata(ctx, metadata)


def main(argv: list[str] | None = None) -> None:
    """Small developer CLI around the programmatic config; a database that cannot be used is reported in
    one line (exit code 2), not as a traceback."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.store")
    parser.add_argument("action", choices=["upgrade", "current", "check", "revision"])
    parser.add_argument("-m", "--message", default="schema change")
    parser.add_argument("--url", default=None, help="database URL (default: $CRYPTO4H_DB_URL / SQLite file)")
    args = parser.parse_args(argv)
    raw = args.url or os.environ.get(ENV_VAR) or "the default SQLite file"
    try:
        url = resolve_url(args.url)
        if args.action == "revision":
            command.revision(alembic_config(url), message=args.message, autogenerate=True)
            return
        engine = make_engine(url)
        try:
            if args.action == "upgrade":
                upgrade(engine)
            elif args.action == "check":
                diff = schema_diff(engine)
                print("\n".join(map(str, diff)) or "models and database agree")
                if diff:
                    raise SystemExit(1)
            print(f"{safe_url(url)}: at {current_revision(engine)} (head {head_revision()})")
        finally:
            engine.dispose()
    except (SQLAlchemyError, ValueError) as exc:
        print(f"error: cannot use the database {safe_url(raw)}: {describe_db_error(exc)}", file=sys.stderr)
        raise SystemExit(2) from None
