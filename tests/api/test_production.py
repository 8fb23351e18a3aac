"""In production, unexpected errors are masked but findable by request id; expected ones are not."""

import pytest
import sqlalchemy as sa

from registry import db
from registry.vocabulary import Role
from tests.api.conftest import make_token
from tests.api.support import FindingSpec, GraphQL, Server, code, error_codes, file_company

ELIGIBILITY = """query($c: String!) { eligibility(creditCode: $c, kind: NEW_WELL) {
    decision reasons { code } } }"""


@pytest.fixture(scope="module")
def broken(db_url, tmp_path_factory):
    """A production server over a database whose findings table has gone missing."""
    engine = db.make_engine(db_url)
    file_company(engine, code(7000), "坏数据公司", grade="C", score=70, findings=[FindingSpec()])
    token = make_token(engine, Role.APPROVAL_SYSTEM, "prod")
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE credit_finding RENAME TO credit_finding_gone"))
    engine.dispose()
    log = tmp_path_factory.mktemp("prod") / "server.log"
    server = Server(db_url, log, env={"GEOCREDIT_ENV": "production"}).start()
    yield server, GraphQL(server.url), token
    server.stop()


def test_an_unexpected_error_is_masked_and_its_log_line_found_by_request_id(broken):
    server, gql, token = broken
    response = gql.post(ELIGIBILITY, {"c": code(7000)}, token)
    body = response.json()
    error = body["errors"][0]
    request_id = response.headers["x-request-id"]
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
    assert error["message"] == f"internal error; quote request id {request_id}"
    assert "credit_finding" not in response.text  # no SQL, no table names
    logged = [line for line in server.log_lines() if line.get("request_id") == request_id]
    assert len(logged) == 1
    assert logged[0]["level"] == "error"
    assert "credit_finding" in str(logged[0]["exception"])


def test_expected_errors_are_not_masked(broken):
    _, gql, token = broken
    body = gql(ELIGIBILITY, {"c": "91350100M000100Y44"}, token)
    assert error_codes(body) == ["INVALID_CREDIT_CODE"]
    assert "check character" in body["errors"][0]["message"]
    assert error_codes(gql("{ nope }", None, token)) == ["GRAPHQL_VALIDATION_FAILED"]
