"""Fixtures of the API tests: one database and one started `geocredit api` for the whole
session (each module files its own companies under its own credit codes), and a token per role."""

import pytest
import sqlalchemy as sa

from registry import db
from registry.auth import new_token, token_hash
from registry.vocabulary import Role
from tests.api.support import GraphQL, Server
from tests.conftest import drop_database, new_database


def make_token(engine: sa.Engine, role: Role | str, name: str) -> str:
    token = new_token()
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO api_client (name, role, token_hash) VALUES (:n, :r, :h)"),
            {"n": name, "r": str(role), "h": token_hash(token)},
        )
    return token


@pytest.fixture(scope="session")
def api_db_url(pg_admin_url, template_db):
    url = new_database(pg_admin_url, template_db)
    yield url
    drop_database(pg_admin_url, url)


@pytest.fixture(scope="session")
def api_engine(api_db_url):
    eng = db.make_engine(api_db_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def tokens(api_engine) -> dict[Role, str]:
    return {role: make_token(api_engine, role, f"test {role}") for role in Role}


@pytest.fixture(scope="session")
def server(api_db_url, tmp_path_factory):
    server = Server(api_db_url, tmp_path_factory.mktemp("server") / "server.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gql(server) -> GraphQL:
    return GraphQL(server.url)
