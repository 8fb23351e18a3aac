"""What every schema module shares: the context accessor and the
permission helper that each root field states its action with (the roles come from
registry.roles, the table the reviewer console asks too)."""

from typing import Any

import strawberry
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.types.field import StrawberryField

from api.context import Context
from api.errors import FORBIDDEN, UNAUTHENTICATED, ApiError
from registry.auth import Client
from registry.roles import ALLOWED, Action, may
from registry.vocabulary import Role

Info = strawberry.Info[Context, None]


class RolePermission(BasePermission):
    """The caller's role must be allowed `action`; otherwise the field fails with FORBIDDEN."""

    def __init__(self, action: Action) -> None:
        self.action = action
        self.roles = ALLOWED[action]

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        client = info.context.client
        if client is None:
            raise ApiError("authentication required", UNAUTHENTICATED)
        if not may(client.role, self.action):
            allowed = ", ".join(sorted(self.roles))
            raise ApiError(
                f"role {client.role} may not use {info.path.typename}.{info.field_name} "
                f"(allowed: {allowed})",
                FORBIDDEN,
            )
        return True


def guarded(action: Action, description: str) -> dict[str, Any]:
    """Field arguments that guard a root field by the roles allowed `action` and say so in its
    description; for field kinds that have no helper below, e.g. `relay.node(**guarded(…))`."""
    note = "Roles: " + ", ".join(r.value for r in Role if r in ALLOWED[action]) + "."
    return {
        "description": f"{description}\n\n{note}",
        "extensions": [PermissionExtension([RolePermission(action)], use_directives=False)],
    }


def root_field(action: Action, *, description: str, **kw: Any) -> Any:
    """A Query field guarded by role: `@root_field(Action.READ_CREDIT_FILES, description=…)`."""
    return strawberry.field(**guarded(action, description), **kw)


def root_mutation(action: Action, *, description: str, **kw: Any) -> Any:
    return strawberry.mutation(**guarded(action, description), **kw)


def allowed_roles(field: StrawberryField) -> frozenset[Role] | None:
    """The roles a field was guarded with (None: unguarded) — for tests and docs."""
    for ext in field.extensions:
        if isinstance(ext, PermissionExtension):
            for perm in ext.permissions:
                if isinstance(perm, RolePermission):
                    return perm.roles
    return None


def caller(info: Info) -> Client:
    """The authenticated caller of a guarded field."""
    client = info.context.client
    assert client is not None  # root fields are guarded
    return client


__all__ = [
    "Info",
    "RolePermission",
    "allowed_roles",
    "caller",
    "guarded",
    "root_field",
    "root_mutation",
]
