"""Limits that hold per request, and hostile input that is the caller's mistake, never ours:
codes counted across aliases, NUL characters, ids out of range, bodies nested too deep,
metric labels from a bounded set, heavy requests refused while a worker is full."""

import random
import re
import string

import pytest
import sqlalchemy as sa
from litestar.testing import AsyncTestClient
from strawberry.relay import to_base64

from api.app import create_app
from api.schema.approval import MAX_BATCH
from api.schema.errors import apply_error_policy
from api.schema.extensions import HEAVY_CODES
from registry.vocabulary import Role
from tests.api.conftest import make_token
from tests.api.support import code, error_codes, file_company

FILED = code(9300)
ALIASED = """query($r: [EligibilityRequest!]!, $s: [EligibilityRequest!]!) {
    a: eligibilities(requests: $r) { decision } b: eligibilities(requests: $s) { decision } }"""
SCREEN = """mutation($i: ScreenApplicationInput!) { screenApplication(input: $i) {
    decisionId userErrors { field code } } }"""
NODE = "query($id: ID!) { node(id: $id) { id } }"


@pytest.fixture(scope="module", autouse=True)
def filed(api_engine):
    return file_company(api_engine, FILED, "限额测试地热有限公司", grade="B", score=85)


def requests(n: int, credit_code: str = FILED) -> list[dict]:
    return [{"creditCode": credit_code, "kind": "NEW_WELL"}] * n


# ---------------------------------------------------------------- codes per request


@pytest.mark.parametrize(("first", "second"), [(600, 600), (MAX_BATCH, 1), (1, MAX_BATCH)])
def test_the_batch_limit_counts_every_code_across_aliases(gql, tokens, first, second):
    body = gql(ALIASED, {"r": requests(first), "s": requests(second)}, tokens[Role.APPROVAL_SYSTEM])
    assert body["data"] is None and error_codes(body) == ["BATCH_TOO_LARGE"]
    assert body["errors"][0]["extensions"]["got"] == first + second


def test_the_batch_limit_counts_codes_written_in_the_document_and_through_fragments(gql, tokens):
    item = f'{{creditCode: "{FILED}", kind: NEW_WELL}}'
    literal = f"[{', '.join([item] * 150)}]"
    document = f"""query($r: [EligibilityRequest!]!) {{ ...F x: eligibilities(requests: {literal})
        {{ decision }} }} fragment F on Query {{ eligibilities(requests: $r) {{ decision }} }}"""
    body = gql(document, {"r": requests(900)}, tokens[Role.APPROVAL_SYSTEM])
    assert error_codes(body) == ["BATCH_TOO_LARGE"]
    assert body["errors"][0]["extensions"]["got"] == 1050


def test_a_full_batch_split_across_aliases_is_answered(gql, tokens):
    half = MAX_BATCH // 2
    body = gql(ALIASED, {"r": requests(half), "s": requests(half)}, tokens[Role.APPROVAL_SYSTEM])
    assert "errors" not in body
    assert len(body["data"]["a"]) == len(body["data"]["b"]) == half


# ---------------------------------------------------------------- strings and ids


@pytest.mark.parametrize("field", ["caseReference", "projectName", "city"])
def test_a_nul_character_in_any_string_is_a_user_error(gql, tokens, api_engine, field):
    case = f"NUL-{field}"
    given = {"creditCode": FILED, "kind": "WATER_PERMIT", "caseReference": case, field: "a\x00b"}
    body = gql(SCREEN, {"i": given}, tokens[Role.APPROVAL_SYSTEM])
    assert body["data"] is None and error_codes(body) == ["INVALID_STRING"]
    assert field in body["errors"][0]["message"]
    with api_engine.connect() as conn:
        stored = conn.scalar(
            sa.text("SELECT count(*) FROM application WHERE case_reference LIKE 'NUL-%'")
        )
    assert stored == 0


def test_a_nul_character_written_in_the_document_is_a_user_error(gql, tokens):
    document = f"""mutation {{ screenApplication(input: {{creditCode: "{FILED}",
        kind: WATER_PERMIT, caseReference: "NUL-literal\\u0000"}}) {{ decisionId }} }}"""
    body = gql(document, None, tokens[Role.APPROVAL_SYSTEM])
    assert error_codes(body) == ["INVALID_STRING"]
    body = gql('{ company(creditCode: "\\u0000") { id } }', None, tokens[Role.REVIEWER])
    assert error_codes(body) == ["INVALID_STRING"]


@pytest.mark.parametrize("type_name", ["ScreeningDecision", "Company", "CreditFile", "Finding"])
@pytest.mark.parametrize("number", ["99999999999999999999", str(2**63), "0", "-1"])
def test_an_id_out_of_range_is_a_user_error(gql, tokens, type_name, number):
    body = gql(NODE, {"id": to_base64(type_name, number)}, tokens[Role.REVIEWER])
    assert error_codes(body) == ["INVALID_ID"]


def test_an_id_out_of_range_in_a_mutation_input_is_a_user_error(gql, tokens):
    document = """mutation($i: OpenAppealInput!) { openAppeal(input: $i) {
        userErrors { field code } } }"""
    given = {"findingId": to_base64("Finding", "99999999999999999999"), "grounds": "x"}
    body = gql(document, {"i": given}, tokens[Role.REVIEWER])
    assert body["data"]["openAppeal"]["userErrors"] == [
        {"field": ["input", "findingId"], "code": "INVALID_ID"}
    ]


def test_an_unexpected_error_never_shows_sql_even_in_development(api_engine):
    """What a developer sees of a bug is its class and first line, never the statement."""
    from graphql import GraphQLError

    with pytest.raises(sa.exc.ProgrammingError) as raised, api_engine.connect() as conn:
        conn.execute(sa.text("SELECT secret_column FROM credit_finding WHERE id = 1"))
    error = GraphQLError(str(raised.value), path=["x"], original_error=raised.value)
    (shown,) = apply_error_policy([error], production=False, request_id="r1")
    assert shown.extensions["code"] == "INTERNAL_SERVER_ERROR"
    assert "secret_column" in shown.message  # PostgreSQL's own words name the column …
    assert "SELECT" not in shown.message and "credit_finding" not in shown.message  # … not SQL


# ---------------------------------------------------------------- bodies


@pytest.mark.parametrize("depth", [1000, 5000])
def test_a_body_nested_deeper_than_the_parser_allows_is_400(gql, tokens, depth):
    nested = "[" * depth + "]" * depth
    body = f'{{"query": "{{ __typename }}", "variables": {{"x": {nested}}}}}'.encode()
    headers = {"Authorization": f"Bearer {tokens[Role.REVIEWER]}"}
    r = gql.http.post(
        "/graphql", content=body, headers={**headers, "Content-Type": "application/json"}
    )
    assert r.status_code == 400 and error_codes(r.json()) == ["BAD_REQUEST"]
    r = gql.http.get("/graphql", params={"query": "{ __typename }", "variables": nested[:-1]})
    assert r.status_code in (400, 401)  # 401: GET asks for a token first
    r = gql.http.get(
        "/graphql",
        params={"query": "{ __typename }", "variables": f'{{"x": {nested}}}'},
        headers=headers,
    )
    assert r.status_code == 400


# ---------------------------------------------------------------- metrics


def metric_labels(gql) -> tuple[set[str], set[str]]:
    text = gql.http.get("/metrics").text
    operations = set(re.findall(r'geocredit_graphql_operations_total\{operation="([^"]*)"', text))
    methods = set(re.findall(r'geocredit_http_requests_total\{method="([^"]*)"', text))
    return operations, methods


def test_metric_labels_come_from_a_bounded_set(gql, tokens):
    """Names a caller makes up (fields, operation names, HTTP methods) never become labels."""
    token = tokens[Role.REVIEWER]
    before, _ = metric_labels(gql)
    rng = random.Random(9)
    for _ in range(60):
        name = "".join(rng.choices(string.ascii_lowercase, k=12))
        gql.post(f"{{ {name} {{ id }} }}", None, token)  # no such field
        gql.post(f"query {name.upper()} {{ __typename }}", None, token)  # any operation name
        gql.post(f"subscription {{ {name} }}", None, token)  # an operation type refused
        gql.http.request(name.upper(), "/healthz")  # any method
    gql.post('{ __typename node(id: "x") { id } }', None, token)  # two fields
    gql.post(
        f'{{ a: eligibility(creditCode: "{FILED}", kind: NEW_WELL) {{ decision }} }}', None, token
    )
    operations, methods = metric_labels(gql)
    assert operations - before <= {"other", "query:__typename", "query:eligibility"}
    assert {"other", "query:__typename", "query:eligibility"} <= operations
    assert all(o == "other" or re.fullmatch(r"(query|mutation):\w+", o) for o in operations)
    assert methods <= {"GET", "POST", "other"}


# ---------------------------------------------------------------- admission


async def test_heavy_requests_beyond_the_workers_room_are_refused_at_once(api_db_url, api_engine):
    """With no room left for heavy requests, a large batch is refused with 503 and
    Retry-After, while a small one is answered."""
    token = make_token(api_engine, Role.APPROVAL_SYSTEM, "admission")
    app = create_app(database_url=api_db_url)
    admission = app.state.services.admission
    admission.in_flight = admission.limit  # every slot taken
    headers = {"Authorization": f"Bearer {token}"}
    batch = "query($r: [EligibilityRequest!]!) { eligibilities(requests: $r) { decision } }"
    async with AsyncTestClient(app) as client:
        heavy = {"query": batch, "variables": {"r": requests(HEAVY_CODES + 1)}}
        r = await client.post("/graphql", json=heavy, headers=headers)
        assert r.status_code == 503 and error_codes(r.json()) == ["OVERLOADED"]
        assert int(r.headers["retry-after"]) >= 1
        small = {"query": batch, "variables": {"r": requests(HEAVY_CODES)}}
        r = await client.post("/graphql", json=small, headers=headers)
        assert r.status_code == 200 and "errors" not in r.json()
        admission.in_flight = 0
        r = await client.post("/graphql", json=heavy, headers=headers)
        assert r.status_code == 200 and "errors" not in r.json()
    assert admission.in_flight == 0  # its slot was given back
