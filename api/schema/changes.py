"""The change feed for approval systems that keep their own copy (docs/api.md, "Change feed"):
`decisionChanges(after, first)`, oldest first, and a company's decision history on its credit
file. Read from registry.changes; nothing here decides."""

from datetime import datetime

import strawberry
from strawberry import relay

from api.errors import INVALID_PAGE, ApiError
from api.schema.base import Info, root_field
from api.schema.enums import DecisionEnum, GradeEnum
from registry import changes
from registry.roles import Action
from scoring.decision import StandingSummary as Summary

DEFAULT_FIRST = 100


@strawberry.type(description="What approval systems keep of a company's standing.")
class StandingSummary:
    decision: DecisionEnum = strawberry.field(
        description="The most restrictive decision over the five application kinds."
    )
    grade: GradeEnum | None
    score: float | None
    restricted_until: datetime | None

    @classmethod
    def of(cls, s: Summary | None) -> "StandingSummary | None":
        if s is None:
            return None
        return cls(
            decision=s.decision, grade=s.grade, score=s.score, restricted_until=s.restricted_until
        )


@strawberry.type(description="A change of a company's decision, grade or restrictedUntil.")
class DecisionChange:
    credit_code: str
    changed_at: datetime
    previous: StandingSummary | None = strawberry.field(
        description="Null the first time the company is scored."
    )
    current: StandingSummary
    rulebook_version: str

    @classmethod
    def from_row(cls, row: dict) -> "DecisionChange":
        return cls.of(changes.from_row(row))

    @classmethod
    def of(cls, c: changes.Change) -> "DecisionChange":
        return cls(
            credit_code=c.credit_code,
            changed_at=c.changed_at,
            previous=StandingSummary.of(c.previous),
            current=StandingSummary.of(c.current),
            rulebook_version=c.rulebook_version,
        )


async def change_page(
    info: Info, after: str | None, first: int, company_id: int | None = None
) -> relay.Connection[DecisionChange]:
    if not 0 <= first <= changes.MAX_PAGE:
        raise ApiError(f"first must be between 0 and {changes.MAX_PAGE}", INVALID_PAGE)
    try:
        after_id = 0 if after is None else changes.change_id_of(after)
    except changes.InvalidCursor as e:
        raise ApiError(str(e), INVALID_PAGE) from None

    def read(conn):
        return conn.run_sync(
            lambda sync: changes.page(sync, after=after_id, first=first, company_id=company_id)
        )

    found, more = await info.context.services.read(read)
    edges = [relay.Edge(node=DecisionChange.of(c), cursor=c.cursor) for c in found]
    return relay.Connection(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=more,
            has_previous_page=after_id > 0,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else after,
        ),
    )


@strawberry.type
class Query:
    @root_field(
        Action.READ_DECISIONS,
        description=(
            "Every change of a company's decision, grade or restrictedUntil, oldest first, for "
            "approval systems that keep their own copy. Pass the last cursor seen as `after`."
        ),
    )
    async def decision_changes(
        self, info: Info, after: str | None = None, first: int | None = DEFAULT_FIRST
    ) -> relay.Connection[DecisionChange]:
        return await change_page(info, after, DEFAULT_FIRST if first is None else first)
