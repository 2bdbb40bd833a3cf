"""Database fixtures: the store tests run against SQLite (a temp file) and the real PostgreSQL server.

PostgreSQL: one throwaway database per test session (created from `$CRYPTO4H_TEST_PG_URL`, default the
local `test` database, with AUTOCOMMIT; dropped at the end) and a fresh schema per test inside it. When the
server is unreachable the PostgreSQL cases are skipped, unless `REQUIRE_POSTGRES=1` (CI), which fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from pipeline.store import Store

PG_ADMIN_URL = os.environ.get("CRYPTO4H_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def _require_postgres() -> bool:
    return os.environ.get("REQUIRE_POSTGRES", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """URL of a fresh, uniquely named PostgreSQL database for this session (dropped afterwards)."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    name = f"crypto4h_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        msg = f"PostgreSQL unreachable at {sa.make_url(PG_ADMIN_URL)!r}: {exc.orig}"
        if _require_postgres():
            pytest.fail(f"REQUIRE_POSTGRES=1 but {msg}", pytrace=False)
        pytest.skip(msg)
    try:
        yield sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def postgres_url(pg_database_url: str) -> Iterator[str]:
    """A fresh schema per test in the session database, selected through the connection's search_path."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(pg_database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = sa.make_url(pg_database_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A SQLite file in the test's temp folder."""
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each backend."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def empty_store(db_url: str) -> Iterator[Store]:
    """A store on an empty (not migrated) database."""
    store = Store(db_url)
    yield store
    store.dispose()


@pytest.fixture
def store(empty_store: Store) -> Store:
    """A migrated store."""
    empty_store.migrate()
    return empty_store
