"""Plain fields, read without graphql-core's machinery per field.

A plain field only reads an attribute of its parent with getattr: strawberry gives it no
resolver, no arguments, no permissions or other extensions. It returns a scalar or enum, an
object, or a list of either; so does, in effect, the Relay `id` of a Node type that keeps
strawberry's way of making it. An object whose whole selection is plain is completed through a
projection (api.schema.execution builds it once per prepared document), whether a plain field
or a resolver returned it. Most of a decision is plain, and graphql-core's work per field
(resolve info, strawberry's resolver wrapper, completion) cost more than the rest of an
`eligibility` request.

Only the happy path is taken here. Anything unusual — a missing attribute or one that raises, a
null where none may be, a value that does not coerce, an awaitable, an object of another class —
makes a read return Undefined, and graphql-core then does the whole field again and reports
exactly what it always reports (a property is then read twice)."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLID,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLString,
    InlineFragmentNode,
    SelectionSetNode,
    Undefined,
    is_leaf_type,
)
from strawberry import relay
from strawberry.execution import optimized_is_awaitable


@dataclass(frozen=True, slots=True)
class PlainField:
    attribute: str
    type: GraphQLLeafType | GraphQLObjectType  # of the value, or of each item of a list
    non_null: bool
    is_list: bool
    node_type: str | None = None  # a Relay id: the attribute is the node's id in this type
    node_class: type | None = None  # … when the object is exactly of this class
    complete: Callable[[Any], Any] = field(init=False)  # a leaf's value → coerced, or Undefined

    def __post_init__(self) -> None:
        if self.is_leaf:
            object.__setattr__(self, "complete", _leaf_completion(self.type, self.node_type))

    @property
    def is_leaf(self) -> bool:
        return not isinstance(self.type, GraphQLObjectType)


Projection = tuple[tuple[str, "PlainField | str", "Projection | None"], ...]
"""An object's selection: response key → its plain field (with, for an object, the projection
of its own selection), or the type's name for `__typename`."""


def plain_fields(schema: GraphQLSchema) -> dict[str, dict[str, PlainField]]:
    """type name → field name → PlainField, for every plain field of the schema's object types."""
    found: dict[str, dict[str, PlainField]] = {}
    for type_ in schema.type_map.values():
        if not isinstance(type_, GraphQLObjectType) or type_.name.startswith("__"):
            continue
        for name, field_def in type_.fields.items():
            definition = field_def.extensions.get("strawberry-definition")
            if definition is None:
                continue
            if definition.extensions:  # permissions or other extensions: strawberry's to run
                continue
            if definition.base_resolver is None:
                plain = _plain(definition.python_name, field_def.type)
            else:
                plain = _node_id(type_, definition, field_def.type)
            if plain is not None:
                found.setdefault(type_.name, {})[name] = plain
    return found


def _node_id(type_: GraphQLObjectType, field: Any, kind: GraphQLOutputType) -> PlainField | None:
    """The `id` of a Relay Node type, when strawberry makes it as it always does: the type's
    name and `getattr(node, <NodeID attribute>)`, as a GlobalID."""
    resolver = field.base_resolver
    if not isinstance(kind, GraphQLNonNull):
        return None
    if getattr(resolver.wrapped_func, "__func__", None) is not relay.Node._id.__func__:
        return None
    origin = type_.extensions["strawberry-definition"].origin
    if (
        origin.resolve_id.__func__ is not relay.Node.resolve_id.__func__
        or origin.resolve_typename.__func__ is not relay.Node.resolve_typename.__func__
    ):
        return None  # the type makes its ids its own way (a subclass may too: see node_class)
    attribute = origin.resolve_id_attr()
    return PlainField(attribute, kind.of_type, True, False, type_.name, node_class=origin)


def _plain(attribute: str, kind: GraphQLOutputType) -> PlainField | None:
    non_null = isinstance(kind, GraphQLNonNull)
    if non_null:
        kind = kind.of_type
    is_list = isinstance(kind, GraphQLList)
    if is_list:
        if not isinstance(kind.of_type, GraphQLNonNull):
            return None  # nullable items: rare, left to graphql-core
        kind = kind.of_type.of_type
    if is_leaf_type(kind) or isinstance(kind, GraphQLObjectType):
        return PlainField(attribute, kind, non_null, is_list)
    return None


def read(field: PlainField, source: Any, projection: Projection | None = None) -> Any:
    """The field's completed value (a leaf's, or an object's through `projection`), or
    Undefined where graphql-core must decide."""
    if field.node_class is not None and source.__class__ is not field.node_class:
        return Undefined  # a subclass may make its ids another way
    complete = field.complete if projection is None else partial(project, field.type, projection)
    try:
        value = getattr(source, field.attribute, Undefined)  # a property may raise
        if value is None:
            return Undefined if field.non_null else None
        if not field.is_list:
            return complete(value)
        if not isinstance(value, list | tuple):
            return Undefined
        items = [Undefined if item is None else complete(item) for item in value]
    except Exception:  # graphql-core's path reports it, located in the response
        return Undefined
    return Undefined if any(item is Undefined for item in items) else items


def project(kind: GraphQLObjectType, projection: Projection, value: Any) -> Any:
    """An object of type `kind` completed through `projection`, or Undefined."""
    if value is None or value is Undefined or _unusual(value):
        return Undefined
    try:
        if kind.is_type_of is not None and kind.is_type_of(value, None) is not True:
            return Undefined  # strawberry's checks the class, and needs no resolve info
        out = {}
        for key, sub, below in projection:
            if sub.__class__ is str:
                out[key] = sub  # __typename
                continue
            completed = read(sub, value, below)  # type: ignore[arg-type]
            if completed is Undefined:
                return Undefined
            out[key] = completed
    except Exception:  # graphql-core's path reports it
        return Undefined
    return out


def _unusual(value: Any) -> bool:
    """An Exception (graphql-core raises it) or an awaitable (graphql-core awaits it)."""
    return isinstance(value, Exception) or optimized_is_awaitable(value)


def _leaf_completion(leaf: Any, node_type: str | None) -> Callable[[Any], Any]:
    """How a leaf's (non-null) value is completed: graphql-core's coercion, with its answers
    that mean "an error" (None) turned into Undefined. Text that is already a str is what
    String and ID's coercion return as they are, and is returned at once."""
    coerce = leaf.coerce_output_value

    def complete(value: Any) -> Any:
        if value is Undefined or _unusual(value):
            return Undefined
        if node_type is not None:
            value = relay.GlobalID(type_name=node_type, node_id=str(value))
        coerced = coerce(value)
        return Undefined if coerced is None else coerced

    if node_type is None and (leaf is GraphQLString or leaf is GraphQLID):
        return lambda value: value if value.__class__ is str else complete(value)
    return complete


def has_directives(
    selection_set: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode]
) -> bool:
    """Whether any selection below uses a directive (@skip, @include, @defer…): then what is
    selected depends on more than the document, and no projection is kept for it."""
    if selection_set is None:
        return False
    for selection in selection_set.selections:
        if selection.directives:
            return True
        if isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is None or fragment.directives:
                return True
            if has_directives(fragment.selection_set, fragments):
                return True
        elif isinstance(selection, FieldNode | InlineFragmentNode) and has_directives(
            selection.selection_set, fragments
        ):
            return True
    return False


def projection(
    kind: GraphQLObjectType,
    grouped: Iterable[tuple[str, list]],
    fields: dict[str, PlainField],
    nested: Callable[[GraphQLObjectType, list], "Projection | None"],
) -> Projection | None:
    """The projection of an object's collected selection (response key → the fields it
    merges), if every selected field is plain (or `__typename`); `nested` makes an object
    field's own."""
    out: list[tuple[str, PlainField | str, Projection | None]] = []
    for key, details in grouped:
        name = details[0].node.name.value
        if name == "__typename":
            out.append((key, kind.name, None))
            continue
        plain = fields.get(name)
        if plain is None:
            return None
        below = None if plain.is_leaf else nested(plain.type, details)  # type: ignore[arg-type]
        if not plain.is_leaf and below is None:
            return None
        out.append((key, plain, below))
    return tuple(out)
