"""Per-request DataLoaders of the reviewers' schema: every relation of a credit file is loaded
for all parents of a request level at once (registry.creditfile), never one query per row.

Built lazily on first use into the request's `Context.extra`, so they live exactly one request;
a mutation drops them after it writes (`forget`), so its payload reads what it wrote."""

from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

from strawberry.dataloader import DataLoader

from api.context import Context, Services
from registry import creditfile
from registry.creditfile import Page, Row, View

_KEY = "reviewer"

PageKey = tuple[int, int, Any, tuple[tuple[str, tuple[Any, ...]], ...]]
"""(parent id, first, after cursor value, filters)"""


class ReviewerLoaders:
    def __init__(self, services: Services) -> None:
        self.read = services.read
        self._loaders: dict[Hashable, DataLoader] = {}

    def _get(self, key: Hashable, load_fn: Any) -> DataLoader:
        loader = self._loaders.get(key)
        if loader is None:
            loader = self._loaders[key] = DataLoader(load_fn=load_fn)
        return loader

    def row(self, view: View) -> DataLoader[int, Row | None]:
        """One row of `view` by id."""

        async def load(ids: list[int]) -> list[Row | None]:
            found = await self.read(lambda conn: creditfile.children(conn, view, "id", ids))
            return [found[i][0] if found[i] else None for i in ids]

        return self._get(("row", view), load)

    def children(self, view: View, column: str) -> DataLoader[int, list[Row]]:
        """All rows of `view` whose `column` is the key, in the view's order."""

        async def load(ids: list[int]) -> list[list[Row]]:
            found = await self.read(lambda conn: creditfile.children(conn, view, column, ids))
            return [found[i] for i in ids]

        return self._get(("children", view, column), load)

    def page(self, view: View, column: str) -> DataLoader[PageKey, Page]:
        """A keyset page of the rows whose `column` is the key's parent id."""

        async def load(keys: list[PageKey]) -> list[Page]:
            groups: dict[tuple, list[int]] = defaultdict(list)
            for parent, *rest in keys:
                groups[tuple(rest)].append(parent)
            found: dict[PageKey, Page] = {}

            async def read(conn: Any) -> None:
                for (first, after, filters), parents in groups.items():
                    pages = await creditfile.pages(
                        conn, view, column, parents, first, after, filters
                    )
                    for parent, page in pages.items():
                        found[(parent, first, after, filters)] = page

            await self.read(read)
            return [found[k] for k in keys]

        return self._get(("page", view, column), load)


def loaders(ctx: Context) -> ReviewerLoaders:
    found = ctx.extra.get(_KEY)
    if found is None:
        found = ctx.extra[_KEY] = ReviewerLoaders(ctx.services)
    return found


def forget(ctx: Context, credit_codes: Sequence[str] = ()) -> None:
    """After a write: later reads of this request load afresh."""
    ctx.extra.pop(_KEY, None)
    for code in credit_codes:
        ctx.standings.clear(code)
