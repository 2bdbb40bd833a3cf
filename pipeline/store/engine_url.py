"""Database URL resolution and SQLAlchemy engine construction.

The URL comes from `CRYPTO4H_DB_URL`; without it the store is an embedded SQLite file at
`<repo root>/data/crypto4h.db`. SQLite connections run in WAL mode with a busy timeout, foreign keys on
and `synchronous=NORMAL`; transactions are real (the pysqlite driver's implicit transaction handling is
replaced by an explicit `BEGIN`, `BEGIN IMMEDIATE` for writes, so concurrent writers queue on the busy
timeout instead of failing on a lock upgrade). PostgreSQL uses `postgresql+psycopg2://`.

Passwords: no message, log line, repr or exception chain produced here shows one. A URL that does not
parse is never echoed (only its scheme, when it looks like one), an unencoded `@` in a password is
refused before anything connects (the part after it would otherwise be taken for the host and shown),
and driver messages are scrubbed of the URL's password.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url

ENV_VAR = "CRYPTO4H_DB_URL"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DB_PATH = REPO_ROOT / "data" / "crypto4h.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_MMAP_BYTES = 1 << 31  # SQLite caps it at its compile-time maximum (2 GiB by default)
#: connection execution option read by the SQLite `begin` hook: "DEFERRED" (default) or "IMMEDIATE"
SQLITE_BEGIN_OPTION = "crypto4h_sqlite_begin"
URL_SHAPE = (
    "dialect+driver://user:password@host:port/database (e.g. postgresql+psycopg2://me:pw@db:5432/crypto4h)"
)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+._-]{0,39})(?=[:/])")
_CREDENTIALS = re.compile(r"([A-Za-z][\w+.-]*://[^:/@\s]*:)[^\s]*@")


class DatabaseUrlError(ValueError):
    """The database URL cannot be used. The message says why and never contains the password."""


def _scheme(text: str) -> str:
    m = _SCHEME.match(text.strip())
    return m.group(1) if m else ""


def _problem(text: str) -> str | None:
    """What is wrong with a URL's shape, in words that never quote it, or None."""
    if "://" not in text:
        return "there is no '://' after the scheme (a ':' or a '/' is missing)"
    netloc = text.split("://", 1)[1].split("/", 1)[0]
    if netloc.count("@") > 1:
        return "more than one '@' before the host: write an '@' inside the password as %40"
    return None


def check_url(url: str, origin: str = "the database URL") -> URL:
    """Parse `url` or raise DatabaseUrlError naming `origin` (e.g. the env var) and the problem."""
    problem = _problem(url)
    parsed: URL | None = None
    if problem is None:
        try:
            parsed = make_url(url)
        except ValueError:  # also sa.exc.ArgumentError; int() of a bad port raises a plain ValueError
            problem = "it does not parse (is the port a number?)"
    if parsed is not None:
        if parsed.host and "@" in parsed.host:
            problem = "more than one '@' before the host: write an '@' inside the password as %40"
        elif parsed.port is not None and not 0 < parsed.port < 65536:
            problem = "the port must be between 1 and 65535"
    if problem is not None or parsed is None:
        scheme = _scheme(url)
        shown = f" (scheme {scheme!r}; the rest is not shown: it may hold a password)" if scheme else ""
        raise DatabaseUrlError(
            f"{origin} is not a valid database URL{shown}: {problem}; expected {URL_SHAPE}"
        )
    return parsed


def default_url() -> str:
    """The embedded default: a SQLite file in the project's data folder (created if missing)."""
    DEFAULT_DB_PATH.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_DB_PATH}"


def resolve_url(url: str | None = None) -> str:
    """Explicit URL, else `$CRYPTO4H_DB_URL`, else the default SQLite file.

    Bare `postgresql://` / `postgres://` URLs are pinned to the psycopg2 driver.
    """
    origin = "the database URL given" if url else f"${ENV_VAR}"
    url = url or os.environ.get(ENV_VAR) or default_url()
    parsed = check_url(url, origin if url != default_url() else "the default database URL")
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
    parsed = check_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        kwargs.setdefault("connect_args", {}).setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    elif backend == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
    else:
        raise DatabaseUrlError(
            f"unsupported database {backend!r} in {safe_url(url)}: use sqlite or postgresql+psycopg2"
        )
    engine = sa.create_engine(url, **kwargs)
    if backend == "sqlite":
        _install_sqlite_hooks(engine)
    return engine


def safe_url(url: str) -> str:
    """`url` for messages and logs with the password hidden. Text that does not parse as a URL is not
    shown (only its scheme), unless it is prose such as "the default SQLite file" (words, no ':', '/'
    or '@'); a lone word could be a pasted password and is hidden too."""
    if " " in url.strip() and not any(c in url for c in ":/@"):
        return url
    try:
        parsed = check_url(url)
    except DatabaseUrlError:
        scheme = _scheme(url)
        return f"<invalid database URL{f' starting {scheme!r}' if scheme else ''}, not shown>"
    return parsed.render_as_string(hide_password=True)


def describe_db_error(exc: BaseException, url: str | None = None) -> str:
    """A database error as one line for a terminal: the driver's own message, without SQLAlchemy's SQL
    echo and documentation link, and without any password (that of `url`, and any `user:pw@` text)."""
    orig = getattr(exc, "orig", None)
    text = " ".join(str(orig if orig is not None else exc).split())
    secrets = [url] if url else []
    if url:
        try:
            password = make_url(url).password
        except ValueError:
            password = None
        if password:
            secrets.append(str(password))
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return _CREDENTIALS.sub(r"\1***@", text)
