"""The GraphQL schema, assembled from field modules.

Each module contributes a `Query` and/or `Mutation` strawberry type whose root fields state their
roles (`api.schema.base.root_field`); another module joins the schema by being added to
QUERIES / MUTATIONS (and its extra types to TYPES). Nothing else needs to change."""

from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter
from strawberry.tools import merge_types

from api.schema import approval, node, reviewer_mutations, reviewer_queries, reviewer_types
from api.schema.execution import Schema

QUERIES: list[type] = [node.Query, approval.Query, reviewer_queries.Query]
MUTATIONS: list[type] = [approval.Mutation, reviewer_mutations.Mutation]
TYPES: list[type] = [approval.Company, approval.ScreeningDecision, *reviewer_types.TYPES]

MAX_DEPTH = 12
MAX_ALIASES = 15
MAX_TOKENS = 2000
CACHE_SIZE = 256


def build_schema(*, max_depth: int = MAX_DEPTH) -> Schema:
    limits = [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
    ]
    return Schema(
        query=merge_types("Query", tuple(QUERIES)),
        mutation=merge_types("Mutation", tuple(MUTATIONS)),
        types=TYPES,
        max_tokens=MAX_TOKENS,
        rules=limits,
        cache_size=CACHE_SIZE,
    )
