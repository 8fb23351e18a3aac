"""decisionChanges over GraphQL: the change feed approval systems follow, page by page."""

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from api.context import Services, request_context
from api.schema import build_schema
from registry import changes
from registry.auth import Client
from registry.vocabulary import Role
from scoring.decision import StandingSummary
from scoring.model import DecisionKind, Grade

SCHEMA = build_schema()
AT = datetime(2026, 12, 1, 1, tzinfo=UTC)
FEED = """
query($after: String, $first: Int) {
  decisionChanges(after: $after, first: $first) {
    edges { cursor node { creditCode changedAt rulebookVersion
      previous { decision grade score restrictedUntil }
      current { decision grade score restrictedUntil } } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}
"""


@pytest.fixture(scope="module")
def companies(engine):
    with engine.begin() as conn:
        ids = [
            conn.scalar(sa.text("INSERT INTO company (credit_code) VALUES (:c) RETURNING id"), {"c": c})
            for c in ("91350100M000100Y43", "91140100MA0K000017")
        ]  # fmt: skip
        block = StandingSummary(
            DecisionKind.BLOCK, Grade.D, 40.0, datetime(2027, 12, 1, tzinfo=UTC)
        )
        allow = StandingSummary(DecisionKind.ALLOW, Grade.A, 95.0, None)
        for summaries in ({ids[0]: block, ids[1]: allow}, {ids[0]: allow}):
            changes.record(conn, summaries, at=AT, rulebook_version="2026.2", actor="test")
    return ids


async def _run(db_url, query, variables, role=Role.APPROVAL_SYSTEM):
    services = Services.for_database(db_url, pool_size=1)
    try:
        context = request_context(services, Client(1, "feed test", role), "test")
        return await SCHEMA.execute(query, variables, context_value=context)
    finally:
        await services.engine.dispose()


async def test_the_feed_pages_oldest_first_with_the_previous_standing(db_url, companies):
    first = await _run(db_url, FEED, {"first": 2})
    assert first.errors is None, first.errors
    page = first.data["decisionChanges"]
    assert [e["node"]["creditCode"] for e in page["edges"]] == [
        "91350100M000100Y43", "91140100MA0K000017",
    ]  # fmt: skip
    blocked = page["edges"][0]["node"]
    assert blocked["previous"] is None
    assert blocked["current"] == {
        "decision": "BLOCK", "grade": "D", "score": 40.0,
        "restrictedUntil": "2027-12-01T00:00:00+00:00",
    }  # fmt: skip
    assert page["pageInfo"]["hasNextPage"] and not page["pageInfo"]["hasPreviousPage"]

    rest = await _run(db_url, FEED, {"after": page["pageInfo"]["endCursor"]})
    (lifted,) = [e["node"] for e in rest.data["decisionChanges"]["edges"]]
    assert lifted["previous"]["decision"] == "BLOCK" and lifted["current"]["decision"] == "ALLOW"
    end = rest.data["decisionChanges"]["pageInfo"]
    assert not end["hasNextPage"]

    # Nothing new yet: an empty page that keeps the cursor to resume from.
    empty = await _run(db_url, FEED, {"after": end["endCursor"]})
    assert empty.data["decisionChanges"]["edges"] == []
    assert empty.data["decisionChanges"]["pageInfo"]["endCursor"] == end["endCursor"]


@pytest.mark.parametrize("variables", [{"after": "not a cursor"}, {"first": 501}, {"first": -1}])
async def test_bad_cursors_and_page_sizes_are_refused(db_url, companies, variables):
    result = await _run(db_url, FEED, variables)
    assert [e.extensions["code"] for e in result.errors] == ["INVALID_PAGE"]


async def test_a_credit_file_shows_its_decision_history_newest_first(db_url, companies):
    query = """query($c: String!) { company(creditCode: $c) {
        decisionHistory { edges { node { current { decision } previous { decision } } } } } }"""
    result = await _run(db_url, query, {"c": "91350100M000100Y43"}, Role.REVIEWER)
    assert result.errors is None, result.errors
    history = [e["node"] for e in result.data["company"]["decisionHistory"]["edges"]]
    assert [h["current"]["decision"] for h in history] == ["ALLOW", "BLOCK"]
    assert history[0]["previous"]["decision"] == "BLOCK"
