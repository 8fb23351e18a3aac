"""Error codes and masking: what every GraphQL error looks like when it leaves."""

import structlog
from graphql import GraphQLError, GraphQLSyntaxError

from api import errors
from api.errors import ApiError

log = structlog.get_logger("geocredit.api")


def _code_of(error: GraphQLError) -> str:
    """The code of an error graphql-core raised itself (syntax, validation, limits, input)."""
    message = error.message
    if isinstance(error, GraphQLSyntaxError):
        too_long = "more than" in message and "tokens" in message
        return errors.TOO_MANY_TOKENS if too_long else errors.PARSE_FAILED
    if "exceeds maximum operation depth" in message or "Maximum introspection depth" in message:
        return errors.QUERY_TOO_DEEP
    if "aliases found" in message:
        return errors.TOO_MANY_ALIASES
    return errors.VALIDATION_FAILED


def _with_code(error: GraphQLError, message: str, extensions: dict) -> GraphQLError:
    return GraphQLError(
        message, error.nodes, error.source, error.positions, error.path, extensions=extensions
    )


def apply_error_policy(
    errors_: list[GraphQLError], *, production: bool, request_id: str
) -> list[GraphQLError]:
    """Every error leaves with `extensions.code`. Expected errors (ApiError, and graphql-core's
    own syntax and validation errors) are shown as they are; anything else is a bug: logged with
    the request id, and in production replaced by a message that only quotes that id."""
    out = []
    for error in errors_:
        original = error.original_error
        if isinstance(original, ApiError) or (error.extensions or {}).get("code"):
            out.append(error)
        elif original is None or isinstance(original, GraphQLError):
            out.append(_with_code(error, error.message, {"code": _code_of(error)}))
        else:
            log.error("unexpected error", path=error.path, exc_info=original)
            message = (
                f"internal error; quote request id {request_id}" if production else error.message
            )
            out.append(
                _with_code(error, message, {"code": errors.INTERNAL, "requestId": request_id})
            )
    return out
