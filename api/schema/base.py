"""What every schema module shares: the enums of the contract, the context accessor and the
permission helper that each root field states its roles with."""

from collections.abc import Iterable
from typing import Any

import strawberry
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.types.field import StrawberryField

from api.context import Context
from api.errors import FORBIDDEN, UNAUTHENTICATED, ApiError
from registry.auth import Client
from registry.models import Role
from scoring.model import ApplicationKind, DecisionKind, Grade

DecisionEnum = strawberry.enum(DecisionKind, name="Decision")
GradeEnum = strawberry.enum(Grade, name="Grade")
ApplicationKindEnum = strawberry.enum(ApplicationKind, name="ApplicationKind")

Info = strawberry.Info[Context, None]

# Who may ask for decisions (never for whole credit files).
DECISION_READERS = (Role.APPROVAL_SYSTEM, Role.REVIEWER, Role.ADMIN)
ALL_ROLES = tuple(Role)


class RolePermission(BasePermission):
    """The caller's role must be one of `roles`; otherwise the field fails with FORBIDDEN."""

    def __init__(self, roles: Iterable[Role]) -> None:
        self.roles = frozenset(roles)

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        client = info.context.client
        if client is None:
            raise ApiError("authentication required", UNAUTHENTICATED)
        if client.role not in self.roles:
            allowed = ", ".join(sorted(self.roles))
            raise ApiError(
                f"role {client.role} may not use {info.path.typename}.{info.field_name} "
                f"(allowed: {allowed})",
                FORBIDDEN,
            )
        return True


def guarded(*roles: Role, description: str) -> dict[str, Any]:
    """Field arguments that guard a root field by role and say so in its description; for
    field kinds that have no helper below, e.g. `relay.node(**guarded(…))`."""
    if not roles:
        raise ValueError("a root field must state the roles it allows")
    note = "Roles: " + ", ".join(r.value for r in roles) + "."
    return {
        "description": f"{description}\n\n{note}",
        "extensions": [PermissionExtension([RolePermission(roles)], use_directives=False)],
    }


def root_field(*roles: Role, description: str, **kw: Any) -> Any:
    """A Query field guarded by role: `@root_field(Role.REVIEWER, description=…)`."""
    return strawberry.field(**guarded(*roles, description=description), **kw)


def root_mutation(*roles: Role, description: str, **kw: Any) -> Any:
    return strawberry.mutation(**guarded(*roles, description=description), **kw)


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
    "ALL_ROLES",
    "DECISION_READERS",
    "ApplicationKindEnum",
    "DecisionEnum",
    "GradeEnum",
    "Info",
    "RolePermission",
    "allowed_roles",
    "caller",
    "guarded",
    "root_field",
    "root_mutation",
]
