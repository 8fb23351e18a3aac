"""Companies as the platform describes them (Things, synced into the registry by the Things sync),
registry and reviewers' records written by their services, meter data stored as ingest stores
it (metrics_world), then rollup and scoring runs and the answers approval systems get."""

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import psycopg
import sqlalchemy as sa

from jobs import things
from jobs.rollup import run_rollup
from jobs.scoring_run import run_scoring
from registry import db, registration, reviews
from registry.standing import load_standings
from scoring.decision import Decision, decide
from scoring.model import ApplicationKind
from scoring.rulebook import load_rulebook
from tests.jobs.metrics_world import World, local, slot_ends

RB = load_rulebook()
ADMIN = "admin:test"
COUNTED = (
    "score_snapshot", "credit_finding", "finding_event", "listing", "listing_end",
    "not_evaluated",
)  # fmt: skip

UNITS = {"water_level": "m", "water_quality_tds": "mg/L", "water_quality_ph": "pH"}


@dataclass
class Well:
    code: str
    role: str
    streams: tuple[str, ...]
    operating: bool = True
    aquifer: str = "K1"


@dataclass
class Site:
    """One project of one company and its wells, as Things."""

    credit_code: str
    project: str
    type: str = "MEDIUM_DEEP"
    city: str = "运城市"
    wells: list[Well] = field(default_factory=list)
    company_name: str = "示例热力有限公司"

    def things(self, *, operating: bool | None = None, type: str | None = None) -> list[dict]:
        out = []
        for w in self.wells:
            props = {
                "wellCode": w.code, "role": w.role, "aquifer": w.aquifer,
                "projectCode": self.project, "projectType": type or self.type,
                "operating": w.operating if operating is None else operating,
                "companyCreditCode": self.credit_code, "companyName": self.company_name,
                "city": self.city,
            }  # fmt: skip
            streams = [
                {
                    "@iot.id": f"{w.code}:{s}",
                    "ObservedProperty": {"name": s},
                    "unitOfMeasurement": {"symbol": UNITS.get(s, "m3")},
                }
                for s in w.streams
            ]
            out.append({"@iot.id": w.code, "properties": props, "Datastreams": streams})
        return out


def doublet(credit_code: str, project: str, level: bool = False, **kw) -> Site:
    """A project with an extraction and a reinjection well (the extraction one with a level)."""
    e = ("extraction_volume", "water_level") if level else ("extraction_volume",)
    wells = [Well(f"{project}-E1", "EXTRACTION", e), Well(f"{project}-R1", "REINJECTION", (
        "reinjection_volume",))]  # fmt: skip
    return Site(credit_code, project, wells=wells, **kw)


class Registry:
    """The registry's services and jobs on one database."""

    def __init__(self, url: str, engine: sa.Engine):
        self.url = url
        self.engine = engine
        self.meters = World(engine)

    def _run(self, write) -> None:
        async def go() -> None:
            engine = db.make_async_engine(self.url, pool_size=1)
            try:
                async with db.transaction(db.session_factory(engine), ADMIN) as session:
                    await write(session)
            finally:
                await engine.dispose()

        asyncio.run(go())

    def sync(self, things_: list[dict], synced_at: datetime | None = None) -> None:
        """A Things sync, as a pull makes it (changes take effect at `synced_at`)."""
        self._run(lambda s: things.store_things(s, things_, synced_at))

    def zones(self, project: str, effective_from: datetime | None = None, **flags) -> None:
        flags = {"in_spring_protection_zone": False, "in_drinking_water_source": False,
                 "in_groundwater_restricted_zone": False} | flags  # fmt: skip
        data = registration.ZonesInput(project_code=project, **flags)
        self._run(
            lambda s: registration.set_project_zones(s, data, ADMIN, effective_from=effective_from)
        )

    def permit(self, project: str, annual: float, daily: float, **kw) -> None:
        data = registration.PermitInput(
            project_code=project, kind="WATER_PERMIT", number=f"取水-{project}",
            annual_total_m3=annual, daily_intensity_m3=daily, valid_from=date(2024, 1, 1),
        )  # fmt: skip
        self._run(lambda s: registration.record_permit(s, data, ADMIN, **kw))

    def register(self, site: Site, effective_from: datetime | None = None, **attrs) -> None:
        """An admin's registerProject of the site's project."""
        data = registration.ProjectInput(
            code=site.project, credit_code=site.credit_code, name=f"{site.project} 项目",
            type=site.type, city=site.city, **attrs,
        )  # fmt: skip
        self._run(
            lambda s: registration.register_project(
                s, data, ADMIN, site.company_name, effective_from=effective_from
            )
        )

    def drilled(self, site: Site, on: date) -> None:
        wells = [
            registration.WellInput(
                code=w.code, project_code=site.project, role=w.role, aquifer=w.aquifer,
                operating=w.operating, drilled_on=on, confined=False,
            )
            for w in site.wells
        ]  # fmt: skip
        self._run(lambda s: registration.register_wells(s, wells, ADMIN))

    def reports(self, project: str, months: Iterable[date]) -> None:
        """Monthly operating reports, each on time (the 5th of the next month)."""

        async def write(session) -> None:
            for m in months:
                nxt = (m.replace(day=28) + timedelta(days=5)).replace(day=5)
                data = reviews.MonthlyReportInput(project_code=project, month=m, submitted_on=nxt)
                await reviews.record_monthly_report(session, data, ADMIN)

        self._run(write)

    def inspect(self, credit_code: str, on: date, *severities: str) -> None:
        data = reviews.InspectionInput(
            credit_code=credit_code, inspected_on=on, inspector="专班",
            findings=[{"severity": s, "description": "现场检查问题"} for s in severities],
        )  # fmt: skip
        self._run(lambda s: reviews.record_inspection(s, data, ADMIN))

    def evaluate(self, project: str, on: date, verdict: str) -> None:
        data = reviews.PostEvaluationInput(
            project_code=project, evaluated_on=on, verdict=verdict, reviewer="专家组",
            summary="后评估",
        )  # fmt: skip
        self._run(lambda s: reviews.record_post_evaluation(s, data, ADMIN))

    # -------------------------------------------------------------------- meter data

    def datastream(self, well: str, indicator: str) -> int:
        (ds,) = self.meters.rows(
            "SELECT id FROM datastream WHERE platform_id = :p", p=f"{well}:{indicator}"
        )
        return ds.id

    def meter(self, well: str, indicator: str, first: date, last: date, value: float) -> None:
        """Every 15-minute slot of local days first..last (both included)."""
        times = slot_ends(local(first.year, first.month, first.day), _midnight(last))
        self.meters.observe(self.datastream(well, indicator), times, value)

    def watermark(self, t: datetime) -> None:
        self.meters.watermark(t)

    # -------------------------------------------------------------------- runs and answers

    def roll_up_and_score(self, now: datetime):
        run_rollup(self.engine)
        summary = run_scoring(self.engine, now=now)
        assert not summary.errors, summary.errors
        return summary

    def counts(self) -> dict[str, int]:
        return {t: self.meters.rows(f"SELECT count(*) FROM {t}")[0][0] for t in COUNTED}

    def answer(
        self, credit_code: str, now: datetime, kind: ApplicationKind = ApplicationKind.NEW_WELL
    ) -> Decision:
        async def read():
            async with await psycopg.AsyncConnection.connect(db.libpq_url(self.url)) as conn:
                return (await load_standings(conn, [credit_code], now))[credit_code]

        filed = asyncio.run(read())
        return decide(filed.standing if filed else None, kind, RB, now)

    def company_id(self, credit_code: str) -> int:
        return self.meters.rows("SELECT id FROM company WHERE credit_code = :c", c=credit_code)[
            0
        ].id

    def findings(self, credit_code: str) -> dict[str, object]:
        """Active (not voided) findings by key."""
        rows = self.meters.rows(
            "SELECT f.* FROM credit_finding f JOIN company c ON c.id = f.company_id "
            "WHERE c.credit_code = :c AND NOT EXISTS "
            "(SELECT 1 FROM finding_event e WHERE e.finding_id = f.id)",
            c=credit_code,
        )
        return {r.key: r for r in rows}

    def listings(self, credit_code: str, active: bool = True) -> list:
        return self.meters.rows(
            "SELECT l.*, e.how FROM listing l JOIN company c ON c.id = l.company_id "
            "LEFT JOIN listing_end e ON e.listing_id = l.id WHERE c.credit_code = :c "
            + ("AND e.id IS NULL " if active else "")
            + "ORDER BY l.id",
            c=credit_code,
        )


def _midnight(last: date) -> datetime:
    nxt = last + timedelta(days=1)
    return local(nxt.year, nxt.month, nxt.day)


def graphql(url: str, query: str, variables: dict, now: datetime, role: str = "reviewer") -> dict:
    """The API's GraphQL schema, in process, as a client of `role`, at `now`."""
    from api.context import Services, request_context
    from api.schema import build_schema
    from registry.auth import Client
    from registry.vocabulary import Role

    async def run() -> dict:
        services = Services.for_database(url, pool_size=2)
        try:
            context = request_context(services, Client(1, role, Role(role)), "test", now)
            result = await build_schema().execute(query, variables, context_value=context)
        finally:
            await services.close()
        assert result.errors is None, result.errors
        return result.data

    return asyncio.run(run())
