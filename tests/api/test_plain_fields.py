"""Plain fields (api.schema.plain) are read without graphql-core's per-field machinery: the
results and errors must be exactly graphql-core's, whatever the objects hold and however the
query selects them."""

import asyncio
import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
import strawberry
from hypothesis import given, settings
from hypothesis import strategies as st
from strawberry import relay
from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig

from api.schema.execution import Schema


@strawberry.enum
class Kind(enum.Enum):
    WELL = "WELL"
    PUMP = "PUMP"


@strawberry.type
class Item:
    code: str
    note: str | None
    tags: list[str]
    kind: Kind


@strawberry.type
class Thing(relay.Node):
    id: relay.NodeID[int]
    label: str


@strawberry.type
class Box:
    name: str
    items: list[Item]
    first: Item | None
    thing: Thing | None
    things: list[Thing]


@dataclass
class Holder:
    """What a resolver may hand over: any attribute may be missing, null or of a wrong type."""

    values: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None


BOXES: dict[str, Any] = {}


@strawberry.type
class Query:
    @strawberry.field
    def box(self, key: str) -> Box:
        return BOXES[key]


def schema(plain: bool) -> Schema:
    built = Schema(query=Query, types=[Thing], max_tokens=2000, rules=(), cache_size=16)
    if not plain:
        built.execution_context_class.plain_fields = {}  # graphql-core's path for every field
    return built


FAST, REFERENCE = schema(plain=True), schema(plain=False)

NODES = "query($k: String!) { box(key: $k) { thing { id label __typename } things { id } } }"
QUERIES = [
    "query($k: String!) { box(key: $k) { name items { code note tags kind } first { code } } }",
    "query($k: String!) { box(key: $k) { items { c: code c2: code t: __typename } } }",
    "query($k: String!) { box(key: $k) { items { ...F } first { ...F } } }"
    " fragment F on Item { code kind }",
    "query($k: String!) { box(key: $k) { items { ... on Item { note tags } } } }",
    "query($k: String!) { box(key: $k) { items { code } items { note } } }",
    NODES,
    "query($k: String!, $n: Boolean!) { box(key: $k) { items { code note @include(if: $n) } } }",
]

values = st.one_of(
    st.none(),
    st.text(max_size=3),
    st.integers(-3, 3),
    st.sampled_from([Kind.WELL, Kind.PUMP, "WELL", "nope", 1.5]),
    st.lists(st.one_of(st.text(max_size=2), st.none(), st.integers(0, 2)), max_size=3),
    st.just({"a": 1}),
)
items = st.dictionaries(st.sampled_from(["code", "note", "tags", "kind"]), values).map(Holder)
things = st.one_of(
    st.builds(Thing, id=values, label=values),  # Thing checks nothing: any value may be there
    st.dictionaries(st.sampled_from(["id", "label"]), values).map(Holder),  # not a Thing
)
boxes = st.fixed_dictionaries(
    {"name": st.text(max_size=3)},
    optional={
        "items": st.one_of(st.lists(items, max_size=3), st.none()),
        "first": items,
        "thing": st.one_of(things, st.none()),
        "things": st.lists(things, max_size=3),
    },
).map(Holder)


async def both(query: str, variables: dict) -> tuple:
    fast = await FAST.execute(query, variables)
    reference = await REFERENCE.execute(query, variables)
    return (fast.data, _errors(fast)), (reference.data, _errors(reference))


def _errors(result) -> list | None:
    return result.errors and sorted((e.message, tuple(e.path or ())) for e in result.errors)


@settings(max_examples=300, deadline=None)
@given(box=boxes, query=st.sampled_from(QUERIES), include=st.booleans())
def test_plain_reads_give_graphql_cores_results_and_errors(box, query, include):
    BOXES["b"] = box
    fast, reference = asyncio.run(both(query, {"k": "b", "n": include}))
    assert fast == reference


node_boxes = st.builds(
    lambda thing, things: Holder({"name": "n", "items": [], "thing": thing, "things": things}),
    st.one_of(things, st.none()),
    st.lists(things, max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(box=node_boxes)
def test_relay_ids_and_type_checks_are_graphql_cores(box):
    """A Node's id is strawberry's GlobalID of the type and the id attribute; an object that is
    not of the field's type is graphql-core's error, not a projection."""
    BOXES["n"] = box
    fast, reference = asyncio.run(both(NODES, {"k": "n"}))
    assert fast == reference


ON_THE_OBJECT = (
    "query($k: String!, $n: Boolean!) { box(key: $k) { name @include(if: $n) items { code } } }"
)


@pytest.mark.parametrize("include", [True, False, True])
async def test_a_selection_under_a_variable_directive_follows_each_requests_variables(include):
    """The executor remembers selections and projections per document, but never one whose
    shape depends on the variables: the same document with @include(if: false) must not reuse
    what it worked out for `true` — on a plain object (items) or another (box)."""
    BOXES["d"] = Holder({"name": "n", "items": [Holder({"code": "c", "note": "x"})]})
    result = await FAST.execute(QUERIES[-1], {"k": "d", "n": include})
    assert result.errors is None
    expected = {"code": "c", "note": "x"} if include else {"code": "c"}
    assert result.data == {"box": {"items": [expected]}}
    result = await FAST.execute(ON_THE_OBJECT, {"k": "d", "n": include})
    expected = {"name": "n", "items": [{"code": "c"}]}
    assert result.data == {"box": expected if include else {"items": [{"code": "c"}]}}


async def test_plain_fields_take_the_short_path():
    """The path under test is the one taken: the reference executor reads nothing plainly."""
    plain = FAST.execution_context_class.plain_fields
    assert set(plain["Item"]) == {"code", "note", "tags", "kind"}
    assert plain["Box"]["items"].is_list and not plain["Box"]["items"].is_leaf
    assert plain["Thing"]["id"].node_type == "Thing"
    assert REFERENCE.execution_context_class.plain_fields == {}


# Cases a review found where a plain read could have differed from graphql-core's.


class Deny(BasePermission):
    message = "denied"

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return False


class Upper(FieldExtension):
    def resolve(self, next_: Any, source: Any, info: Any, **kwargs: Any) -> Any:
        return next_(source, info, **kwargs).upper()


@strawberry.type
class Guarded:
    salary: int | None = strawberry.field(permission_classes=[Deny])
    shout: str = strawberry.field(extensions=[Upper()])
    data: JSON | None


class LegacyThing(Thing):  # a Python subclass of a Node type that makes its ids its own way
    @classmethod
    def resolve_id(cls, root: Any, *, info: Any) -> str:
        return f"legacy-{root.id}"


class LazyRow:  # an ORM row whose lazy attribute fails with something else than AttributeError
    code = "c"
    tags: ClassVar[list[str]] = []
    kind = Kind.WELL

    @property
    def note(self) -> str:
        raise RuntimeError("lazy load failed")


async def later() -> dict:
    return {"a": 1}


@strawberry.type
class Odd:
    @strawberry.field
    def guarded(self) -> Guarded:
        return Guarded(salary=100, shout="hi", data=None)

    @strawberry.field
    def awaiting(self) -> Guarded:
        return Guarded(salary=None, shout="hi", data=later())

    @strawberry.field
    def legacy(self) -> list[Thing]:
        return [LegacyThing(id=1, label="x")]

    @strawberry.field
    def lazy(self) -> Box:
        return Box(name="n", items=[LazyRow()], first=LazyRow(), thing=None, things=[])


def odd_schema(plain: bool, **config: Any) -> Schema:
    built = Schema(
        query=Odd, max_tokens=2000, rules=(), cache_size=16, config=StrawberryConfig(**config)
    )
    if not plain:
        built.execution_context_class.plain_fields = {}
    return built


@pytest.mark.parametrize(
    "query",
    [
        "{ guarded { salary shout } }",  # permissions and extensions run
        "{ awaiting { data } }",  # an awaitable value is awaited
        "{ legacy { id label } }",  # the subclass's resolve_id is used
        "{ lazy { name first { code note } items { note } } }",  # the error is the field's
    ],
)
async def test_what_only_graphql_core_can_do_takes_its_path(query):
    fast = await odd_schema(True).execute(query)
    reference = await odd_schema(False).execute(query)
    assert (fast.data, _errors(fast)) == (reference.data, _errors(reference))


async def test_no_plain_reads_under_another_default_resolver():
    """Plain reads are getattr: a schema resolving attributes another way reads nothing plainly."""
    subscripting = odd_schema(True, default_resolver=lambda obj, name: obj[name])
    assert subscripting.execution_context_class.plain_fields == {}
