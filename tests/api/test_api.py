"""The approval-system API over HTTP against a started `geocredit api`: authentication, the
role matrix, error codes, limits, binding screening, operators' routes, the operations files."""

import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from api.schema import MAX_ALIASES, MAX_TOKENS, build_schema
from api.schema.approval import MAX_BATCH
from api.schema.base import allowed_roles
from registry.vocabulary import Role
from tests.api.conftest import make_token
from tests.api.support import (
    FindingSpec,
    Server,
    add_snapshot,
    code,
    error_codes,
    file_company,
)

OPERATIONS = Path(__file__).resolve().parents[2] / "graphql" / "operations"

GOOD = code(900)  # grade C, restricted
LISTED = code(901)  # blocked
UNKNOWN = code(902)  # no credit file
BAD = "91350100M000100Y44"  # wrong check character

ELIGIBILITY = """query($c: String!, $k: ApplicationKind!) {
    eligibility(creditCode: $c, kind: $k) { creditCode decision grade reasons { code } } }"""
BATCH = """query($r: [EligibilityRequest!]!) {
    eligibilities(requests: $r) { creditCode decision } }"""
SCREEN = """mutation($i: ScreenApplicationInput!) { screenApplication(input: $i) {
    decisionId eligibility { creditCode decision grade asOf reasons { code } }
    userErrors { field message code } } }"""
NODE = """query($id: ID!) { node(id: $id) { id ... on ScreeningDecision {
    caseReference kind decidedAt eligibility { creditCode decision } }
    ... on Company { creditCode name } } }"""


@pytest.fixture(scope="module", autouse=True)
def files(api_engine):
    c = file_company(
        api_engine, GOOD, "晋中清源地热有限公司", grade="C", score=70, findings=[FindingSpec()]
    )
    d = file_company(
        api_engine,
        LISTED,
        "运城热源开发有限公司",
        grade="D",
        score=30,
        findings=[FindingSpec("NO_REINJECTION", "CRITICAL", 40, "二(二)6")],
        listing="active",
    )
    return {"c": c, "d": d}


def screen_input(case: str, credit_code: str = GOOD, kind: str = "WATER_PERMIT", **kw):
    return {"i": {"creditCode": credit_code, "kind": kind, "caseReference": case, **kw}}


# ---------------------------------------------------------------- authentication


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
    ],
    ids=["missing", "unknown", "not bearer", "empty"],
)
def test_no_valid_token_is_401_before_graphql_runs(gql, headers):
    r = gql.http.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert error_codes(r.json()) == ["UNAUTHENTICATED"]
    assert r.json()["data"] is None


def test_a_revoked_token_is_401(gql, api_engine):
    token = make_token(api_engine, Role.APPROVAL_SYSTEM, "revoked system")
    with api_engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE api_client SET revoked_at = now() WHERE name = 'revoked system'")
        )
    assert gql.post("{ __typename }", token=token).status_code == 401


def test_graphiql_opens_without_a_token(gql):
    r = gql.http.get("/graphql", headers={"Accept": "text/html"})
    assert r.status_code == 200 and "graphiql" in r.text.lower()


def test_a_query_by_get_needs_a_token_too(gql, tokens):
    assert gql.http.get("/graphql", params={"query": "{ __typename }"}).status_code == 401
    r = gql.http.get(
        "/graphql",
        params={"query": "{ __typename }"},
        headers={"Authorization": f"Bearer {tokens[Role.REVIEWER]}"},
    )
    assert r.status_code == 200 and r.json()["data"] == {"__typename": "Query"}


# ---------------------------------------------------------------- the role matrix

ROLE_MATRIX = {
    "Query.node": {Role.APPROVAL_SYSTEM, Role.REVIEWER, Role.ADMIN},
    "Query.eligibility": {Role.APPROVAL_SYSTEM, Role.REVIEWER, Role.ADMIN},
    "Query.eligibilities": {Role.APPROVAL_SYSTEM, Role.REVIEWER, Role.ADMIN},
    "Mutation.screenApplication": {Role.APPROVAL_SYSTEM},
}

CALLS = {
    "Query.node": ("query($id: ID!) { node(id: $id) { id } }", {"id": "Q29tcGFueTox"}),
    "Query.eligibility": (ELIGIBILITY, {"c": GOOD, "k": "NEW_WELL"}),
    "Query.eligibilities": (BATCH, {"r": [{"creditCode": GOOD, "kind": "NEW_WELL"}]}),
    "Mutation.screenApplication": (SCREEN, None),
}


def test_every_root_field_states_its_roles():
    """Every root field, this module's and other schema modules', is guarded by role; the
    approval systems' fields allow exactly the roles of ROLE_MATRIX."""
    schema = build_schema()
    fields = {}
    for root in ("Query", "Mutation"):
        for f in schema.get_type_by_name(root).fields:
            fields[f"{root}.{schema.config.name_converter.from_field(f)}"] = allowed_roles(f)
    assert all(fields.values()), [name for name, roles in fields.items() if not roles]
    assert {k: set(fields[k]) for k in ROLE_MATRIX} == ROLE_MATRIX


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("field", list(ROLE_MATRIX))
def test_role_matrix(gql, tokens, field, role):
    query, variables = CALLS[field]
    if field == "Mutation.screenApplication":
        variables = screen_input(f"matrix-{role}")
    body = gql(query, variables, tokens[role])
    if role in ROLE_MATRIX[field]:
        assert "errors" not in body, body
    else:
        assert error_codes(body) == ["FORBIDDEN"]
        assert role.value in body["errors"][0]["message"]
        assert not any((body["data"] or {}).values())


MINE = {"Company", "ScreeningDecision"}


def test_approval_systems_reach_decisions_and_reasons_never_a_credit_file():
    """The types an approval system's fields return hold decisions and reasons only; other
    modules' Node types are for staff (see the next test)."""
    schema = build_schema()._schema
    seen, todo = set(), []
    for field, roles in ROLE_MATRIX.items():
        if Role.APPROVAL_SYSTEM in roles:
            root, name = field.split(".")
            todo.append(schema.get_type(root).fields[name].type)
    while todo:
        t = todo.pop()
        while hasattr(t, "of_type"):
            t = t.of_type
        if t.name in seen or not hasattr(t, "fields"):
            continue
        seen.add(t.name)
        if t.name == "Node":
            todo.extend(p for p in schema.get_possible_types(t) if p.name in MINE)
        todo.extend(f.type for f in t.fields.values())
    assert seen == {
        "Company",
        "Eligibility",
        "Node",
        "Reason",
        "ScreenApplicationPayload",
        "ScreeningDecision",
        "UserError",
    }
    assert set(schema.get_type("Company").fields) == {"id", "creditCode", "name"}


def test_approval_systems_cannot_fetch_other_records_by_node_id(gql, tokens, files):
    from strawberry.relay import to_base64

    schema = build_schema()._schema
    others = [
        t.name for t in schema.get_possible_types(schema.get_type("Node")) if t.name not in MINE
    ]
    ids = {files["c"]["company_id"], files["d"]["company_id"], *files["d"]["finding_ids"], 1, 2}
    for type_name in others:
        for i in ids:
            body = gql(NODE, {"id": to_base64(type_name, i)}, tokens[Role.APPROVAL_SYSTEM])
            assert (body.get("data") or {}).get("node") is None, (type_name, i, body)


# ---------------------------------------------------------------- error codes


def test_a_malformed_credit_code_is_an_error_never_a_decision(gql, tokens):
    token = tokens[Role.APPROVAL_SYSTEM]
    body = gql(ELIGIBILITY, {"c": BAD, "k": "WATER_PERMIT"}, token)
    assert body["data"] is None
    assert error_codes(body) == ["INVALID_CREDIT_CODE"]
    assert body["errors"][0]["extensions"]["creditCode"] == BAD
    assert "position 18" in body["errors"][0]["message"]

    requests = [{"creditCode": GOOD, "kind": "NEW_WELL"}, {"creditCode": "ISO", "kind": "NEW_WELL"}]
    requests.append({"creditCode": BAD, "kind": "NEW_WELL"})
    body = gql(BATCH, {"r": requests}, token)
    assert body["data"] is None and error_codes(body) == ["INVALID_CREDIT_CODE"]
    assert [e["index"] for e in body["errors"][0]["extensions"]["invalid"]] == [1, 2]

    body = gql(SCREEN, screen_input("bad-code", BAD), token)
    assert body["data"] is None and error_codes(body) == ["INVALID_CREDIT_CODE"]


def test_codes_are_normalised(gql, tokens):
    body = gql(ELIGIBILITY, {"c": f"  {GOOD.lower()} ", "k": "WATER_PERMIT"}, tokens[Role.ADMIN])
    assert body["data"]["eligibility"]["creditCode"] == GOOD
    assert body["data"]["eligibility"]["decision"] == "RESTRICT"


def test_batches_above_the_maximum_are_refused_with_a_clear_error(gql, tokens):
    token = tokens[Role.APPROVAL_SYSTEM]
    full = [{"creditCode": UNKNOWN, "kind": "NEW_WELL"}] * MAX_BATCH
    assert len(gql(BATCH, {"r": full}, token)["data"]["eligibilities"]) == MAX_BATCH
    body = gql(BATCH, {"r": [*full, full[0]]}, token)
    assert body["data"] is None and error_codes(body) == ["BATCH_TOO_LARGE"]
    assert body["errors"][0]["extensions"]["max"] == MAX_BATCH
    assert f"at most {MAX_BATCH}" in body["errors"][0]["message"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("{ eligibility(", "GRAPHQL_PARSE_FAILED"),
        ("{ eligibility(creditCode: 1) { decision } }", "GRAPHQL_VALIDATION_FAILED"),
        ("{ creditFile { id } }", "GRAPHQL_VALIDATION_FAILED"),
        (  # graphql-core's own rule against deep introspection
            "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }",
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            "{ " + " ".join(f"a{i}: __typename" for i in range(MAX_ALIASES + 1)) + " }",
            "TOO_MANY_ALIASES",
        ),
        ("{ " + "__typename " * MAX_TOKENS + "}", "TOO_MANY_TOKENS"),
    ],
    ids=["parse", "validation", "unknown field", "depth", "aliases", "tokens"],
)
def test_malformed_and_oversized_documents(gql, tokens, query, expected):
    body = gql(query, None, tokens[Role.APPROVAL_SYSTEM])
    assert body["data"] is None
    assert set(error_codes(body)) == {expected}, body


@pytest.mark.parametrize("bad", ["nope", "VW5rbm93bjox", "Q29tcGFueTphYmM="])
def test_a_malformed_global_id_is_an_error(gql, tokens, bad):
    body = gql(NODE, {"id": bad}, tokens[Role.REVIEWER])
    assert error_codes(body) == ["INVALID_ID"]


def test_a_bad_variable_is_a_validation_error(gql, tokens):
    body = gql(ELIGIBILITY, {"c": GOOD, "k": "FISHING_PERMIT"}, tokens[Role.APPROVAL_SYSTEM])
    assert error_codes(body) == ["GRAPHQL_VALIDATION_FAILED"]


async def test_the_operation_depth_limit():
    """No field of this schema nests deeper than the limit yet: check the limiter on a low one."""
    from api.schema.errors import apply_error_policy

    result = await build_schema(max_depth=1).execute(
        '{ eligibility(creditCode: "x", kind: NEW_WELL) { company { name } } }'
    )
    coded = apply_error_policy(result.errors, production=True, request_id="t")
    assert [e.extensions["code"] for e in coded] == ["QUERY_TOO_DEEP"]


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        (b"{not json", "application/json", "not JSON"),
        (b'{"query": "{ __typename }"}', "text/plain", "application/json"),
        (b'[{"query": "{ __typename }"}]', "application/json", "batches"),
        (b'{"variables": {}}', "application/json", "`query`"),
        (b'{"query": "{ __typename }", "variables": [1]}', "application/json", "`variables`"),
        (b'{"query": "query A { __typename }", "operationName": "B"}', "application/json", '"B"'),
        (b'{"query": "subscription { x }"}', "application/json", "subscriptions"),
    ],
    ids=["not-json", "not-json-type", "batch", "no-query", "bad-variables", "unknown-op", "subscr"],
)
def test_a_request_that_is_not_a_graphql_post_is_400_with_a_code(
    gql, tokens, body, content_type, says
):
    r = gql.http.post(
        "/graphql",
        content=body,
        headers={
            "Authorization": f"Bearer {tokens[Role.APPROVAL_SYSTEM]}",
            "Content-Type": content_type,
        },
    )
    assert r.status_code == 400
    assert error_codes(r.json()) == ["BAD_REQUEST"]
    assert says in r.json()["errors"][0]["message"]


GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.mark.parametrize(
    ("query", "variables", "status", "has_data"),
    [
        (ELIGIBILITY, {"c": GOOD, "k": "NEW_WELL"}, 200, True),
        (ELIGIBILITY, {"c": BAD, "k": "NEW_WELL"}, 200, True),  # a field's error: data is null
        (ELIGIBILITY, {"c": GOOD, "k": "NO_SUCH_KIND"}, 400, False),  # variables do not coerce
        ("{ eligibility { nope } }", None, 400, False),  # does not validate
        ("{ eligibility(", None, 400, False),  # does not parse
    ],
    ids=["ok", "field-error", "bad-variable", "invalid", "unparsable"],
)
def test_graphql_over_http_media_type_on_request(gql, tokens, query, variables, status, has_data):
    """A client that asks for application/graphql-response+json gets it, with 400 and no data
    entry when nothing could run; under application/json the same requests are 200."""
    token = tokens[Role.APPROVAL_SYSTEM]
    accept = f"{GRAPHQL_RESPONSE}, application/json;q=0.9"
    r = gql.post(query, variables, token, headers={"Accept": accept})
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert ("data" in r.json()) is has_data
    assert r.json().get("errors") or status == 200
    legacy = gql.post(query, variables, token)
    assert legacy.status_code == 200
    assert legacy.headers["content-type"].startswith("application/json")
    assert "data" in legacy.json()


def test_a_malformed_request_under_graphql_response_has_no_data_entry(gql, tokens):
    r = gql.http.post(
        "/graphql",
        content=b"{not json",
        headers={
            "Authorization": f"Bearer {tokens[Role.APPROVAL_SYSTEM]}",
            "Content-Type": "application/json",
            "Accept": GRAPHQL_RESPONSE,
        },
    )
    assert r.status_code == 400 and r.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert "data" not in r.json() and error_codes(r.json()) == ["BAD_REQUEST"]


def test_under_graphql_response_a_bug_of_ours_is_a_500_and_a_fields_error_a_200():
    from graphql import GraphQLError
    from strawberry.types import ExecutionResult

    from api.app import response_status
    from api.errors import INTERNAL

    bug = GraphQLError("internal error; quote request id x", extensions={"code": INTERNAL})
    field = GraphQLError("no", path=["eligibility"], extensions={"code": "INVALID_CREDIT_CODE"})
    busy = GraphQLError("busy", extensions={"code": "OVERLOADED"})
    assert response_status(ExecutionResult(data=None, errors=[bug]), GRAPHQL_RESPONSE)[0] == 500
    assert response_status(ExecutionResult(data=None, errors=[field]), GRAPHQL_RESPONSE)[0] == 200
    assert response_status(ExecutionResult(data=None, errors=[bug]), "application/json")[0] == 200
    for media_type in (GRAPHQL_RESPONSE, "application/json"):
        status, headers = response_status(ExecutionResult(data=None, errors=[busy]), media_type)
        assert status == 503 and int(headers["Retry-After"]) >= 1


@pytest.mark.parametrize(
    ("accept", "answer"),
    [
        ("", "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        ("Application/GraphQL-Response+JSON", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};charset=utf-8, application/json;q=0.9", GRAPHQL_RESPONSE),
        (f"application/json, {GRAPHQL_RESPONSE}", "application/json"),  # a tie
        (f"{GRAPHQL_RESPONSE};q=0, */*", "application/json"),  # refused
        (f"{GRAPHQL_RESPONSE};q=0.5, application/*;q=0.2", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0.5, application/json;q=0.8", "application/json"),
    ],
)
def test_the_answers_media_type_follows_accept(accept, answer):
    from litestar.datastructures import Accept

    from api.app import response_media_type

    assert response_media_type(Accept(accept)) == answer


def test_decisions_survive_the_database_dropping_pooled_connections(gql, tokens, api_engine):
    """A restart or an idle timeout kills the API's pooled connections; the next requests still
    answer (the dead connection is replaced, the read repeated)."""
    for _ in range(3):  # fill the pool
        gql(ELIGIBILITY, {"c": GOOD, "k": "WATER_PERMIT"}, tokens[Role.APPROVAL_SYSTEM])
    with api_engine.connect() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar()
    assert killed >= 1
    for _ in range(4):
        data = gql(ELIGIBILITY, {"c": GOOD, "k": "WATER_PERMIT"}, tokens[Role.APPROVAL_SYSTEM])
        assert data["data"]["eligibility"]["decision"] == "RESTRICT"


def test_request_bodies_over_the_limit_are_refused(gql, tokens):
    from api.app import MAX_BODY_BYTES

    huge = {"query": "{ __typename }", "variables": {"pad": "x" * MAX_BODY_BYTES}}
    r = gql.http.post(
        "/graphql", json=huge, headers={"Authorization": f"Bearer {tokens[Role.APPROVAL_SYSTEM]}"}
    )
    assert r.status_code == 413
    assert error_codes(r.json()) == ["REQUEST_TOO_LARGE"]
    # Its body was left unread: the server closes that connection, and the next request of the
    # same client still gets its answer.
    assert r.headers["connection"] == "close"
    assert gql(ELIGIBILITY, {"c": GOOD, "k": "WATER_PERMIT"}, tokens[Role.APPROVAL_SYSTEM])["data"]


# ---------------------------------------------------------------- binding screening


def count(engine, table: str, **where) -> int:
    clause = " AND ".join(f"{k} = :{k}" for k in where) or "true"
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {clause}"), where).scalar()


def test_screening_records_the_application_the_decision_and_its_snapshot(
    gql, tokens, api_engine, files
):
    body = gql(
        SCREEN,
        screen_input("TY-2026-0001", projectName="太原南区", city="太原"),
        tokens[Role.APPROVAL_SYSTEM],
    )
    payload = body["data"]["screenApplication"]
    assert payload["userErrors"] == [] and payload["decisionId"]
    assert payload["eligibility"]["decision"] == "RESTRICT"
    with api_engine.connect() as conn:
        app, dec = conn.execute(
            sa.text(
                "SELECT a, d FROM application a JOIN decision d ON d.application_id = a.id "
                "WHERE a.case_reference = 'TY-2026-0001'"
            )
        ).one()
    assert "太原南区" in app and "RESTRICT" in dec
    assert count(api_engine, "decision", snapshot_id=files["c"]["snapshot"]) >= 1


def test_screening_is_idempotent_per_client_and_case_reference(gql, tokens, api_engine, files):
    token = tokens[Role.APPROVAL_SYSTEM]
    first = gql(SCREEN, screen_input("TY-2026-0002"), token)["data"]["screenApplication"]
    # The standing changes; the recorded decision does not.
    add_snapshot(api_engine, files["c"]["company_id"], "A", 95)
    again = gql(SCREEN, screen_input("TY-2026-0002"), token)["data"]["screenApplication"]
    assert again == first
    assert count(api_engine, "application", case_reference="TY-2026-0002") == 1
    # A fresh case sees the new standing; another approval system's same reference is its own case.
    fresh = gql(SCREEN, screen_input("TY-2026-0003"), token)["data"]["screenApplication"]
    assert fresh["eligibility"]["grade"] == "A" and fresh["decisionId"] != first["decisionId"]
    other = make_token(api_engine, Role.APPROVAL_SYSTEM, "another approval system")
    theirs = gql(SCREEN, screen_input("TY-2026-0002"), other)["data"]["screenApplication"]
    assert theirs["decisionId"] != first["decisionId"]


def test_concurrent_screenings_of_one_case_record_one_decision(gql, tokens, api_engine):
    token = tokens[Role.APPROVAL_SYSTEM]
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda _: gql(SCREEN, screen_input("TY-2026-RACE", LISTED), token), range(8))
        )
    ids = {a["data"]["screenApplication"]["decisionId"] for a in answers}
    assert len(ids) == 1
    assert count(api_engine, "application", case_reference="TY-2026-RACE") == 1
    assert answers[0]["data"]["screenApplication"]["eligibility"]["decision"] == "BLOCK"


def test_a_case_reference_reused_for_another_application_is_a_user_error(gql, tokens):
    token = tokens[Role.APPROVAL_SYSTEM]
    gql(SCREEN, screen_input("TY-2026-0009"), token)
    body = gql(SCREEN, screen_input("TY-2026-0009", kind="MINING_RIGHT"), token)
    payload = body["data"]["screenApplication"]
    assert payload["decisionId"] is None and payload["eligibility"] is None
    assert payload["userErrors"] == [
        {
            "field": ["input", "caseReference"],
            "message": payload["userErrors"][0]["message"],
            "code": "CASE_REFERENCE_CONFLICT",
        }
    ]


@pytest.mark.parametrize("case", ["   ", "x" * 129])
def test_an_unusable_case_reference_is_a_user_error(gql, tokens, case):
    payload = gql(SCREEN, screen_input(case), tokens[Role.APPROVAL_SYSTEM])["data"][
        "screenApplication"
    ]
    assert payload["decisionId"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
        (["input", "caseReference"], "INVALID_INPUT")
    ]


def test_a_screening_with_no_credit_file_is_recorded_as_allow(gql, tokens, api_engine):
    payload = gql(
        SCREEN, screen_input("TY-2026-NEW", UNKNOWN, "NEW_WELL"), tokens[Role.APPROVAL_SYSTEM]
    )["data"]["screenApplication"]
    assert payload["eligibility"]["decision"] == "ALLOW"
    assert [r["code"] for r in payload["eligibility"]["reasons"]] == ["NO_CREDIT_FILE"]
    assert count(api_engine, "decision", decision="ALLOW") >= 1


def test_a_decision_is_fetched_by_its_id_by_whom_may_see_it(gql, tokens, api_engine):
    mine = tokens[Role.APPROVAL_SYSTEM]
    decision_id = gql(SCREEN, screen_input("TY-2026-NODE", LISTED), mine)["data"][
        "screenApplication"
    ]["decisionId"]
    node = gql(NODE, {"id": decision_id}, mine)["data"]["node"]
    assert node["caseReference"] == "TY-2026-NODE" and node["eligibility"]["decision"] == "BLOCK"
    assert node["kind"] == "WATER_PERMIT"
    assert (
        gql(NODE, {"id": decision_id}, tokens[Role.REVIEWER])["data"]["node"]["id"] == decision_id
    )
    stranger = make_token(api_engine, Role.APPROVAL_SYSTEM, "a stranger")
    assert gql(NODE, {"id": decision_id}, stranger)["data"]["node"] is None


def test_screening_writes_are_in_the_audit_chain(gql, tokens, api_engine):
    gql(SCREEN, screen_input("TY-2026-AUDIT"), tokens[Role.APPROVAL_SYSTEM])
    with api_engine.connect() as conn:
        actors = (
            conn.execute(
                sa.text(
                    "SELECT DISTINCT actor FROM audit_log WHERE table_name IN ('application', 'decision')"
                )
            )
            .scalars()
            .all()
        )
    assert "api:test approval_system" in actors


# ---------------------------------------------------------------- operators' routes


def test_metrics_add_up_every_workers_requests(api_db_url, tokens, tmp_path):
    """With several workers, every scrape shows the requests of all of them, whichever worker
    answers it (each request and each scrape on a connection of its own). Their shared folder
    is gone when the server stops, and a killed server's is removed at the next start."""
    stale = tmp_path / "data" / "run" / "metrics-999999999"
    stale.mkdir(parents=True)
    env = {"GEOCREDIT_DATA_DIR": str(tmp_path / "data")}
    server = Server(api_db_url, tmp_path / "server.log", env=env, workers=2).start()
    assert not stale.exists()
    try:
        auth = {"Authorization": f"Bearer {tokens[Role.APPROVAL_SYSTEM]}"}
        body = {"query": ELIGIBILITY, "variables": {"c": GOOD, "k": "NEW_WELL"}}
        for _ in range(30):
            r = httpx.post(server.url + "/graphql", json=body, headers=auth, timeout=30)
            assert r.status_code == 200 and "errors" not in r.json(), r.text
        line = 'geocredit_graphql_operations_total{operation="query:eligibility",outcome="ok"} '
        for _ in range(8):
            text = httpx.get(server.url + "/metrics", timeout=30).text
            counts = [float(t.split()[-1]) for t in text.splitlines() if t.startswith(line)]
            assert counts == [30.0], text
    finally:
        server.stop()
    assert list((tmp_path / "data" / "run").iterdir()) == []


def test_health_and_readiness(gql):
    assert gql.http.get("/healthz").json() == {"status": "ok"}
    ready = gql.http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert ready.json()["schema_revision"] == ready.json()["head_revision"]


def test_metrics(gql, tokens, api_engine):
    token = tokens[Role.APPROVAL_SYSTEM]
    gql(ELIGIBILITY, {"c": LISTED, "k": "MINING_RIGHT"}, token)
    now = datetime.now(UTC)
    with api_engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO ingest_watermark (source, result_time, platform_obs_id) "
                "VALUES ('platform', :t, 7) ON CONFLICT (source) DO UPDATE SET result_time = :t"
            ),
            {"t": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO job_run (job, window_key, status, finished_at, counts) "
                "VALUES ('pull', 'w1', 'SUCCEEDED', :t, '{}')"
            ),
            {"t": now},
        )
    text = gql.http.get("/metrics").text
    assert re.search(
        r'geocredit_decisions_total\{decision="BLOCK",kind="MINING_RIGHT",source="eligibility"\} \d',
        text,
    )
    assert 'geocredit_graphql_operations_total{operation="query:eligibility",outcome="ok"}' in text
    assert (
        'geocredit_graphql_operation_duration_seconds_count{operation="query:eligibility"}' in text
    )
    assert 'geocredit_http_requests_total{method="POST",route="/graphql",status="200"}' in text
    assert re.search(r'geocredit_ingest_lag_seconds\{source="platform"\} \d', text)
    success = re.search(r'geocredit_job_last_success_timestamp_seconds\{job="pull"\} (\S+)', text)
    assert abs(float(success.group(1)) - now.timestamp()) < 1


def test_every_response_carries_a_request_id(gql):
    assert re.fullmatch(r"[0-9a-f]{32}", gql.http.get("/healthz").headers["x-request-id"])
    echoed = gql.http.get("/healthz", headers={"X-Request-Id": "approval-42"})
    assert echoed.headers["x-request-id"] == "approval-42"
    unsafe = gql.http.get("/healthz", headers={"X-Request-Id": "a b\tc"})
    assert unsafe.headers["x-request-id"] != "a b\tc"
    assert gql.post("{ __typename }").headers["x-request-id"]


# ---------------------------------------------------------------- the integrators' examples


def example_variables(text: str) -> dict:
    comment = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if comment or line.startswith("# Variables:"):
            comment.append(line.lstrip("#").removeprefix(" Variables:"))
    return json.loads(" ".join(comment))


def test_every_operations_file_runs_as_documented(gql, tokens):
    token = tokens[Role.APPROVAL_SYSTEM]
    files = {p.stem: p.read_text() for p in sorted(OPERATIONS.glob("*.graphql"))}
    assert {"Eligibility", "Eligibilities", "ScreenApplication", "ScreeningDecision"} <= set(files)
    answers = {}
    for name in ("Eligibility", "Eligibilities", "ScreenApplication", "ScreeningDecision"):
        variables = example_variables(files[name])
        if name == "ScreeningDecision":
            variables["decisionId"] = answers["ScreenApplication"]["screenApplication"][
                "decisionId"
            ]
        body = gql(files[name], variables, token)
        assert "errors" not in body, (name, body)
        answers[name] = body["data"]
    assert answers["Eligibility"]["eligibility"]["decision"] == "ALLOW"
    assert len(answers["Eligibilities"]["eligibilities"]) == 2
    assert answers["ScreenApplication"]["screenApplication"]["userErrors"] == []
    assert answers["ScreeningDecision"]["node"]["caseReference"] == "TY-WP-2026-0042"


def test_operations_files_validate_against_the_schema():
    from graphql import parse, validate

    schema = build_schema()._schema
    for path in OPERATIONS.glob("*.graphql"):
        assert validate(schema, parse(path.read_text())) == [], path.name
