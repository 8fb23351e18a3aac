"""Reviewers' and admins' reads: one credit file, a filtered list of them, and the
key-supervision list. (Any record of a file is also reachable by `node(id)`.)"""

from datetime import date

import strawberry
from strawberry import relay

from api.errors import INVALID_CREDIT_CODE, ApiError
from api.schema.base import Info, root_field
from api.schema.enums import GradeEnum
from api.schema.reviewer_types import (
    DEFAULT_PAGE,
    CreditFile,
    SupervisionEntry,
    build,
    by_id,
    connection,
    decode_cursor,
    page_size,
)
from registry import creditfile
from registry.creditcode import InvalidCreditCode, normalize_credit_code
from registry.roles import Action
from scoring import periods


@strawberry.input(description="Every given condition must hold.")
class CompanyFilter:
    grades: list[GradeEnum] | None = strawberry.field(
        default=None, description="Latest grade is one of these."
    )
    city: str | None = strawberry.field(
        default=None, description='A project in this city: "太原" matches "太原市小店区".'
    )
    listed: bool | None = strawberry.field(default=None, description="Has an active listing.")
    search: str | None = strawberry.field(
        default=None, description="Part of the name, or the beginning of the credit code."
    )


def _code(raw: str) -> str:
    try:
        return normalize_credit_code(raw)
    except InvalidCreditCode as e:
        raise ApiError(str(e), INVALID_CREDIT_CODE, creditCode=raw, problem=e.problem) from None


def _due_cursor(value: str) -> tuple[date, int]:
    due, _, company_id = value.partition("/")
    return date.fromisoformat(due), int(company_id)


@strawberry.type
class Query:
    @root_field(
        Action.READ_CREDIT_FILES, description="A company's credit file; null when there is none."
    )
    async def company(self, info: Info, credit_code: str) -> CreditFile | None:
        filed = await info.context.standings.load(_code(credit_code))
        if filed is None:
            return None
        return await by_id(info, CreditFile, filed.company_id)

    @root_field(Action.READ_CREDIT_FILES, description="Credit files by company id, filtered.")
    async def companies(
        self,
        info: Info,
        filter: CompanyFilter | None = None,
        first: int = DEFAULT_PAGE,
        after: str | None = None,
    ) -> relay.Connection[CreditFile]:
        f = filter or CompanyFilter()
        wanted = creditfile.CompanyFilter(
            grades=[g.value for g in f.grades or ()],
            city=(f.city or "").strip() or None,
            listed=f.listed,
            search=(f.search or "").strip() or None,
        )
        ctx = info.context
        size, cursor = page_size(first), decode_cursor(after, int)
        page = await ctx.services.read(
            lambda conn: creditfile.companies(conn, wanted, ctx.now, size, cursor)
        )
        edges = [(build(CreditFile, r), r["id"]) for r in page.rows]
        return connection(edges, page.has_next, after)

    @root_field(
        Action.READ_CREDIT_FILES,
        description=(
            "The key-supervision list (重点监督): companies graded C or D, or listed, with their "
            "last inspection and the next one due (rulebook: quarterly), soonest due first."
        ),
    )
    async def supervision_list(
        self, info: Info, first: int = DEFAULT_PAGE, after: str | None = None
    ) -> relay.Connection[SupervisionEntry]:
        ctx = info.context
        today = periods.local_date(ctx.now, ctx.services.rulebook)
        every = ctx.services.rulebook.supervision.inspection_every_months
        size, cursor = page_size(first), decode_cursor(after, _due_cursor)
        page = await ctx.services.read(
            lambda conn: creditfile.supervision_list(conn, ctx.now, today, every, size, cursor)
        )
        edges = [
            (
                SupervisionEntry(
                    credit_file=build(CreditFile, r),
                    grade=r["grade"],
                    score=r["score"],
                    listed=r["listing_id"] is not None,
                    last_inspected_on=r["last_inspected_on"],
                    next_inspection_due=r["next_due"],
                    overdue=r["next_due"] < today,
                    last_inspection_id=r["last_inspection_id"],
                ),
                f"{r['next_due'].isoformat()}/{r['id']}",
            )
            for r in page.rows
        ]
        return connection(edges, page.has_next, after)
