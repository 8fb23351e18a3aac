"""Shared fixtures: one real embedded PostgreSQL per test run, a fresh database per test module.

The server's data lives in <tmp>/geocredit-tests (kept between runs, so only the first run pays
for initdb); a run that started the server stops it at the end. Each run migrates a template
database once and clones it for every module that asks. GEOCREDIT_TEST_DATABASE_URL points the
tests at another server instead.
"""

import itertools
import logging
import os
import tempfile
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from registry import db, embedded, migrate

_counter = itertools.count()


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_admin_url():
    external = os.environ.get("GEOCREDIT_TEST_DATABASE_URL")
    if external:
        yield external
        return
    data_dir = Path(tempfile.gettempdir()) / "geocredit-tests"
    started = embedded.running_url(data_dir) is None
    yield embedded.start(data_dir)
    if started:
        embedded.stop(data_dir)


@pytest.fixture(scope="session", autouse=True)
def _logging_restored():
    """Handlers that tests add (an app configures logging) write to pytest's capture streams,
    which are closed at exit: remove them, so late log records go nowhere instead of failing."""
    root = logging.getLogger()
    before = list(root.handlers)
    yield
    for handler in root.handlers[:]:
        if handler not in before:
            root.removeHandler(handler)


def _admin(url: str) -> psycopg.Connection:
    return psycopg.connect(db.libpq_url(_with_database(url, "postgres")), autocommit=True)


@pytest.fixture(scope="session")
def template_db(pg_admin_url):
    name = f"gc_template_{os.getpid()}"
    with _admin(pg_admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(pg_admin_url, name)
    migrate.upgrade(url)
    yield name
    with _admin(pg_admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def new_database(admin_url: str, template: str | None) -> str:
    name = f"gc_test_{os.getpid()}_{next(_counter)}"
    with _admin(admin_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return _with_database(admin_url, name)


def drop_database(admin_url: str, url: str) -> None:
    with _admin(admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


@pytest.fixture(scope="module")
def db_url(pg_admin_url, template_db):
    """A database at head, private to the test module."""
    url = new_database(pg_admin_url, template_db)
    yield url
    drop_database(pg_admin_url, url)


@pytest.fixture
def empty_db_url(pg_admin_url):
    """A database with no schema at all, private to the test."""
    url = new_database(pg_admin_url, None)
    yield url
    drop_database(pg_admin_url, url)


@pytest.fixture(scope="module")
def engine(db_url):
    eng = db.make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
async def session_factory(db_url):
    eng = db.make_async_engine(db_url, pool_size=2)
    yield db.session_factory(eng)
    await eng.dispose()


def scalar(engine: sa.Engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()
