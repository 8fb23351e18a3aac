"""How operations run in-process: no request leaves work for the cyclic garbage collector, whose
full passes would stall every request in flight."""

import gc

from api.context import Services, request_context
from api.schema import build_schema
from registry.auth import Client
from registry.models import Role

ELIGIBILITY = """query($c: String!) { eligibility(creditCode: $c, kind: NEW_WELL) {
    decision reasons { code message } company { id name } } }"""
UNFILED = "91140100MA0L4UNX2R"


async def test_an_operation_leaves_no_reference_cycles(api_db_url):
    services = Services.for_database(api_db_url)
    schema = build_schema()

    async def eligibility() -> None:
        context = request_context(services, Client(1, "approval", Role.APPROVAL_SYSTEM), "test")
        result = await schema.execute(ELIGIBILITY, {"c": UNFILED}, context_value=context)
        assert result.errors is None, result.errors
        assert result.data["eligibility"]["decision"] == "ALLOW"

    try:
        await eligibility()  # the first one fills caches and opens the pool
        gc.collect()
        gc.disable()
        for _ in range(20):
            await eligibility()
        assert gc.collect() == 0
    finally:
        gc.enable()
        await services.close()


async def test_without_an_operation_name_the_first_operation_runs():
    """As strawberry's own execution did: integrators that send a file of several operations
    without `operationName` keep getting the first one."""
    schema = build_schema()
    document = "query First { __typename } query Second { __schema { queryType { name } } }"
    result = await schema.execute(document)
    assert result.errors is None and result.data == {"__typename": "Query"}
    result = await schema.execute(document, operation_name="Second")
    assert result.data == {"__schema": {"queryType": {"name": "Query"}}}
