"""The GraphQL schema, assembled from field modules.

Each module contributes a `Query` and/or `Mutation` strawberry type whose root fields state their
roles (`api.schema.base.root_field`); another module joins the schema by being added to
QUERIES / MUTATIONS (and its extra types to TYPES). Nothing else needs to change."""

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.tools import merge_types

from api.schema import approval, node, reviewer_mutations, reviewer_queries, reviewer_types
from api.schema.extensions import OperationMetrics

QUERIES: list[type] = [node.Query, approval.Query, reviewer_queries.Query]
MUTATIONS: list[type] = [approval.Mutation, reviewer_mutations.Mutation]
TYPES: list[type] = [approval.Company, approval.ScreeningDecision, *reviewer_types.TYPES]

MAX_DEPTH = 12
MAX_ALIASES = 15
MAX_TOKENS = 2000
CACHE_SIZE = 256


class Schema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:
        """Logging is the error policy's (api.schema.extensions), which knows which errors are
        expected."""


def build_schema(*, max_depth: int = MAX_DEPTH) -> strawberry.Schema:
    # The limiters' rule classes are made once: ValidationCache keys on them, and a limiter
    # built per request would bring new classes each time and never hit the cache.
    limits = [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
    ]
    return Schema(
        query=merge_types("Query", tuple(QUERIES)),
        mutation=merge_types("Mutation", tuple(MUTATIONS)),
        types=TYPES,
        extensions=[
            OperationMetrics,
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: ParserCache(maxsize=CACHE_SIZE),
            lambda: ValidationCache(maxsize=CACHE_SIZE),
            lambda: AddValidationRules(limits),
        ],
    )
