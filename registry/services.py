"""Use cases on the registry: register and update companies, projects, wells and permits.

Plain async functions over an AsyncSession (the caller owns the transaction, see db.transaction).
Input is validated with plain pydantic models first (SQLModel table models skip validation); a
change is appended as a new version, an unchanged re-registration writes nothing.
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.dialects import postgresql
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
    """No such company, project or well; `field` names the input that referred to it."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


ZONE_FIELDS = (
    "in_spring_protection_zone",
    "in_drinking_water_source",
    "in_groundwater_restricted_zone",
)
# Facts only the registry's own records know: a platform update that leaves them out keeps them.
REGISTRY_KNOWN_FIELDS = (*ZONE_FIELDS, "county")


# Rows per chunk of the bulk functions. Their inserts are executemany with RETURNING, which
# SQLAlchemy sends as multi-row INSERTs ("insertmanyvalues") compiled once, not row by row.
CHUNK = 1000


def _chunks(items: list) -> Iterator[list]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


@dataclass(frozen=True)
class _Kind:
    """An identity table (natural key) with its version table and its carry-over fields."""

    identity: type
    key: str
    version: type
    ref: str
    keep: tuple[str, ...] = ()  # None from the caller keeps the current value


_COMPANY = _Kind(Company, "credit_code", CompanyVersion, "company_id")
_PROJECT = _Kind(Project, "code", ProjectVersion, "project_id", REGISTRY_KNOWN_FIELDS)
_WELL = _Kind(Well, "code", WellVersion, "well_id", ("confined", "drilled_on"))


@dataclass
class Registered:
    ids: dict[str, int] = field(default_factory=dict)  # natural key -> identity id
    written: int = 0  # new version rows

    def add(self, other: "Registered") -> None:
        self.ids |= other.ids
        self.written += other.written


async def _ids(session: AsyncSession, model: type, column: str, keys: Iterable[str]) -> dict:
    table = model.__table__
    rows = await session.execute(
        sa.select(table.c[column], table.c.id).where(table.c[column].in_(list(keys)))
    )
    return dict(rows.all())


async def _identities(session: AsyncSession, kind: _Kind, keys: list[str]) -> dict[str, int]:
    """The identity ids of these natural keys, created where absent (concurrency-safe)."""
    table = kind.identity.__table__
    # Sorted, so that concurrent writers take the key locks in the same order.
    await session.execute(
        postgresql.insert(table)
        .on_conflict_do_nothing(index_elements=[kind.key])
        .returning(table.c.id),
        [{kind.key: k} for k in sorted(keys)],
    )
    return await _ids(session, kind.identity, kind.key, keys)


def _changed(current: Mapping[str, Any] | None, attrs: dict[str, Any]) -> bool:
    return current is None or any(current[k] != v for k, v in attrs.items())


async def _register(
    session: AsyncSession, kind: _Kind, rows: dict[str, dict[str, Any]], source: str
) -> Registered:
    """Append a version for each key (natural key -> attributes, one chunk) that changed."""
    ids = await _identities(session, kind, list(rows))
    version = kind.version.__table__
    ref = version.c[kind.ref]
    latest = await session.execute(
        sa.select(version)
        .where(ref.in_(list(ids.values())))
        .ext(postgresql.distinct_on(ref))
        .order_by(ref, version.c.id.desc())
    )
    current = {row[kind.ref]: row for row in latest.mappings()}
    new = []
    for key, attrs in rows.items():
        now = current.get(ids[key])
        if now is not None:
            attrs = attrs | {k: now[k] for k in kind.keep if attrs[k] is None}
        if _changed(now, attrs):
            new.append({kind.ref: ids[key], "source": source, **attrs})
    if new:
        await session.execute(sa.insert(version).returning(version.c.id), new)
    return Registered(ids, len(new))


async def register_companies(
    session: AsyncSession, inputs: Iterable[CompanyInput], source: str
) -> Registered:
    """Set-based register_company: a few statements per CHUNK companies. The last input of a
    credit code wins."""
    result = Registered()
    by_code = {c.credit_code: c for c in inputs}
    for chunk in _chunks(list(by_code.values())):
        rows = {c.credit_code: {"name": c.name} for c in chunk}
        result.add(await _register(session, _COMPANY, rows, source))
    return result


async def register_projects(
    session: AsyncSession,
    inputs: Iterable[ProjectInput],
    source: str,
    company_names: Mapping[str, str] | None = None,
) -> Registered:
    """Set-based register_project. A company without a file is registered first when
    company_names (credit code -> name) has its name; else UnknownEntity."""
    result = Registered()
    by_code = {p.code: p for p in inputs}
    for chunk in _chunks(list(by_code.values())):
        codes = {p.credit_code for p in chunk}
        companies = await _ids(session, Company, "credit_code", codes)
        missing = sorted(codes - companies.keys())
        if missing:
            names = company_names or {}
            unknown = [code for code in missing if code not in names]
            if unknown:
                raise UnknownEntity(f"no company with credit code {unknown[0]}", "credit_code")
            filed = await register_companies(
                session, [CompanyInput(credit_code=c, name=names[c]) for c in missing], source
            )
            companies |= filed.ids
            result.written += filed.written
        rows = {
            p.code: p.model_dump(exclude={"code", "credit_code"})
            | {"company_id": companies[p.credit_code]}
            for p in chunk
        }
        result.add(await _register(session, _PROJECT, rows, source))
    return result


async def register_wells(
    session: AsyncSession, inputs: Iterable[WellInput], source: str
) -> Registered:
    """Set-based register_well; a well of an unknown project is UnknownEntity."""
    result = Registered()
    by_code = {w.code: w for w in inputs}
    for chunk in _chunks(list(by_code.values())):
        projects = await _ids(session, Project, "code", {w.project_code for w in chunk})
        for w in chunk:
            if w.project_code not in projects:
                raise UnknownEntity(f"no project with code {w.project_code!r}", "project_code")
        rows = {
            w.code: w.model_dump(exclude={"code", "project_code"})
            | {"project_id": projects[w.project_code]}
            for w in chunk
        }
        result.add(await _register(session, _WELL, rows, source))
    return result


async def register_company(session: AsyncSession, data: CompanyInput, source: str) -> Company:
    done = await register_companies(session, [data], source)
    return await session.get(Company, done.ids[data.credit_code])


async def company_by_code(session: AsyncSession, credit_code: str) -> Company | None:
    code = normalize_credit_code(credit_code)
    return await session.scalar(sa.select(Company).where(Company.credit_code == code))


async def register_project(
    session: AsyncSession, data: ProjectInput, source: str, company_name: str | None = None
) -> Project:
    """A new version when anything changed. Zone flags and county left None keep their known
    values: the platform does not know them, only the registry's own records do."""
    names = None if company_name is None else {data.credit_code: company_name}
    done = await register_projects(session, [data], source, names)
    return await session.get(Project, done.ids[data.code])


class ZonesInput(_Input):
    """A project's zone flags; None keeps the known value."""

    project_code: str
    in_spring_protection_zone: bool | None = None
    in_drinking_water_source: bool | None = None
    in_groundwater_restricted_zone: bool | None = None


async def set_project_zones(session: AsyncSession, data: ZonesInput, source: str) -> Project:
    """A new version of the project with these zone flags, the rest as it stands."""
    project = await project_by_code(session, data.project_code)
    current = await session.scalar(
        sa.select(ProjectVersion)
        .where(ProjectVersion.project_id == project.id)
        .order_by(ProjectVersion.id.desc())
        .limit(1)
    )
    company = await session.get(Company, current.company_id)
    flags = data.model_dump(include=set(ZONE_FIELDS))
    keep = ("name", "type", "city", "county", "operating")
    attrs = {k: getattr(current, k) for k in keep}
    changed = ProjectInput(code=project.code, credit_code=company.credit_code, **attrs, **flags)
    return await register_project(session, changed, source)


async def project_by_code(session: AsyncSession, code: str) -> Project:
    project = await session.scalar(sa.select(Project).where(Project.code == code))
    if project is None:
        raise UnknownEntity(f"no project with code {code!r}", "project_code")
    return project


async def register_well(session: AsyncSession, data: WellInput, source: str) -> Well:
    done = await register_wells(session, [data], source)
    return await session.get(Well, done.ids[data.code])


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
