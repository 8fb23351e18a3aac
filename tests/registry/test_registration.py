"""Registering companies, projects, wells and permits: versions, never overwrites."""

from datetime import date, datetime, timedelta, timezone

import pydantic
import pytest
import sqlalchemy as sa

from jobs import things
from registry import db, registration
from registry.creditcode import check_char
from registry.facts import in_force
from registry.models import (
    Company,
    CompanyVersion,
    Permit,
    Project,
    ProjectVersion,
    Well,
    WellVersion,
)

CODE = "91350100M000100Y43"
CST = timezone(timedelta(hours=8))


def project(**over):
    fields = dict(
        code="TY-001", credit_code=CODE, name="太原南区地热供暖", type="MEDIUM_DEEP", city="太原"
    )
    return registration.ProjectInput(**(fields | over))


async def count(factory, model):
    async with factory() as s:
        return await s.scalar(sa.select(sa.func.count()).select_from(model))


async def test_a_change_is_a_new_version_and_a_repeat_writes_nothing(session_factory):
    for name in ("晋能地热有限公司", "晋能地热有限公司", "晋能清洁能源有限公司"):
        async with db.transaction(session_factory, "platform") as s:
            await registration.register_company(
                s, registration.CompanyInput(credit_code=CODE, name=name), "platform"
            )
    async with session_factory() as s:
        names = (await s.scalars(sa.select(CompanyVersion.name).order_by(CompanyVersion.id))).all()
    assert names == ["晋能地热有限公司", "晋能清洁能源有限公司"]


async def test_zone_flags_recorded_by_the_registry_survive_a_platform_update(session_factory):
    async with db.transaction(session_factory, "admin:li") as s:
        await registration.register_company(
            s, registration.CompanyInput(credit_code=CODE, name="晋能"), "admin"
        )
        await registration.register_project(s, project(in_spring_protection_zone=True), "admin:li")
    async with db.transaction(session_factory, "platform") as s:
        await registration.register_project(s, project(operating=False), "platform")
    async with session_factory() as s:
        versions = (await s.scalars(sa.select(ProjectVersion).order_by(ProjectVersion.id))).all()
    assert [v.operating for v in versions] == [True, False]
    assert versions[-1].in_spring_protection_zone is True


async def test_wells_and_permits(session_factory):
    async with db.transaction(session_factory, "admin") as s:
        await registration.register_company(
            s, registration.CompanyInput(credit_code=CODE, name="晋能"), "admin"
        )
        await registration.register_project(s, project(code="YC-9", city="运城"), "admin")
        well = registration.WellInput(
            code="YC-9-R1", project_code="YC-9", role="REINJECTION", aquifer="Q4"
        )
        await registration.register_well(s, well, "platform")
        await registration.register_well(s, well, "platform")
        first = await registration.record_permit(
            s,
            registration.PermitInput(
                project_code="YC-9",
                kind="WATER_PERMIT",
                number="取水(晋)字[2026]001",
                annual_total_m3=300_000,
                daily_intensity_m3=2_000,
                valid_from=date(2026, 1, 1),
            ),
            "admin",
        )
        second = await registration.record_permit(
            s,
            registration.PermitInput(
                project_code="YC-9",
                kind="WATER_PERMIT",
                number="取水(晋)字[2026]002",
                annual_total_m3=350_000,
                valid_from=date(2026, 6, 1),
            ),
            "admin",
        )
    assert second.supersedes_id == first.id
    assert await count(session_factory, WellVersion) == 1
    assert await count(session_factory, Permit) == 2


def test_bad_input_is_refused_before_the_database():
    with pytest.raises(pydantic.ValidationError, match="check character at position 18"):
        registration.CompanyInput(credit_code="91350100M000100Y44", name="x")
    with pytest.raises(pydantic.ValidationError, match="type"):
        project(type="OPEN_LOOP")
    with pytest.raises(pydantic.ValidationError, match="greater than or equal to 0"):
        registration.PermitInput(
            project_code="P",
            kind="WATER_PERMIT",
            number="1",
            annual_total_m3=-5,
            valid_from=date(2026, 1, 1),
        )
    with pytest.raises(pydantic.ValidationError, match="before valid_from"):
        registration.PermitInput(
            project_code="P",
            kind="WATER_PERMIT",
            number="1",
            valid_from=date(2026, 1, 1),
            valid_to=date(2025, 1, 1),
        )


async def test_unknown_project_is_a_clear_error(session_factory):
    with pytest.raises(registration.UnknownEntity, match="no project with code 'NOPE'"):
        async with db.transaction(session_factory, "admin") as s:
            await registration.register_well(
                s,
                registration.WellInput(
                    code="W", project_code="NOPE", role="EXTRACTION", aquifer="Q"
                ),
                "x",
            )


async def test_a_platform_update_keeps_the_county_the_registry_recorded(session_factory):
    async with db.transaction(session_factory, "admin") as s:
        await registration.register_company(
            s, registration.CompanyInput(credit_code=CODE, name="晋能"), "admin"
        )
        await registration.register_project(s, project(code="TY-7", county="小店区"), "admin")
    async with db.transaction(session_factory, "platform") as s:
        await registration.register_project(s, project(code="TY-7", operating=False), "platform")
    async with session_factory() as s:
        latest = await s.scalar(
            sa.select(ProjectVersion)
            .join(Project, Project.id == ProjectVersion.project_id)
            .where(Project.code == "TY-7")
            .order_by(ProjectVersion.id.desc())
            .limit(1)
        )
    assert latest.operating is False and latest.county == "小店区"


# ---------------------------------------------------------------- bulk registration


def credit_code(n: int) -> str:
    first17 = f"91140100MA0{n:06d}"
    return first17 + check_char(first17)


def bulk_project(code: str, company: int, **over):
    fields = dict(code=code, credit_code=credit_code(company), name=code, type="MEDIUM_DEEP")
    return registration.ProjectInput(**(fields | {"city": "晋中"} | over))


def bulk_well(code: str, project_code: str, **over):
    fields = dict(code=code, project_code=project_code, role="EXTRACTION", aquifer="O2")
    return registration.WellInput(**(fields | over))


async def versions(factory, model, code: str) -> list:
    version = {Company: CompanyVersion, Project: ProjectVersion, Well: WellVersion}[model]
    ref = {Company: "company_id", Project: "project_id", Well: "well_id"}[model]
    key = model.credit_code if model is Company else model.code
    async with factory() as s:
        rows = await s.scalars(
            sa.select(version)
            .join(model, model.id == getattr(version, ref))
            .where(key == code)
            .order_by(version.id)
        )
        return rows.all()


async def test_bulk_registers_new_entities_and_a_repeat_writes_nothing(session_factory):
    companies = [
        registration.CompanyInput(credit_code=credit_code(i), name=f"公司{i}") for i in (1, 2)
    ]
    projects = [bulk_project("B-1", 1), bulk_project("B-2", 2)]
    wells = [bulk_well("B-1-1", "B-1"), bulk_well("B-1-2", "B-1"), bulk_well("B-2-1", "B-2")]
    for expected in ((2, 2, 3), (0, 0, 0)):
        async with db.transaction(session_factory, "platform") as s:
            done = (
                await registration.register_companies(s, companies, "platform"),
                await registration.register_projects(s, projects, "platform"),
                await registration.register_wells(s, wells, "platform"),
            )
        assert tuple(d.written for d in done) == expected
        assert sorted(done[2].ids) == ["B-1-1", "B-1-2", "B-2-1"]
    (v,) = await versions(session_factory, Well, "B-2-1")
    assert (v.well_id, v.role, v.aquifer, v.operating, v.source) == (
        done[2].ids["B-2-1"],
        "EXTRACTION",
        "O2",
        True,
        "platform",
    )


async def test_bulk_change_is_exactly_one_new_version(session_factory, monkeypatch):
    monkeypatch.setattr(registration, "CHUNK", 2)  # several chunks per call
    codes = [f"C-{i}" for i in range(5)]
    async with db.transaction(session_factory, "platform") as s:
        await registration.register_company(
            s, registration.CompanyInput(credit_code=credit_code(3), name="三"), "platform"
        )
        await registration.register_projects(s, [bulk_project("C", 3)], "platform")
        done = await registration.register_wells(s, [bulk_well(c, "C") for c in codes], "platform")
    assert done.written == 5 and sorted(done.ids) == codes
    changed = [bulk_well(c, "C", operating=c != "C-3") for c in codes]
    async with db.transaction(session_factory, "platform") as s:
        assert (await registration.register_wells(s, changed, "platform")).written == 1
    assert [v.operating for v in await versions(session_factory, Well, "C-3")] == [True, False]
    assert len(await versions(session_factory, Well, "C-4")) == 1


async def test_bulk_keeps_what_only_the_registry_knows(session_factory):
    async with db.transaction(session_factory, "admin") as s:
        await registration.register_company(
            s, registration.CompanyInput(credit_code=credit_code(4), name="四"), "admin"
        )
        zoned = bulk_project("K-1", 4, county="榆次区", in_drinking_water_source=True)
        await registration.register_project(s, zoned, "admin")
        well = bulk_well("K-1-1", "K-1", confined=True, drilled_on=date(2019, 5, 1))
        await registration.register_well(s, well, "admin")
    async with db.transaction(session_factory, "platform") as s:
        assert (await registration.register_projects(s, [bulk_project("K-1", 4)], "p")).written == 0
        assert (await registration.register_wells(s, [bulk_well("K-1-1", "K-1")], "p")).written == 0
        stopped = [bulk_project("K-1", 4, operating=False)]
        assert (await registration.register_projects(s, stopped, "p")).written == 1
        stopped = [bulk_well("K-1-1", "K-1", operating=False)]
        assert (await registration.register_wells(s, stopped, "p")).written == 1
    project_now = (await versions(session_factory, Project, "K-1"))[-1]
    assert (project_now.operating, project_now.county) == (False, "榆次区")
    assert project_now.in_drinking_water_source is True
    assert project_now.in_spring_protection_zone is None
    well_now = (await versions(session_factory, Well, "K-1-1"))[-1]
    assert (well_now.operating, well_now.confined, well_now.drilled_on) == (
        False,
        True,
        date(2019, 5, 1),
    )


async def test_bulk_files_a_missing_company_it_has_a_name_for(session_factory):
    projects = [bulk_project("F-1", 5), bulk_project("F-2", 5), bulk_project("F-3", 6)]
    with pytest.raises(registration.UnknownEntity, match=f"credit code {credit_code(6)}"):
        async with db.transaction(session_factory, "platform") as s:
            await registration.register_projects(s, projects, "platform", {credit_code(5): "五"})
    names = {credit_code(5): "五", credit_code(6): "六"}
    async with db.transaction(session_factory, "platform") as s:
        done = await registration.register_projects(s, projects, "platform", names)
    assert done.written == 2 + 3  # the companies' first versions and the projects'
    assert [v.name for v in await versions(session_factory, Company, credit_code(6))] == ["六"]
    with pytest.raises(registration.UnknownEntity, match="no project with code 'F-9'"):
        async with db.transaction(session_factory, "platform") as s:
            await registration.register_wells(s, [bulk_well("F-9-1", "F-9")], "platform")


def _things(n: int, prefix: str, company: int) -> list[dict]:
    def thing(i: int) -> dict:
        well = f"{prefix}-{i}"
        return {
            "@iot.id": well,
            "properties": {
                "wellCode": well,
                "role": "EXTRACTION",
                "aquifer": "O2",
                "projectCode": f"{prefix}-P{i % 3}",
                "projectType": "MEDIUM_DEEP",
                "companyCreditCode": credit_code(company + i % 2),
                "companyName": f"公司{i % 2}",
                "city": "太原",
            },
            "Datastreams": [
                {"@iot.id": f"{well}-ds", "ObservedProperty": {"name": "extraction_volume"}}
            ],
        }

    return [thing(i) for i in range(n)]


async def test_a_sync_takes_as_many_statements_for_300_new_wells_as_for_3(db_url):
    engine = db.make_async_engine(db_url, pool_size=1)
    statements = []
    sa.event.listen(
        engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2])
    )
    factory = db.session_factory(engine)
    counts = {}
    try:
        for n, prefix, company in ((3, "S3", 100), (300, "S300", 200)):
            statements.clear()
            async with db.transaction(factory, "platform") as s:
                result = await things.store_things(s, _things(n, prefix, company))
            assert result.written == 2 + 3 + n and not result.rejected
            counts[n] = len(statements)
        assert len(await versions(factory, Well, "S300-299")) == 1
    finally:
        await engine.dispose()
    assert counts[300] == counts[3] < 30


async def _in_force(factory, code: str, at: datetime) -> dict:
    """The project's version in force at `at` (registry.facts)."""
    sql = in_force(
        "project_version", ":at", "v.project_id = (SELECT id FROM project WHERE code = :c)"
    )
    async with factory() as s:
        return dict((await s.execute(sa.text(sql), {"at": at, "c": code})).mappings().one())


async def test_a_backdated_correction_states_its_attributes_from_then_on(session_factory):
    """A platform change keeps its own time; an admin's zone correction effective from 1 Dec
    holds from then on, also after that change, and never before it."""
    dec1, jan10 = datetime(2025, 12, 1, tzinfo=CST), datetime(2026, 1, 10, 9, tzinfo=CST)
    async with db.transaction(session_factory, "platform") as s:
        await registration.register_company(
            s, registration.CompanyInput(credit_code=CODE, name="晋能"), "p"
        )
        await registration.register_project(s, project(code="BD-1"), "platform")
        await registration.register_projects(
            s, [project(code="BD-1", operating=False)], "platform", effective_from=jan10
        )
    for _ in range(2):  # the same correction twice: the second writes nothing
        async with db.transaction(session_factory, "admin:li") as s:
            zones = registration.ZonesInput(project_code="BD-1", in_spring_protection_zone=True)
            await registration.set_project_zones(s, zones, "admin:li", effective_from=dec1)
    async with session_factory() as s:
        versions = (
            await s.scalars(
                sa.select(ProjectVersion)
                .join(Project, Project.id == ProjectVersion.project_id)
                .where(Project.code == "BD-1")
                .order_by(ProjectVersion.id)
            )
        ).all()
    assert [(v.operating, v.in_spring_protection_zone, v.effective_from) for v in versions] == [
        (True, None, None), (False, None, jan10), (True, True, dec1), (False, True, jan10),
    ]  # fmt: skip
    seen = {}
    for label, at in (("Nov", datetime(2025, 11, 20, tzinfo=CST)),
                      ("Dec", datetime(2025, 12, 20, tzinfo=CST)),
                      ("Jan", datetime(2026, 1, 20, tzinfo=CST))):  # fmt: skip
        v = await _in_force(session_factory, "BD-1", at)
        seen[label] = (v["operating"], v["in_spring_protection_zone"])
    assert seen == {"Nov": (True, None), "Dec": (True, True), "Jan": (False, True)}
