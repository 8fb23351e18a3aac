"""/readyz says why the service is not ready: no schema, or a database it cannot reach."""

import time

import psycopg_pool
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from registry.db import CONNECT_TIMEOUT_S


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


async def test_decision_reads_fail_once_and_soon_when_the_database_is_unreachable():
    """No connection within the pool's timeout is not a dead connection: no second wait."""
    services = create_app(database_url="postgresql+psycopg://geo@127.0.0.1:9/nowhere").state[
        "services"
    ]
    calls = []

    async def read(conn):
        calls.append(conn)

    started = time.monotonic()
    with pytest.raises(psycopg_pool.PoolTimeout):
        await services.decision_read(read)
    assert time.monotonic() - started < 2 * CONNECT_TIMEOUT_S  # waited once, not twice
    assert calls == []
    await services.close()
