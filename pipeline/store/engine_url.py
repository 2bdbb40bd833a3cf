"""Database URL resolution and SQLAlchemy engine construction.

The URL comes from `CRYPTO4H_DB_URL`; without it the store is an embedded SQLite file at
`<repo root>/data/crypto4h.db`. SQLite connections run in WAL mode with a busy timeout, foreign keys on
and `synchronous=NORMAL`; transactions are real (the pysqlite driver's implicit transaction handling is
replaced by an explicit `BEGIN`, `BEGIN IMMEDIATE` for writes, so concurrent writers queue on the busy
timeout instead of failing on a lock upgrade). PostgreSQL uses `postgresql+psycopg2://`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

ENV_VAR = "CRYPTO4H_DB_URL"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DB_PATH = REPO_ROOT / "data" / "crypto4h.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_MMAP_BYTES = 1 << 31  # SQLite caps it at its compile-time maximum (2 GiB by default)
#: connection execution option read by the SQLite `begin` hook: "DEFERRED" (default) or "IMMEDIATE"
SQLITE_BEGIN_OPTION = "crypto4h_sqlite_begin"


def default_url() -> str:
    """The embedded default: a SQLite file in the project's data folder (created if missing)."""
    DEFAULT_DB_PATH.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_DB_PATH}"


def resolve_url(url: str | None = None) -> str:
    """Explicit URL, else `$CRYPTO4H_DB_URL`, else the default SQLite file.

    Bare `postgresql://` / `postgres://` URLs are pinned to the psycopg2 driver.
    """
    url = url or os.environ.get(ENV_VAR) or default_url()
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
        url = parsed.render_as_string(hide_password=False)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return url


def _install_sqlite_hooks(engine: Engine) -> None:
    """WAL, busy timeout, foreign keys and explicit transactions for every pooled SQLite connection."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.execute("PRAGMA temp_store = MEMORY")
            cur.execute("PRAGMA cache_size = -65536")  # 64 MiB page cache, allocated on demand
            cur.execute(f"PRAGMA mmap_size = {SQLITE_MMAP_BYTES}")  # reads straight from the page cache
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for `url` with the store's dialect-specific connection settings."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        kwargs.setdefault("connect_args", {}).setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    elif backend == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
    else:
        raise ValueError(f"unsupported database {backend!r} in {parsed!r}: use sqlite or postgresql+psycopg2")
    engine = sa.create_engine(url, **kwargs)
    if backend == "sqlite":
        _install_sqlite_hooks(engine)
    return engine


def safe_url(url: str) -> str:
    """`url` for messages and logs: the password hidden (the text itself when it does not parse)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def describe_db_error(exc: BaseException) -> str:
    """A database error as one line for a terminal: the driver's own message, without SQLAlchemy's SQL
    echo and documentation link."""
    orig = getattr(exc, "orig", None)
    return " ".join(str(orig if orig is not None else exc).split())
