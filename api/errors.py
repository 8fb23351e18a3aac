"""Errors the API expects, each with a stable `extensions.code`; they are never masked."""

from typing import Any


class ApiError(Exception):
    """An expected failure of a request: shown to the caller as is, with `extensions.code`.

    graphql-core copies `extensions` from the original exception onto the GraphQL error."""

    def __init__(self, message: str, code: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.extensions: dict[str, Any] = {"code": code, **details}


INVALID_CREDIT_CODE = "INVALID_CREDIT_CODE"
UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
BATCH_TOO_LARGE = "BATCH_TOO_LARGE"
QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
TOO_MANY_TOKENS = "TOO_MANY_TOKENS"
PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
INVALID_ID = "INVALID_ID"
INVALID_AS_OF = "INVALID_AS_OF"
INVALID_PAGE = "INVALID_PAGE"
INVALID_STRING = "INVALID_STRING"
INTERNAL = "INTERNAL_SERVER_ERROR"
BAD_REQUEST = "BAD_REQUEST"
OVERLOADED = "OVERLOADED"
DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
UNAVAILABLE = frozenset({OVERLOADED, DATABASE_UNAVAILABLE})
"""Codes answered with HTTP 503 and Retry-After: the same request may succeed a little later."""

# userErrors codes of mutations
CASE_REFERENCE_CONFLICT = "CASE_REFERENCE_CONFLICT"
INVALID_INPUT = "INVALID_INPUT"


class Unauthenticated(ApiError):
    """No token, or one that is unknown or revoked: answered with HTTP 401 before GraphQL runs."""

    def __init__(self, message: str) -> None:
        super().__init__(message, UNAUTHENTICATED)
