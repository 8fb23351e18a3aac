"""Registering companies, projects, wells and permits: versions, never overwrites."""

from datetime import date

import pydantic
import pytest
import sqlalchemy as sa

from registry import db, services
from registry.models import CompanyVersion, Permit, Project, ProjectVersion, WellVersion

CODE = "91350100M000100Y43"


def project(**over):
    fields = dict(
        code="TY-001", credit_code=CODE, name="太原南区地热供暖", type="MEDIUM_DEEP", city="太原"
    )
    return services.ProjectInput(**(fields | over))


async def count(factory, model):
    async with factory() as s:
        return await s.scalar(sa.select(sa.func.count()).select_from(model))


async def test_a_change_is_a_new_version_and_a_repeat_writes_nothing(session_factory):
    for name in ("晋能地热有限公司", "晋能地热有限公司", "晋能清洁能源有限公司"):
        async with db.transaction(session_factory, "platform") as s:
            await services.register_company(
                s, services.CompanyInput(credit_code=CODE, name=name), "platform"
            )
    async with session_factory() as s:
        names = (await s.scalars(sa.select(CompanyVersion.name).order_by(CompanyVersion.id))).all()
    assert names == ["晋能地热有限公司", "晋能清洁能源有限公司"]


async def test_zone_flags_recorded_by_the_registry_survive_a_platform_update(session_factory):
    async with db.transaction(session_factory, "admin:li") as s:
        await services.register_company(
            s, services.CompanyInput(credit_code=CODE, name="晋能"), "admin"
        )
        await services.register_project(s, project(in_spring_protection_zone=True), "admin:li")
    async with db.transaction(session_factory, "platform") as s:
        await services.register_project(s, project(operating=False), "platform")
    async with session_factory() as s:
        versions = (await s.scalars(sa.select(ProjectVersion).order_by(ProjectVersion.id))).all()
    assert [v.operating for v in versions] == [True, False]
    assert versions[-1].in_spring_protection_zone is True


async def test_wells_and_permits(session_factory):
    async with db.transaction(session_factory, "admin") as s:
        await services.register_company(
            s, services.CompanyInput(credit_code=CODE, name="晋能"), "admin"
        )
        await services.register_project(s, project(code="YC-9", city="运城"), "admin")
        well = services.WellInput(
            code="YC-9-R1", project_code="YC-9", role="REINJECTION", aquifer="Q4"
        )
        await services.register_well(s, well, "platform")
        await services.register_well(s, well, "platform")
        first = await services.record_permit(
            s,
            services.PermitInput(
                project_code="YC-9",
                kind="WATER_PERMIT",
                number="取水(晋)字[2026]001",
                annual_total_m3=300_000,
                daily_intensity_m3=2_000,
                valid_from=date(2026, 1, 1),
            ),
            "admin",
        )
        second = await services.record_permit(
            s,
            services.PermitInput(
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
        services.CompanyInput(credit_code="91350100M000100Y44", name="x")
    with pytest.raises(pydantic.ValidationError, match="type"):
        project(type="OPEN_LOOP")
    with pytest.raises(pydantic.ValidationError, match="greater than or equal to 0"):
        services.PermitInput(
            project_code="P",
            kind="WATER_PERMIT",
            number="1",
            annual_total_m3=-5,
            valid_from=date(2026, 1, 1),
        )
    with pytest.raises(pydantic.ValidationError, match="before valid_from"):
        services.PermitInput(
            project_code="P",
            kind="WATER_PERMIT",
            number="1",
            valid_from=date(2026, 1, 1),
            valid_to=date(2025, 1, 1),
        )


async def test_unknown_project_is_a_clear_error(session_factory):
    with pytest.raises(services.UnknownEntity, match="no project with code 'NOPE'"):
        async with db.transaction(session_factory, "admin") as s:
            await services.register_well(
                s,
                services.WellInput(code="W", project_code="NOPE", role="EXTRACTION", aquifer="Q"),
                "x",
            )


async def test_a_platform_update_keeps_the_county_the_registry_recorded(session_factory):
    async with db.transaction(session_factory, "admin") as s:
        await services.register_company(
            s, services.CompanyInput(credit_code=CODE, name="晋能"), "admin"
        )
        await services.register_project(s, project(code="TY-7", county="小店区"), "admin")
    async with db.transaction(session_factory, "platform") as s:
        await services.register_project(s, project(code="TY-7", operating=False), "platform")
    async with session_factory() as s:
        latest = await s.scalar(
            sa.select(ProjectVersion)
            .join(Project, Project.id == ProjectVersion.project_id)
            .where(Project.code == "TY-7")
            .order_by(ProjectVersion.id.desc())
            .limit(1)
        )
    assert latest.operating is False and latest.county == "小店区"
