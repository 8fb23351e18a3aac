"""The Relay `node` field: any object with a global id, re-fetched by it. Each Node type's
`resolve_nodes` applies its own visibility (e.g. an approval system sees only its decisions).

A resolver of our own rather than `relay.node()`, which cannot be put in two schemas."""

from collections.abc import Iterable

import strawberry
from strawberry import relay

from api.errors import INVALID_ID, ApiError
from api.schema.base import Info, root_field
from registry.roles import Action

MAX_DATABASE_ID = 2**63 - 1  # PostgreSQL bigint


def database_id(text: str) -> int:
    """The row id inside a global id; ValueError when it cannot be one (not a number, or
    outside PostgreSQL's bigint)."""
    value = int(text)
    if not 0 < value <= MAX_DATABASE_ID:
        raise ValueError(f"{text} is not a row id")
    return value


def database_ids(node_ids: Iterable[str]) -> list[int]:
    return [database_id(i) for i in node_ids]


@strawberry.type
class Query:
    @root_field(Action.READ_DECISIONS, description="Fetch an object by its global id.")
    async def node(self, info: Info, id: strawberry.ID) -> relay.Node | None:
        try:
            global_id = relay.GlobalID.from_id(id)
            return await global_id.resolve_node(info, required=False)
        except ValueError:  # not base64 of Type:id, an unknown type, not a row id
            raise ApiError(f"{id!r} is not a global id of this API", INVALID_ID) from None
