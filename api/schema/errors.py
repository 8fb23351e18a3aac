"""Error codes and masking: what every GraphQL error looks like when it leaves.

Codes travel with the errors (`extensions.code`): ApiError's own, the limits' (set where the
limits report them, api.schema.extensions). An error with none is graphql-core's validation or
variable coercion, a database that cannot be reached, or a bug."""

import psycopg
import sqlalchemy as sa
import structlog
from graphql import GraphQLError

from api import errors
from registry import db

log = structlog.get_logger("geocredit.api")


def _with_code(error: GraphQLError, message: str, extensions: dict) -> GraphQLError:
    return GraphQLError(
        message, error.nodes, error.source, error.positions, error.path, extensions=extensions
    )


def _first_line(exc: BaseException) -> str:
    """What a developer may see of an unexpected error: never SQL (SQLAlchemy's messages quote
    the statement, PostgreSQL's may quote a line of it)."""
    if isinstance(exc, sa.exc.DBAPIError):
        exc = exc.orig or exc
    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        return f"{type(exc).__name__}: {exc.diag.message_primary}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def apply_error_policy(
    errors_: list[GraphQLError], *, production: bool, request_id: str
) -> list[GraphQLError]:
    """Every error leaves with `extensions.code`. Expected errors are shown as they are; an
    unreachable database is DATABASE_UNAVAILABLE; anything else is a bug: logged with the
    request id, and replaced by a message that quotes that id (in production, alone)."""
    out = []
    for error in errors_:
        original = error.original_error
        if (error.extensions or {}).get("code"):
            out.append(error)
        elif original is None or isinstance(original, GraphQLError):
            out.append(_with_code(error, error.message, {"code": errors.VALIDATION_FAILED}))
        elif isinstance(original, db.UNREACHABLE):
            log.warning("database unavailable", path=error.path, error=_first_line(original))
            message = "the database is unavailable: retry shortly"
            out.append(_with_code(error, message, {"code": errors.DATABASE_UNAVAILABLE}))
        elif isinstance(original, RecursionError) and error.path is None:
            message = "the request nests too deeply"
            out.append(_with_code(error, message, {"code": errors.QUERY_TOO_DEEP}))
        else:
            log.error("unexpected error", path=error.path, exc_info=original)
            message = f"internal error; quote request id {request_id}"
            if not production:
                message = f"{message} ({_first_line(original)})"
            out.append(
                _with_code(error, message, {"code": errors.INTERNAL, "requestId": request_id})
            )
    return out
