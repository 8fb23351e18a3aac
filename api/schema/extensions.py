"""Error codes and masking, and per-operation metrics."""

import time
from collections.abc import Iterator

import structlog
from graphql import FieldNode, GraphQLError, GraphQLSyntaxError, get_operation_ast
from strawberry.extensions import SchemaExtension

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


class OperationMetrics(SchemaExtension):
    """Count and time operations, labelled by operation type and root fields (a bounded set:
    names not in the schema make the label `invalid`)."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        failed = True
        try:
            yield
            result = self.execution_context.result
            failed = result is None or bool(getattr(result, "errors", None))
        finally:
            services = getattr(self.execution_context.context, "services", None)
            if services is not None:
                label = self._label()
                metrics = services.metrics
                metrics.graphql_operations.labels(label, "error" if failed else "ok").inc()
                metrics.graphql_latency.labels(label).observe(time.perf_counter() - started)

    def _label(self) -> str:
        ctx = self.execution_context
        if ctx.graphql_document is None:
            return "invalid"
        operation = get_operation_ast(ctx.graphql_document, ctx.operation_name)
        if operation is None:
            return "invalid"
        root = ctx.schema._schema.get_root_type(operation.operation)
        names = set()
        for selection in operation.selection_set.selections:
            if not isinstance(selection, FieldNode):
                names.add("fragment")
            elif root is not None and selection.name.value in root.fields:
                names.add(selection.name.value)
            elif not selection.name.value.startswith("__"):
                return "invalid"
        return f"{operation.operation.value}:{'+'.join(sorted(names)) or 'introspection'}"
