"""Use cases on the registry: register and update companies, projects, wells and permits.

Plain async functions over an AsyncSession (the caller owns the transaction, see db.transaction).
Input is validated with plain pydantic models first (SQLModel table models skip validation); a
change is appended as a new version, an unchanged re-registration writes nothing.
"""

from datetime import date
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from registry.creditcode import normalize_credit_code
from registry.models import (
    Company,
    CompanyVersion,
    Permit,
    PermitKind,
    Project,
    ProjectType,
    ProjectVersion,
    Well,
    WellRole,
    WellVersion,
)


class _Input(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, frozen=True)


class CompanyInput(_Input):
    credit_code: str
    name: str = Field(min_length=1, max_length=200)

    @field_validator("credit_code")
    @classmethod
    def _code(cls, v: str) -> str:
        return normalize_credit_code(v)


class ProjectInput(_Input):
    code: str = Field(min_length=1, max_length=64)
    credit_code: str
    name: str = Field(min_length=1, max_length=200)
    type: ProjectType
    city: str = Field(min_length=1, max_length=64)
    county: str | None = None
    operating: bool = True
    in_spring_protection_zone: bool | None = None
    in_drinking_water_source: bool | None = None
    in_groundwater_restricted_zone: bool | None = None

    @field_validator("credit_code")
    @classmethod
    def _code(cls, v: str) -> str:
        return normalize_credit_code(v)


class WellInput(_Input):
    code: str = Field(min_length=1, max_length=64)
    project_code: str
    role: WellRole
    aquifer: str = Field(min_length=1, max_length=64)
    confined: bool | None = None
    drilled_on: date | None = None
    operating: bool = True


class PermitInput(_Input):
    project_code: str
    kind: PermitKind
    number: str = Field(min_length=1, max_length=100)
    annual_total_m3: float | None = Field(default=None, ge=0)
    daily_intensity_m3: float | None = Field(default=None, ge=0)
    valid_from: date
    valid_to: date | None = None

    @model_validator(mode="after")
    def _dates(self) -> "PermitInput":
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self


class UnknownEntity(LookupError):
    pass


ZONE_FIELDS = (
    "in_spring_protection_zone",
    "in_drinking_water_source",
    "in_groundwater_restricted_zone",
)
# Facts only the registry's own records know: a platform update that leaves them out keeps them.
REGISTRY_KNOWN_FIELDS = (*ZONE_FIELDS, "county")


async def _latest(session: AsyncSession, model: type, key: str, value: int) -> Any:
    column = getattr(model, key)
    return await session.scalar(
        sa.select(model).where(column == value).order_by(model.id.desc()).limit(1)
    )


async def _identity(
    session: AsyncSession, model: type, column: str, value: str
) -> tuple[Any, bool]:
    """The identity row with this natural key, created if absent (concurrency-safe)."""
    table = model.__table__
    inserted = await session.scalar(
        sa.dialects.postgresql.insert(table)
        .values({column: value})
        .on_conflict_do_nothing(index_elements=[column])
        .returning(table.c.id)
    )
    row_id = inserted or await session.scalar(sa.select(table.c.id).where(table.c[column] == value))
    return await session.get(model, row_id), inserted is not None


def _changed(current: Any, attrs: dict[str, Any]) -> bool:
    return current is None or any(getattr(current, k) != v for k, v in attrs.items())


async def register_company(session: AsyncSession, data: CompanyInput, source: str) -> Company:
    company, _ = await _identity(session, Company, "credit_code", data.credit_code)
    current = await _latest(session, CompanyVersion, "company_id", company.id)
    if _changed(current, {"name": data.name}):
        session.add(CompanyVersion(company_id=company.id, name=data.name, source=source))
        await session.flush()
    return company


async def company_by_code(session: AsyncSession, credit_code: str) -> Company | None:
    code = normalize_credit_code(credit_code)
    return await session.scalar(sa.select(Company).where(Company.credit_code == code))


async def register_project(
    session: AsyncSession, data: ProjectInput, source: str, company_name: str | None = None
) -> Project:
    """A new version when anything changed. Zone flags left None keep their known values: the
    platform does not know zones, only the registry's own records do."""
    company = await company_by_code(session, data.credit_code)
    if company is None:
        if company_name is None:
            raise UnknownEntity(f"no company with credit code {data.credit_code}")
        company = await register_company(
            session, CompanyInput(credit_code=data.credit_code, name=company_name), source
        )
    project, _ = await _identity(session, Project, "code", data.code)
    current = await _latest(session, ProjectVersion, "project_id", project.id)
    attrs = data.model_dump(exclude={"code", "credit_code"}) | {"company_id": company.id}
    if current is not None:
        for known in REGISTRY_KNOWN_FIELDS:
            if attrs[known] is None:
                attrs[known] = getattr(current, known)
    if _changed(current, attrs):
        session.add(ProjectVersion(project_id=project.id, source=source, **attrs))
        await session.flush()
    return project


async def project_by_code(session: AsyncSession, code: str) -> Project:
    project = await session.scalar(sa.select(Project).where(Project.code == code))
    if project is None:
        raise UnknownEntity(f"no project with code {code!r}")
    return project


async def register_well(session: AsyncSession, data: WellInput, source: str) -> Well:
    project = await project_by_code(session, data.project_code)
    well, _ = await _identity(session, Well, "code", data.code)
    current = await _latest(session, WellVersion, "well_id", well.id)
    attrs = data.model_dump(exclude={"code", "project_code"}) | {"project_id": project.id}
    if current is not None:
        for known in ("confined", "drilled_on"):
            if attrs[known] is None:
                attrs[known] = getattr(current, known)
    if _changed(current, attrs):
        session.add(WellVersion(well_id=well.id, source=source, **attrs))
        await session.flush()
    return well


async def record_permit(session: AsyncSession, data: PermitInput, recorded_by: str) -> Permit:
    """Record a permit; it supersedes the project's current permit of the same kind."""
    project = await project_by_code(session, data.project_code)
    previous = await session.scalar(
        sa.select(Permit.id)
        .where(Permit.project_id == project.id, Permit.kind == data.kind)
        .order_by(Permit.id.desc())
        .limit(1)
    )
    permit = Permit(
        project_id=project.id,
        supersedes_id=previous,
        recorded_by=recorded_by,
        **data.model_dump(exclude={"project_code"}),
    )
    session.add(permit)
    await session.flush()
    return permit
