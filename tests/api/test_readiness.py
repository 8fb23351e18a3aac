"""/readyz says why the service is not ready: no schema, or a database it cannot reach; a
database that closed the API's connections is reached again at the next read."""

import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.context import Services
from registry.auth import Client, new_token, token_hash
from registry.vocabulary import Role


async def test_not_ready_without_the_schema(empty_db_url):
    async with AsyncTestClient(create_app(database_url=empty_db_url)) as client:
        r = await client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["ready"] is False and body["database"] == "ok"
    assert "geocredit migrate" in body["problems"][0]


async def test_not_ready_when_the_database_is_unreachable():
    app = create_app(database_url="postgresql+psycopg://geo@127.0.0.1:9/nowhere")
    async with AsyncTestClient(app) as client:
        ready = await client.get("/readyz")
        alive = await client.get("/healthz")
        metrics = await client.get("/metrics")
    assert ready.status_code == 503 and ready.json()["database"] == "unreachable"
    assert alive.status_code == 200
    assert metrics.status_code == 200 and "geocredit_http_requests_total" in metrics.text


async def test_graphql_answers_503_while_the_database_is_unreachable():
    """Whether the token must be looked up or is known already, a request that cannot reach
    the database is told to retry (503, Retry-After, DATABASE_UNAVAILABLE), never a 500."""
    app = create_app(database_url="postgresql+psycopg://geo@127.0.0.1:9/nowhere")
    known = new_token()
    app.state.services.tokens.put(token_hash(known), Client(1, "known", Role.APPROVAL_SYSTEM))
    query = {
        "query": '{ eligibility(creditCode: "91140100MA0L4UNX2R", kind: NEW_WELL) { decision } }'
    }
    async with AsyncTestClient(app) as client:
        for token in (new_token(), known):
            r = await client.post(
                "/graphql", json=query, headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == 503, r.text
            assert int(r.headers["retry-after"]) > 0
            assert [e["extensions"]["code"] for e in r.json()["errors"]] == ["DATABASE_UNAVAILABLE"]


async def test_a_read_after_the_database_closed_the_pools_connection_is_answered(db_url, engine):
    """PostgreSQL restarted (or an administrator ended the API's sessions): the pool's idle
    connection is dead. The next read finds out, and is answered from a new connection."""
    services = Services.for_database(db_url)
    try:

        async def backend(conn) -> int:
            return await conn.scalar(sa.text("SELECT pg_backend_pid()"))

        first = await services.read(backend)
        assert await services.read(backend) == first  # the pool keeps its connection
        with engine.connect() as admin:
            assert admin.scalar(sa.text("SELECT pg_terminate_backend(:p)"), {"p": first})
        assert await services.read(backend) != first
    finally:
        await services.close()
