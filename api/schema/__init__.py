"""The GraphQL schema, assembled from field modules.

Each module contributes a `Query` and/or `Mutation` strawberry type whose root fields state their
roles (`api.schema.base.root_field`); another module joins the schema by being added to
QUERIES / MUTATIONS (and its extra types to TYPES). Nothing else needs to change."""

import copy
from collections.abc import Callable

import strawberry
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.tools import merge_types

from api.errors import QUERY_TOO_DEEP, TOO_MANY_ALIASES
from api.schema import (
    approval,
    changes,
    node,
    reviewer_mutations,
    reviewer_queries,
    reviewer_types,
)
from api.schema.extensions import (
    OperationMetrics,
    RequestLimits,
    SyntaxErrorCodes,
    coded,
    leave_no_cycles,
)

QUERIES: list[type] = [node.Query, approval.Query, changes.Query, reviewer_queries.Query]
MUTATIONS: list[type] = [approval.Mutation, reviewer_mutations.Mutation]
TYPES: list[type] = [approval.Company, approval.ScreeningDecision, *reviewer_types.TYPES]

MAX_DEPTH = 12
MAX_ALIASES = 15
MAX_TOKENS = 2000
CACHE_SIZE = 256


def per_request(extension: SchemaExtension) -> Callable[[], SchemaExtension]:
    """strawberry gives every request extensions of its own (it stores the request on them); a
    copy of one built once keeps its validation rules, the very classes the ValidationCache
    keys its entries on — a limiter built per request would make every request a miss."""
    return lambda: copy.copy(extension)


def build_schema(*, max_depth: int = MAX_DEPTH) -> strawberry.Schema:
    depth = coded(QueryDepthLimiter(max_depth=max_depth), QUERY_TOO_DEEP)
    aliases = coded(MaxAliasesLimiter(max_alias_count=MAX_ALIASES), TOO_MANY_ALIASES)
    schema = strawberry.Schema(
        query=merge_types("Query", tuple(QUERIES)),
        mutation=merge_types("Mutation", tuple(MUTATIONS)),
        types=TYPES,
        extensions=[
            OperationMetrics,  # first: it times and counts all that follows
            per_request(MaxTokensLimiter(max_token_count=MAX_TOKENS)),
            SyntaxErrorCodes,
            per_request(ParserCache(maxsize=CACHE_SIZE)),
            per_request(depth),
            per_request(aliases),
            per_request(ValidationCache(maxsize=CACHE_SIZE)),
            RequestLimits,
        ],
    )
    schema.execution_context_class = leave_no_cycles(schema.execution_context_class)
    return schema
