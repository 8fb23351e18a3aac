"""How an operation runs: parsed and validated once per distinct query text, then executed by
graphql-core on the strawberry schema, timed and counted per operation.

This replaces strawberry's extension runner (ParserCache, ValidationCache, MaxTokensLimiter,
AddValidationRules and a metrics extension), whose per-request context managers cost more CPU
than executing an `eligibility` query; the rules and limits applied are the same."""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

import strawberry
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLNonNull,
    GraphQLObjectType,
    OperationDefinitionNode,
    Undefined,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import ASTValidationRule
from strawberry.exceptions import MissingQueryError
from strawberry.execution import optimized_is_awaitable
from strawberry.schema._graphql_core import execute, execution_context_class_kwargs
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from api.schema import plain

CACHEABLE_QUERY_CHARS = 8 * 1024
"""Longer query texts are prepared anew each time: a prepared document keeps ~16 bytes per
character of its text, so the cache holds ~32 MB at most (the operations in graphql/operations
are ≤ 3.3 kB; a 1,000-code batch passes its codes as variables)."""


@dataclass
class Prepared:
    """A query text, parsed and validated: its document, or the errors that stop it."""

    document: DocumentNode | None
    errors: list[GraphQLError] | None
    labels: dict[str | None, str] = field(default_factory=dict)  # operationName → metric label
    memo: dict = field(default_factory=dict)  # the executor's, see Executor._remember


MEMO_PER_DOCUMENT = 128
"""Selections a prepared document remembers collections and projections for (a few each)."""

NOTHING = object()  # remembered: there is nothing to reuse for this selection


class Executor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, reading plain fields directly (api.schema.plain), remembering
    what it works out from the document alone with the prepared document, and leaving no
    reference cycle behind."""

    plain_fields: ClassVar[dict[str, dict[str, plain.PlainField]]] = {}  # per schema: Schema

    def __init__(self, *args: Any, memo: dict | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.memo = {} if memo is None else memo  # the prepared document's

    def execute_field(self, parent_type, source, field_details_list, path, position_context):
        fields = self.plain_fields.get(parent_type.name)
        field = fields.get(field_details_list[0].node.name.value) if fields else None
        if field is not None:
            if field.is_leaf:
                value = plain.read(field, source)
            else:
                shape = self._projection(field.type, field_details_list)
                value = Undefined if shape is None else plain.read(field, source, shape)
            if value is not Undefined:
                return value
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def complete_value(self, return_type, field_details_list, info, path, result, position_context):
        """An object that a resolver returned (a root field's decision, say) is projected too
        when its selection is all plain fields."""
        kind = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
        if isinstance(kind, GraphQLObjectType):
            shape = self._projection(kind, field_details_list)
            if shape is not None:
                completed = plain.project(kind, shape, result)
                if completed is not Undefined:
                    return completed
        return super().complete_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def collect_subfields(self, return_type, field_details_list):
        """graphql-core collects an object's selection anew in every request."""
        collect = super().collect_subfields
        collected = self._remember(
            ("collected", return_type.name),
            field_details_list,
            lambda: collect(return_type, field_details_list),
        )
        return collect(return_type, field_details_list) if collected is None else collected

    def _projection(self, kind: GraphQLObjectType, details: list) -> plain.Projection | None:
        def work() -> Any:
            grouped = self.collect_subfields(kind, details)[0]
            fields = self.plain_fields.get(kind.name, {})
            shape = plain.projection(kind, grouped.items(), fields, self._projection)
            return shape or NOTHING

        return self._remember(("projection", kind.name), details, work)

    def _remember(self, kind: tuple, details: list, work: Callable[[], Any]) -> Any:
        """What `work` makes of a selection (the fields `details` merge), kept with the prepared
        document, whose nodes (and so their ids) live as long as it does. Only for a selection
        that no variable can change (no directives, no fragment variables); None for others."""
        key = (*kind, *(id(d.node) for d in details))
        found = self.memo.get(key)
        if found is None:
            static = not any(
                d.fragment_variable_values is not None
                or plain.has_directives(d.node.selection_set, self.fragment_definitions)
                for d in details
            )
            found = work() if static else NOTHING
            if len(self.memo) < MEMO_PER_DOCUMENT:
                self.memo[key] = found
        return None if found is NOTHING else found

    def build_response(self, data: dict[str, Any] | None) -> Any:
        """graphql-core's executor refers to itself through its resolve-info helpers (bound
        methods): a cycle that keeps each request's objects (context, loaders, results; ~100)
        alive until the cyclic GC runs — and, under load, until a full collection, which stalls
        every request in flight. Breaking it once the response is built lets reference counting
        free them at once. The helpers serve only async `is_type_of` and work that outlives the
        response: neither is used by this schema (strawberry's `is_type_of` is sync; no @defer
        or @stream)."""
        response = super().build_response(data)
        self.async_helpers = None  # type: ignore[assignment]
        return response


class Schema(strawberry.Schema):
    def __init__(
        self,
        *,
        max_tokens: int,
        rules: Iterable[type[ASTValidationRule]],
        cache_size: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(execution_context_class=Executor, **kwargs)
        # Plain fields are read with getattr: only when that is the schema's default resolver.
        reads = plain.plain_fields(self._schema) if self.config.default_resolver is getattr else {}
        self.execution_context_class = type("Executor", (Executor,), {"plain_fields": reads})
        self.max_tokens = max_tokens
        self.rules = (
            *specified_rules,
            *rules,
            MaybeNullValidationRule,  # strawberry's own rules, as its validation adds them
            OneOfInputValidationRule,
        )
        self._cached_prepare = lru_cache(maxsize=cache_size)(self._prepare)
        self._execution_kwargs = execution_context_class_kwargs(self.execution_context_class)

    def process_errors(self, errors, execution_context=None) -> None:
        """Logging is the error policy's (api.schema.errors), which knows which errors are
        expected."""

    def prepare(self, query: str) -> Prepared:
        if len(query) > CACHEABLE_QUERY_CHARS:
            return self._prepare(query)
        return self._cached_prepare(query)

    def _prepare(self, query: str) -> Prepared:
        try:
            document = parse(query, max_tokens=self.max_tokens)
        except GraphQLError as error:
            return Prepared(None, [error])
        return Prepared(document, validate(self._schema, document, self.rules) or None)

    async def execute(  # strawberry's signature
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        if not query:
            raise MissingQueryError
        started = time.perf_counter()
        prepared = self.prepare(query)
        document = prepared.document
        result = ExecutionResult(data=None, errors=prepared.errors and list(prepared.errors))
        failed = True
        name = operation_name
        try:
            if document is not None:
                operation = _operation(document, operation_name)
                if operation is None:
                    raise CannotGetOperationTypeError(operation_name)
                if name is None and operation.name is not None:
                    name = operation.name.value  # strawberry's rule: unnamed, the first one runs
                kind = OperationType(operation.operation.value)
                if allowed_operation_types is not None and kind not in allowed_operation_types:
                    raise InvalidOperationTypeError(kind)
                if prepared.errors is None:
                    result = await self._run(
                        prepared, variable_values, context_value, root_value, name
                    )
            failed = bool(result.errors)
        finally:
            services = getattr(context_value, "services", None)
            if services is not None:
                metrics, label = services.metrics, _label(self, prepared, name)
                outcome = "error" if failed else "ok"
                metrics.labelled(metrics.graphql_operations, label, outcome).inc()
                latency = metrics.labelled(metrics.graphql_latency, label)
                latency.observe(time.perf_counter() - started)
        return result

    async def _run(self, prepared, variables, context, root, operation_name) -> ExecutionResult:
        try:
            outcome = execute(
                self._schema,
                prepared.document,
                root_value=root,
                context_value=context,
                variable_values=variables,
                operation_name=operation_name,
                is_awaitable=optimized_is_awaitable,
                memo=prepared.memo,
                **self._execution_kwargs,
            )
            if optimized_is_awaitable(outcome):
                outcome = await outcome
        except Exception as e:  # a bug of ours, not the caller's: the error policy logs and masks
            return ExecutionResult(data=None, errors=[GraphQLError(str(e), original_error=e)])
        return ExecutionResult(data=outcome.data, errors=outcome.errors)

    def execute_sync(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        raise NotImplementedError("the resolvers are async: use execute")


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    """The operation named `name`, or without a name the first one (as strawberry chose)."""
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (
            name is None or (definition.name is not None and definition.name.value == name)
        ):
            return definition
    return None


def _label(schema: Schema, prepared: Prepared, operation_name: str | None) -> str:
    """The operation's metric label: its type and root fields, a bounded set — names that are
    not in the schema make it `invalid`."""
    label = prepared.labels.get(operation_name)
    if label is None:
        label = _operation_label(schema, prepared.document, operation_name)
        if len(prepared.labels) < 16:  # operation names come from the caller: keep a few
            prepared.labels[operation_name] = label
    return label


def _operation_label(schema: Schema, document: DocumentNode | None, name: str | None) -> str:
    operation = document and get_operation_ast(document, name)
    if not isinstance(operation, OperationDefinitionNode):
        return "invalid"
    root = schema._schema.get_root_type(operation.operation)
    names = set()
    for selection in operation.selection_set.selections:
        if not isinstance(selection, FieldNode):
            names.add("fragment")
        elif root is not None and selection.name.value in root.fields:
            names.add(selection.name.value)
        elif not selection.name.value.startswith("__"):
            return "invalid"
    return f"{operation.operation.value}:{'+'.join(sorted(names)) or 'introspection'}"
