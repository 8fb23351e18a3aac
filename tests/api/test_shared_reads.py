"""Requests in flight together share their standings read; each still decides at its own time."""

import asyncio
from datetime import timedelta

import pytest

from api.context import Services, request_context
from api.schema import build_schema
from registry import standing
from registry.auth import Client
from registry.models import Role
from tests.api.support import NOW, code, file_company

ELIGIBILITY = """query($c: String!) { eligibility(creditCode: $c, kind: NEW_WELL) {
    decision reasons { code } } }"""
LISTED = code(8800)
CODES = [code(8800 + n) for n in range(8)]


@pytest.fixture(scope="module")
def files(api_engine):
    file_company(api_engine, LISTED, "列入名单地热有限公司", grade="D", score=40, listing="active")
    for c in CODES[1:]:
        file_company(api_engine, c, f"{c} 地热有限公司", grade="A", score=95)


@pytest.fixture
async def run(api_db_url, files, monkeypatch):
    services = Services.for_database(api_db_url)
    schema = build_schema()
    reads = []
    fetch = standing._fetch

    async def counted(conn, sql, params):
        reads.append(params)
        return await fetch(conn, sql, params)

    monkeypatch.setattr(standing, "_fetch", counted)

    async def eligibility(credit_code, now):
        context = request_context(
            services, Client(1, "approval", Role.APPROVAL_SYSTEM), "test", now
        )
        result = await schema.execute(ELIGIBILITY, {"c": credit_code}, context_value=context)
        assert result.errors is None, result.errors
        return result.data["eligibility"]

    yield eligibility, reads
    await services.close()


async def test_requests_in_flight_together_share_one_read(run):
    eligibility, reads = run
    answers = await asyncio.gather(*(eligibility(c, NOW) for c in CODES))
    assert [a["decision"] for a in answers] == ["BLOCK"] + ["ALLOW"] * 7
    assert len(reads) == 1 and sorted(reads[0]["codes"]) == sorted(CODES)


async def test_each_request_decides_at_its_own_time(run):
    """The shared read keeps listings active at the earliest request time; a request made after
    the listing's maximum end is not blocked by it."""
    eligibility, reads = run
    after, before = await asyncio.gather(  # the later one first: the read must take the earliest
        eligibility(LISTED, NOW + timedelta(days=1001)), eligibility(LISTED, NOW)
    )
    assert len(reads) == 1
    assert before["decision"] == "BLOCK" and "LISTED" in {r["code"] for r in before["reasons"]}
    assert "LISTED" not in {r["code"] for r in after["reasons"]}
