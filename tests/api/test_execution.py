"""How operations run in-process: a request's objects are freed when its answer is built, by
reference counting alone — nothing waits for the cyclic garbage collector, whose full passes
would stall every request in flight."""

import gc
import weakref

from strawberry.extensions import ParserCache, ValidationCache

from api.context import Services, request_context
from api.schema import CACHE_SIZE, build_schema
from registry.auth import Client
from registry.vocabulary import Role

ELIGIBILITY = """query($c: String!) { eligibility(creditCode: $c, kind: NEW_WELL) {
    decision reasons { code message } company { id name } } }"""
BATCH = """query($r: [EligibilityRequest!]!) { a: eligibilities(requests: $r) { decision }
    b: eligibilities(requests: $r) { creditCode } }"""
UNFILED = "91140100MA0L4UNX2R"


async def test_a_request_leaves_nothing_for_the_cyclic_collector(api_db_url):
    services = Services.for_database(api_db_url)
    schema = build_schema()
    client = Client(1, "approval", Role.APPROVAL_SYSTEM)
    requests = [{"creditCode": UNFILED, "kind": "NEW_WELL"}] * 3

    async def run(query: str, variables: dict) -> weakref.ref:
        context = request_context(services, client, "test")
        result = await schema.execute(query, variables, context_value=context)
        assert result.errors is None, result.errors
        return weakref.ref(context.standings)  # what it loaded, with it

    try:
        await run(ELIGIBILITY, {"c": UNFILED})  # the first one fills caches and opens the pool
        gc.disable()
        for query, variables in ((ELIGIBILITY, {"c": UNFILED}), (BATCH, {"r": requests})):
            context = await run(query, variables)
            assert context() is None, gc.get_referrers(context())
    finally:
        gc.enable()
        await services.close()


async def test_without_an_operation_name_the_first_operation_runs():
    """Integrators that send a file of several operations without `operationName` get the
    first one."""
    schema = build_schema()
    document = "query First { __typename } query Second { __schema { queryType { name } } }"
    result = await schema.execute(document)
    assert result.errors is None and result.data == {"__typename": "Query"}
    result = await schema.execute(document, operation_name="Second")
    assert result.data == {"__schema": {"queryType": {"name": "Query"}}}


async def test_a_repeated_document_is_parsed_and_validated_once():
    """strawberry's caches hit: the limiters' validation rules are the same classes in every
    request (the ValidationCache keys its entries on them)."""
    schema = build_schema()
    parsed = ParserCache(maxsize=CACHE_SIZE).cached_parse_document  # shared per size
    validated = ValidationCache(maxsize=CACHE_SIZE).cached_validate_document
    before = parsed.cache_info().hits, validated.cache_info().hits
    for _ in range(3):
        result = await schema.execute("query Repeated { __typename }")
        assert result.errors is None
    after = parsed.cache_info().hits, validated.cache_info().hits
    assert (after[0] - before[0], after[1] - before[1]) == (2, 2)
