"""Generated requests against a started server: whatever a caller sends, the answer is never a
5xx and never INTERNAL_SERVER_ERROR — a caller's mistake gets a code that says so.

hypothesis-graphql writes valid documents for every root field, sent with each role's token
(and documents with one schema violation), with arbitrary strings, NUL characters included;
schemathesis does the same for the OpenAPI routes. A server of its own, over a database of its
own, so that what the generated mutations write stays here."""

import string
from datetime import UTC, timedelta, timezone

import httpx
import pytest
import schemathesis
from graphql import build_schema
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, nodes
from hypothesis_graphql import strategies as gql_st
from strawberry.relay import to_base64

from api.contracts import sdl
from registry import db
from registry.vocabulary import Role
from tests.api.conftest import make_token
from tests.api.support import FindingSpec, Server, code, file_company
from tests.conftest import drop_database, new_database

SCHEMA = build_schema(sdl())
QUERIES = sorted(SCHEMA.query_type.fields)
MUTATIONS = sorted(SCHEMA.mutation_type.fields)
ROLES = (Role.APPROVAL_SYSTEM, Role.REVIEWER, Role.ADMIN)
PER_FIELD_AND_ROLE = 40
INVALID_DOCUMENTS = 300
MINIMUM_REQUESTS = 2000

FILED = [code(9100 + i) for i in range(4)]

# Values that reach the registry now and then (filed credit codes, global ids of every type,
# dates), else anything: NUL characters, long texts, ids out of range.
_texts = st.one_of(st.sampled_from(FILED), st.text(max_size=40), st.text(min_size=200))
_ids = st.one_of(
    st.text(max_size=20),
    st.builds(
        to_base64,
        st.sampled_from(sorted(SCHEMA.type_map)),
        st.one_of(st.integers(min_value=-1, max_value=50), st.integers(min_value=2**62)),
    ),
)
_dates = st.dates().map(lambda d: d.isoformat())
_times = st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))])).map(
    lambda t: t.isoformat()
)
SCALARS = {
    "String": _texts.map(nodes.String),
    "ID": _ids.map(nodes.String),
    "Date": st.one_of(_dates, st.text(string.printable, max_size=12)).map(nodes.String),
    "DateTime": st.one_of(_times, st.text(string.printable, max_size=12)).map(nodes.String),
    "JSON": st.one_of(st.integers(), _texts).map(
        lambda v: nodes.Int(v) if isinstance(v, int) else nodes.String(v)
    ),
}
FUZZ = settings(
    max_examples=PER_FIELD_AND_ROLE,
    deadline=None,
    database=None,  # the same examples each run: CI stays within its time
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # a failure is reported as generated: no shrinking
    suppress_health_check=list(HealthCheck),
)

sent: list[int] = []  # statuses of every request of this module


@pytest.fixture(scope="module")
def fuzzed(pg_admin_url, template_db, tmp_path_factory):
    url = new_database(pg_admin_url, template_db)
    engine = db.make_engine(url)
    file_company(
        engine, FILED[0], "模糊测试地热有限公司", grade="C", score=70, findings=[FindingSpec()]
    )
    file_company(engine, FILED[1], "列入名单地热有限公司", grade="D", score=30, listing="active")
    file_company(engine, FILED[2], "良好地热有限公司", grade="A", score=95)
    tokens = {role: make_token(engine, role, f"fuzz {role}") for role in ROLES}
    engine.dispose()
    server = Server(url, tmp_path_factory.mktemp("fuzz") / "server.log").start()
    http = httpx.Client(base_url=server.url, timeout=30, limits=httpx.Limits(keepalive_expiry=1))
    yield http, tokens, server
    http.close()
    server.stop()
    drop_database(pg_admin_url, url)


def check(response: httpx.Response, sent_what: object) -> None:
    sent.append(response.status_code)
    assert response.status_code < 500, (sent_what, response.status_code, response.text[:2000])
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        codes = [e.get("extensions", {}).get("code") for e in body.get("errors") or ()]
        assert "INTERNAL_SERVER_ERROR" not in codes, (sent_what, body)


def post(fuzzed, query: str, role: Role) -> None:
    http, tokens, _ = fuzzed
    headers = {"Authorization": f"Bearer {tokens[role]}"}
    check(http.post("/graphql", json={"query": query}, headers=headers), query)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("field", QUERIES)
def test_generated_queries(fuzzed, field, role):
    @FUZZ
    @given(gql_st.queries(SCHEMA, fields=[field], custom_scalars=SCALARS))
    def run(query):
        post(fuzzed, query, role)

    run()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("field", MUTATIONS)
def test_generated_mutations(fuzzed, field, role):
    @FUZZ
    @given(gql_st.mutations(SCHEMA, fields=[field], custom_scalars=SCALARS))
    def run(mutation):
        post(fuzzed, mutation, role)

    run()


def test_generated_invalid_documents(fuzzed):
    """Documents with one schema violation each: refused with a code, never an internal error."""
    documents = st.one_of(
        gql_st.queries(SCHEMA, custom_scalars=SCALARS, mode=Mode.NEGATIVE),
        gql_st.mutations(SCHEMA, custom_scalars=SCALARS, mode=Mode.NEGATIVE),
    )

    @settings(FUZZ, max_examples=INVALID_DOCUMENTS)
    @given(documents, st.sampled_from(ROLES))
    def run(document, role):
        post(fuzzed, document, role)

    run()


def test_generated_requests_to_the_openapi_routes(fuzzed):
    _, _, server = fuzzed
    schema = schemathesis.openapi.from_url(server.url + "/schema/openapi.json")
    for operation in schema.get_all_operations():
        strategy = operation.ok().as_strategy()

        @settings(FUZZ, max_examples=50)
        @given(strategy)
        def run(case):
            response = case.call()
            sent.append(response.status_code)
            case.validate_response(response)
            assert response.status_code < 500 or case.path == "/readyz", response.text

        run()


def test_enough_requests_were_generated():
    """The suite above is the figure the fuzzing is judged by: at least MINIMUM_REQUESTS."""
    assert len(sent) >= MINIMUM_REQUESTS, len(sent)
    assert all(status < 500 for status in sent)
