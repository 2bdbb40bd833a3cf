"""No error message, repr, log line or exception chain produced for a database URL shows its password,
whatever is wrong with the URL (issue: a mistyped URL used to be echoed whole)."""

from __future__ import annotations

import traceback

import pytest
import sqlalchemy as sa

from pipeline.store import StoreOpenError, open_store
from pipeline.store.engine_url import (
    ENV_VAR,
    DatabaseUrlError,
    describe_db_error,
    make_engine,
    resolve_url,
    safe_url,
)
from pipeline.store.migrate import main as store_cli

SECRET = "s3cr3tPa55"
MALFORMED = {
    "missing ':' after the scheme": f"postgresql+psycopg2//alice:{SECRET}@db.example:5432/crypto4h",
    "'@' in the password": f"postgresql+psycopg2://alice:{SECRET[:4]}@{SECRET[4:]}@db.example:5432/crypto4h",
    "bad port": f"postgresql+psycopg2://alice:{SECRET}@db.example:54x2/crypto4h",
    "port out of range": f"postgresql+psycopg2://alice:{SECRET}@db.example:99999/crypto4h",
    "unknown scheme": f"mysql://alice:{SECRET}@db.example/crypto4h",
    "no scheme at all": f"alice:{SECRET}@db.example/crypto4h",
    "a lone password": SECRET,
}
HINTS = {
    "missing ':' after the scheme": "no '://' after the scheme",
    "'@' in the password": "write an '@' inside the password as %40",
    "bad port": "is the port a number?",
    "port out of range": "between 1 and 65535",
    "unknown scheme": "unsupported database 'mysql'",
    "no scheme at all": "no '://' after the scheme",
    "a lone password": "no '://' after the scheme",
}


def leaks(exc: BaseException) -> list[str]:
    """Every text a user could see for `exc`: message, repr and the formatted chain."""
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    seen = exc
    while seen is not None:  # also any chained exception object, printed or not
        texts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    pieces = {SECRET, SECRET[:4] + "@", "@" + SECRET[4:], SECRET[4:]}
    return [t for t in texts if any(p in t for p in pieces)]


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_urls_never_show_the_password(case, monkeypatch):
    url = MALFORMED[case]
    assert SECRET not in safe_url(url) and SECRET[4:] not in safe_url(url)
    for build in (lambda: make_engine(resolve_url(url)), lambda: make_engine(url)):
        with pytest.raises(DatabaseUrlError) as err:
            build()
        assert HINTS[case] in str(err.value)
        assert not leaks(err.value), leaks(err.value)
    with pytest.raises(StoreOpenError) as err:
        open_store(url)
    assert not leaks(err.value) and HINTS[case] in str(err.value)
    monkeypatch.setenv(ENV_VAR, url)
    with pytest.raises(StoreOpenError) as err:
        open_store()
    assert not leaks(err.value)


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_the_store_cli_never_prints_the_password(case, capsys):
    with pytest.raises(SystemExit) as exit_:
        store_cli(["current", "--url", MALFORMED[case]])
    assert exit_.value.code == 2
    out = capsys.readouterr()
    assert SECRET not in out.err + out.out and SECRET[4:] not in out.err + out.out
    assert "error: cannot use the database" in out.err and HINTS[case] in out.err


def test_env_var_origin_is_named(monkeypatch):
    monkeypatch.setenv(ENV_VAR, MALFORMED["missing ':' after the scheme"])
    with pytest.raises(
        DatabaseUrlError, match=r"^\$CRYPTO4H_DB_URL is not a valid database URL \(scheme 'postgresql"
    ):
        resolve_url(None)


def test_an_unreachable_server_is_reported_without_the_password():
    url = f"postgresql+psycopg2://alice:{SECRET}@127.0.0.1:1/crypto4h?connect_timeout=2"
    with pytest.raises(StoreOpenError) as err:
        open_store(url)
    assert "postgresql+psycopg2://alice:***@127.0.0.1:1/crypto4h" in str(err.value)
    assert not leaks(err.value)


def test_driver_messages_are_scrubbed():
    url = f"postgresql+psycopg2://alice:{SECRET}@db/x"
    exc = sa.exc.OperationalError("SELECT 1", {}, RuntimeError(f"could not connect to {url} (pw {SECRET})"))
    text = describe_db_error(exc, url)
    assert SECRET not in text and "could not connect to" in text
    assert SECRET not in describe_db_error(RuntimeError(f"see postgresql://bob:{SECRET}@h/db and more"))


def test_valid_urls_still_work_and_prose_is_kept():
    assert resolve_url("postgresql://u:p@db:5432/x") == "postgresql+psycopg2://u:p@db:5432/x"
    assert resolve_url("postgresql://u:p%40ss@db/x") == "postgresql+psycopg2://u:p%40ss@db/x"
    assert safe_url("postgresql+psycopg2://u:pw@db/x") == "postgresql+psycopg2://u:***@db/x"
    assert safe_url("the default SQLite file") == "the default SQLite file"
