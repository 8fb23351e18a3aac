"""Each enum GraphQL publishes is the program's own enum: the same members, by name."""

import pytest
from graphql import GraphQLEnumType, build_schema

from api.schema import build_schema as build_strawberry_schema
from api.schema.enums import PUBLISHED

SDL = build_schema(build_strawberry_schema().as_str())


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_a_published_enum_has_the_values_of_its_python_enum(name):
    enum = PUBLISHED[name]
    published = SDL.type_map[name]
    assert isinstance(published, GraphQLEnumType)
    assert list(published.values) == [m.name for m in enum]
    # what the database stores and resolvers return is the value: it must name the member
    assert [m.value for m in enum] == [m.name for m in enum]


def test_every_enum_of_the_schema_is_wrapped_in_one_place():
    enums = {
        name
        for name, t in SDL.type_map.items()
        if isinstance(t, GraphQLEnumType) and not name.startswith("__")
    }
    assert enums == set(PUBLISHED)
