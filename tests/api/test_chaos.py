"""Load that must not lock the service out: clients that send the largest batches and give up
long before their answers are ready. Afterwards the pool has all its connections back and an
ordinary eligibility is answered at once (a generous bound: this checks the pool, it is not a
benchmark)."""

import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from api.schema.approval import MAX_BATCH
from registry import db
from registry.vocabulary import Role
from tests.api.conftest import make_token
from tests.api.support import Server, code
from tests.conftest import drop_database, new_database

CLIENTS = 12
LOAD_SECONDS = 12
GIVE_UP_AFTER = 0.3
CODES = [code(20_000 + i) for i in range(MAX_BATCH)]
BATCH = """query($r: [EligibilityRequest!]!) { eligibilities(requests: $r) {
    creditCode company { id name } decision grade score reasons { code message evidence }
    conditions restrictedUntil asOf rulebookVersion } }"""
ELIGIBILITY = """query($c: String!) { eligibility(creditCode: $c, kind: NEW_WELL) {
    decision grade reasons { code } } }"""


def file_many(engine: sa.Engine, codes: list[str]) -> None:
    """A scored credit file for every code, written set-based."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT set_config('geocredit.actor', 'tests', true)"))
        conn.execute(
            sa.text("INSERT INTO company (credit_code) VALUES (:c)"), [{"c": c} for c in codes]
        )
        conn.execute(
            sa.text(
                "INSERT INTO company_version (company_id, name, source) "
                "SELECT id, '压力测试地热有限公司' || id, 'tests' FROM company"
            )
        )
        conn.execute(
            sa.text(
                """INSERT INTO score_snapshot (company_id, computed_at, score, grade,
                rulebook_version, window_start, window_end, inputs_digest, finding_ids)
                SELECT id, :t, 80, 'B', '2026.1', '2024-12-01', :d, 'tests', '[]'::jsonb
                FROM company"""
            ),
            {"t": now - timedelta(hours=1), "d": now.date()},
        )


@pytest.fixture(scope="module")
def loaded(pg_admin_url, template_db, tmp_path_factory):
    url = new_database(pg_admin_url, template_db)
    engine = db.make_engine(url)
    file_many(engine, CODES)
    token = make_token(engine, Role.APPROVAL_SYSTEM, "chaos")
    server = Server(url, tmp_path_factory.mktemp("chaos") / "server.log").start()
    yield server, token, engine
    server.stop()
    engine.dispose()
    drop_database(pg_admin_url, url)


async def impatient_clients(url: str, token: str) -> Counter:
    """CLIENTS clients, each sending full batches for LOAD_SECONDS and giving up on each after
    GIVE_UP_AFTER seconds; what they got back, counted."""
    payload = {
        "query": BATCH,
        "variables": {"r": [{"creditCode": c, "kind": "WATER_PERMIT"} for c in CODES]},
    }
    seen: Counter = Counter()
    deadline = time.monotonic() + LOAD_SECONDS

    async def client() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as http:
            while time.monotonic() < deadline:
                try:
                    r = await http.post("/graphql", json=payload, timeout=GIVE_UP_AFTER)
                    seen[r.status_code] += 1
                except httpx.TimeoutException:
                    seen["gave up"] += 1

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return seen


def test_clients_that_give_up_on_full_batches_cannot_lock_the_service_out(loaded):
    server, token, engine = loaded
    seen = asyncio.run(impatient_clients(server.url, token))
    assert set(seen) <= {"gave up", 200, 503}, seen
    time.sleep(1)

    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as http:
        r = http.post(
            "/graphql", json={"query": ELIGIBILITY, "variables": {"c": CODES[7]}}, timeout=1.0
        )
        assert r.status_code == 200, r.text
        assert r.json()["data"]["eligibility"]["decision"] == "ALLOW"
        assert http.get("/readyz", timeout=5).status_code == 200

    with engine.connect() as conn:
        busy = conn.scalar(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state <> 'idle'"
            )
        )
    assert busy == 0  # no query of theirs still runs


def test_a_query_stops_when_its_client_disconnects(loaded):
    """A full batch whose client hangs up at once is cancelled (and logged so), not finished."""
    server, token, _ = loaded

    async def hang_up() -> None:
        body = json.dumps(
            {
                "query": BATCH,
                "variables": {"r": [{"creditCode": c, "kind": "NEW_WELL"} for c in CODES]},
            }
        ).encode()
        head = (
            f"POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(head.encode() + body)
        await writer.drain()
        writer.close()  # before any answer could be ready

    def cancelled() -> int:
        return sum("client disconnected" in line.get("event", "") for line in server.log_lines())

    before = cancelled()
    asyncio.run(hang_up())
    deadline = time.monotonic() + 10
    while cancelled() == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cancelled() == before + 1
