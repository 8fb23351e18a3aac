"""DataLoaders: any number of codes costs the same few queries."""

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient

from api.app import create_app
from registry import standing
from registry.vocabulary import Role
from tests.api.conftest import make_token
from tests.api.support import FindingSpec, code, file_company

BATCH = """query($r: [EligibilityRequest!]!) { eligibilities(requests: $r) {
    creditCode decision company { name } reasons { code evidence } } }"""


@pytest.fixture(scope="module")
def filed(api_engine):
    codes = [code(5000 + i) for i in range(60)]
    for i, c in enumerate(codes[:30]):
        findings = [FindingSpec(), FindingSpec("QUALITY", "MAJOR", 10)]
        listing = "active" if i % 3 == 0 else None
        file_company(
            api_engine, c, f"公司{i}", grade="C", score=70, findings=findings, listing=listing
        )
    return codes


async def test_eligibilities_cost_a_constant_number_of_queries(
    api_db_url, api_engine, filed, monkeypatch
):
    token = make_token(api_engine, Role.APPROVAL_SYSTEM, "batching")
    app = create_app(database_url=api_db_url)
    statements = []
    sa.event.listen(
        app.state.services.engine.sync_engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, *a: statements.append(statement),
    )
    fetch = standing._fetch  # the standing service's queries bypass SQLAlchemy's events

    async def counted(conn, sql, params):
        statements.append(sql)
        return await fetch(conn, sql, params)

    monkeypatch.setattr(standing, "_fetch", counted)
    headers = {"Authorization": f"Bearer {token}"}
    counts = {}
    async with AsyncTestClient(app) as client:
        await client.post("/graphql", json={"query": "{ __typename }"}, headers=headers)  # auth
        for n in (1, 10, 1000):
            requests = [
                {"creditCode": filed[i % len(filed)], "kind": "WATER_PERMIT"} for i in range(n)
            ]
            statements.clear()
            r = await client.post(
                "/graphql", json={"query": BATCH, "variables": {"r": requests}}, headers=headers
            )
            body = r.json()
            assert "errors" not in body and len(body["data"]["eligibilities"]) == n
            counts[n] = len(statements)
        # Fields of one request read together: aliases of eligibility and a batch beside them.
        aliased = f"""query($r: [EligibilityRequest!]!) {{
            a: eligibility(creditCode: "{filed[0]}", kind: NEW_WELL) {{ decision }}
            b: eligibility(creditCode: "{filed[40]}", kind: NEW_WELL) {{ decision }}
            c: eligibilities(requests: $r) {{ decision }} }}"""
        statements.clear()
        r = await client.post(
            "/graphql",
            json={
                "query": aliased,
                "variables": {"r": [{"creditCode": filed[1], "kind": "NEW_WELL"}]},
            },
            headers=headers,
        )
        assert "errors" not in r.json()
        counts["aliases"] = len(statements)
    assert counts == {1: 1, 10: 1, 1000: 1, "aliases": 1}, counts  # companies with their findings
