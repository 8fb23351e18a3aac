"""What every operation passes through besides strawberry's caches and limits: metrics per
operation, limits that hold per request (codes across aliases, admission of heavy requests,
strings a database can hold), error codes carried by the errors themselves, and no reference
cycles left behind."""

import re
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLResolveInfoHelpers,
    GraphQLSyntaxError,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    StringValueNode,
    ValidationContext,
    ValidationRule,
    VariableNode,
    visit,
)
from graphql.language import Lexer, Source, TokenKind, Visitor
from strawberry.extensions import AddValidationRules, SchemaExtension
from strawberry.types import ExecutionResult

from api import errors
from api.schema.approval import MAX_BATCH

T = TypeVar("T")
OTHER = "other"
HEAVY_CODES = 100
"""Requests asking for more codes than this are heavy: admitted only while a worker has room."""


# ---------------------------------------------------------------- codes at the source


class _Coding:
    """A validation context whose errors carry `extensions.code`."""

    def __init__(self, context: ValidationContext, code: str) -> None:
        self._context = context
        self._code = code

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def report_error(self, error: GraphQLError) -> None:
        error.extensions = {**(error.extensions or {}), "code": self._code}
        self._context.report_error(error)


def coded(extension: AddValidationRules, code: str) -> AddValidationRules:
    """`extension` (a limiter), its rules reporting errors that carry `code`."""

    def with_code(rule: type[ValidationRule]) -> type[ValidationRule]:
        class Coded(rule):  # type: ignore[valid-type, misc]
            def __init__(self, context: ValidationContext) -> None:
                super().__init__(_Coding(context, code))  # type: ignore[arg-type]

        Coded.__name__ = Coded.__qualname__ = rule.__name__
        return Coded

    extension.validation_rules = [with_code(rule) for rule in extension.validation_rules]
    return extension


def _more_tokens_than(query: str, limit: int) -> bool:
    """Whether `query` has more than `limit` tokens (as graphql-core's parser counts them)."""
    lexer = Lexer(Source(query))
    try:
        for _ in range(limit + 1):
            if lexer.advance().kind == TokenKind.EOF:
                return False
    except GraphQLError:  # an unlexable character before the limit
        return False
    return True


class SyntaxErrorCodes(SchemaExtension):
    """Gives the parser's errors their code (they carry none): TOO_MANY_TOKENS when the
    document is over the token limit, GRAPHQL_PARSE_FAILED otherwise. (The ParserCache parses
    as its hook starts: its error passes through the operation, not through parsing hooks.)"""

    def on_operation(self) -> Iterator[None]:
        try:
            yield
        except GraphQLSyntaxError as error:
            self._code(error)
            raise
        for error in self.execution_context.pre_execution_errors or ():
            if isinstance(error, GraphQLSyntaxError):
                self._code(error)

    def _code(self, error: GraphQLSyntaxError) -> None:
        if (error.extensions or {}).get("code"):
            return
        ctx = self.execution_context
        limit = ctx.parse_options.get("max_tokens")
        too_many = limit is not None and _more_tokens_than(ctx.query or "", limit)
        error.extensions = {"code": errors.TOO_MANY_TOKENS if too_many else errors.PARSE_FAILED}


# ---------------------------------------------------------------- metrics


class OperationMetrics(SchemaExtension):
    """Counts and times every operation under a label from a bounded set: `query:eligibility`
    for a valid operation whose root fields are all the same field of the schema (aliases
    included), `other` for anything else — several fields, fragments at the root, a document
    that does not parse or validate, an operation type refused."""

    valid = False

    def on_validate(self) -> Iterator[None]:
        yield
        self.valid = not self.execution_context.pre_execution_errors

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        failed = True
        try:
            yield
            ctx = self.execution_context
            result = ctx.result
            failed = bool(ctx.pre_execution_errors or (result is not None and result.errors))
        finally:
            services = getattr(self.execution_context.context, "services", None)
            if services is not None:
                metrics, label = services.metrics, self._label()
                outcome = "error" if failed else "ok"
                metrics.labelled(metrics.graphql_operations, label, outcome).inc()
                latency = metrics.labelled(metrics.graphql_latency, label)
                latency.observe(time.perf_counter() - started)

    def _label(self) -> str:
        ctx = self.execution_context
        operation = _operation(ctx.graphql_document, ctx.operation_name)
        if operation is None or not self.valid:
            return OTHER  # names in an invalid document are the caller's, not the schema's
        names = {
            s.name.value if isinstance(s, FieldNode) else None
            for s in operation.selection_set.selections
        }
        if len(names) != 1 or None in names:
            return OTHER
        return f"{operation.operation.value}:{names.pop()}"


def _operation(document: DocumentNode | None, name: str | None) -> OperationDefinitionNode | None:
    """The operation that runs: the one named `name`, else the first (strawberry's rule)."""
    for definition in document.definitions if document else ():
        if isinstance(definition, OperationDefinitionNode) and (
            name is None or (definition.name is not None and definition.name.value == name)
        ):
            return definition
    return None


# ---------------------------------------------------------------- limits per request


class RequestLimits(SchemaExtension):
    """Checks made once a request is known to be valid, before anything runs, cheapest first:

    - at most MAX_BATCH credit codes in the whole request, every `eligibilities` field and
      alias counted, duplicates included: BATCH_TOO_LARGE;
    - a heavy request (more than HEAVY_CODES codes) runs only while the worker runs fewer than
      its limit of them; otherwise it is refused at once: OVERLOADED (HTTP 503, Retry-After);
    - no string holds a NUL character (PostgreSQL text cannot): INVALID_STRING.
    A query is marked cancellable: it stops when its client disconnects (api.app)."""

    def on_execute(self) -> Iterator[None]:
        ctx = self.execution_context
        services = getattr(ctx.context, "services", None)
        operation = _operation(ctx.graphql_document, ctx.operation_name)
        if operation is None:  # strawberry refuses it before this hook
            yield
            return
        if services is not None:
            ctx.context.cancellable = operation.operation == OperationType.QUERY
        refusal, admitted = None, False
        codes = _codes_asked(ctx.graphql_document, operation, ctx.variables or {})
        if codes > MAX_BATCH:
            refusal = GraphQLError(
                f"at most {MAX_BATCH} credit codes per request (every `eligibilities` field "
                f"and alias counted), got {codes}: split the batch",
                extensions={"code": errors.BATCH_TOO_LARGE, "max": MAX_BATCH, "got": codes},
            )
        elif codes > HEAVY_CODES and services is not None:
            admitted = services.admission.enter()
            if not admitted:
                refusal = GraphQLError(
                    f"this worker is busy with {services.admission.limit} large requests: "
                    "retry shortly",
                    extensions={"code": errors.OVERLOADED},
                )
        refusal = refusal or _nul_string(ctx.query or "", ctx.graphql_document, ctx.variables)
        if refusal is not None:
            ctx.result = ExecutionResult(data=None, errors=[refusal])  # nothing runs
        try:
            yield
        finally:
            if admitted:
                services.admission.leave()


def _codes_asked(
    document: DocumentNode, operation: OperationDefinitionNode, variables: dict[str, Any]
) -> int:
    """Credit codes the operation asks for: the items of every `eligibilities(requests:)`."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    defaults = {
        d.variable.name.value: d.default_value for d in operation.variable_definitions or ()
    }
    values = {**defaults, **variables}
    return _count_codes(operation.selection_set, fragments, values, set())


def _count_codes(
    selections: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any],
    seen: set[str],
) -> int:
    total = 0
    for s in selections.selections:
        if isinstance(s, FieldNode) and s.name.value == "eligibilities":
            total += sum(
                _items(a.value, variables) for a in s.arguments if a.name.value == "requests"
            )
        elif isinstance(s, InlineFragmentNode):
            total += _count_codes(s.selection_set, fragments, variables, seen)
        elif isinstance(s, FragmentSpreadNode) and s.name.value not in seen:
            fragment = fragments.get(s.name.value)
            if fragment is not None:
                seen = {*seen, s.name.value}
                total += _count_codes(fragment.selection_set, fragments, variables, seen)
    return total


def _items(value: Any, variables: dict[str, Any]) -> int:
    """How many items a list argument holds: written in the document, or a variable's."""
    if isinstance(value, VariableNode):
        value = variables.get(value.name.value)
        if isinstance(value, VariableNode):  # a default may not name another variable
            return 0
        if not isinstance(value, ListValueNode | ObjectValueNode):  # JSON, not a default
            return len(value) if isinstance(value, list) else int(value is not None)
    if isinstance(value, ListValueNode):
        return len(value.values)
    return int(value is not None)  # one object, taken as a list of one


_NUL_ESCAPE = re.compile(r"\\u(0000|\{0+\})")


def _nul_string(
    query: str, document: DocumentNode | None, variables: dict[str, Any] | None
) -> GraphQLError | None:
    """An error naming the first string of the request that holds a NUL character."""
    todo: list[tuple[str, Any]] = [(f"${name}", value) for name, value in (variables or {}).items()]
    while todo:  # variables may nest deep: no recursion
        where, value = todo.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return _nul_error(f"variable {where}")
        elif isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    return _nul_error(f"a key of variable {where}")
                todo.append((f"{where}.{key}", item))
        elif isinstance(value, list):
            todo.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
    if document is not None and _NUL_ESCAPE.search(query):  # an escape may spell one out
        strings = _NulStrings()
        visit(document, strings)
        if strings.found:
            return GraphQLError(
                _nul_message("a string in the document"),
                strings.found[0],
                extensions={"code": errors.INVALID_STRING},
            )
    return None


class _NulStrings(Visitor):
    """The document's string values that hold a NUL character."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[StringValueNode] = []

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        if "\x00" in node.value:
            self.found.append(node)


def _nul_message(where: str) -> str:
    return f"{where} holds a NUL character (U+0000), which no stored text may hold"


def _nul_error(where: str) -> GraphQLError:
    return GraphQLError(_nul_message(where), extensions={"code": errors.INVALID_STRING})


# ---------------------------------------------------------------- no cycles


def leave_no_cycles(executor: type[T]) -> type[T]:
    """`executor` (strawberry's graphql-core executor), holding no reference cycle.

    graphql-core hands resolvers helpers bound to the executor (`info.async_helpers`), which
    keeps them: a cycle that keeps every request's objects (context, loaders and what they
    loaded, errors) alive until the cyclic GC runs — under load, until a full collection,
    which stalls every request in flight. Helpers holding the executor weakly free it all by
    reference counting as soon as the response is built; the executor lives as long as its
    work runs."""

    class Executor(executor):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.async_helpers = GraphQLResolveInfoHelpers(*map(_weakly, self.async_helpers))

    return Executor


def _weakly(method: Callable[..., Any]) -> Callable[..., Any]:
    ref = weakref.WeakMethod(method)  # type: ignore[arg-type]
    return lambda *args: ref()(*args)  # type: ignore[misc]
