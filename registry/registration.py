"""Use cases on the registry: register and update companies, projects, wells and permits.

Plain async functions over an AsyncSession (the caller owns the transaction, see db.transaction).
Input is validated with plain pydantic models first (SQLModel table models skip validation); a
change is appended as a new version, an unchanged re-registration writes nothing.

When a version takes effect (registry.facts): an entity's first version describes it as it has
always been; a later one from its `effective_from`, or from when it was recorded. A platform sync
passes the sync time (or nothing: now). An admin's record may carry an `effective_from` in the
past — a correction: the attributes it states then hold from that time on, and the months it
covers are judged again (the rollup recomputes them). Since versions are full snapshots, such a
correction appends a copy of every version that took effect after it, with the stated
attributes changed, so later changes of other attributes keep their own times.
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
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
    session: AsyncSession,
    kind: _Kind,
    rows: dict[str, dict[str, Any]],
    source: str,
    effective_from: datetime | None = None,
) -> Registered:
    """Append a version for each key (natural key -> attributes, one chunk) that changed,
    taking effect at `effective_from` (None: when recorded). The caller has made sure that no
    version of these keys takes effect later (see _correct)."""
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
            when = None if now is None else effective_from  # a first version: always
            new.append({kind.ref: ids[key], "source": source, "effective_from": when, **attrs})
    if new:
        await session.execute(sa.insert(version).returning(version.c.id), new)
    return Registered(ids, len(new))


def _effective(version: Mapping[str, Any], first_id: int) -> datetime | None:
    """When a version took effect; None: from the beginning (an entity's first version)."""
    if version["id"] == first_id:
        return None
    return version["effective_from"] or version["recorded_at"]


async def _correct(
    session: AsyncSession,
    kind: _Kind,
    entity_id: int,
    stated: dict[str, Any],
    effective_from: datetime,
    source: str,
) -> int:
    """Make `stated` hold from `effective_from` on, keeping every other attribute's history:
    a version at effective_from (the one then in force, with `stated`), then a copy of each
    version that took effect later, in order. A version is in force from its time until a newer
    one (higher id) takes effect, so the copies, appended last, restate the whole timeline.
    Nothing is written when the timeline already says so. Returns the rows written."""
    version = kind.version.__table__
    ref = version.c[kind.ref]
    rows = (
        (await session.execute(sa.select(version).where(ref == entity_id).order_by(version.c.id)))
        .mappings()
        .all()
    )
    first_id = rows[0]["id"]
    times = {effective_from}
    for row in rows:
        when = _effective(row, first_id)
        if when is not None and when > effective_from:
            times.add(when)
    skip = {"id", kind.ref, "source", "recorded_at", "effective_from"}
    new: list[dict[str, Any]] = []
    for when in sorted(times):
        in_force = max(
            (r for r in rows if (e := _effective(r, first_id)) is None or e <= when),
            key=lambda r: r["id"],
        )
        attrs = {k: v for k, v in in_force.items() if k not in skip}
        wanted = attrs | stated
        if (not new and wanted == attrs) or (new and wanted == new[-1]["attrs"]):
            continue  # the timeline (or the copy just made) already says so
        new.append({"attrs": wanted, "effective_from": when})
    if new:
        await session.execute(
            sa.insert(version),
            [
                {kind.ref: entity_id, "source": source, "effective_from": n["effective_from"]}
                | n["attrs"]
                for n in new
            ],
        )
    return len(new)


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
    *,
    effective_from: datetime | None = None,
) -> Registered:
    """Set-based register_project. A company without a file is registered first when
    company_names (credit code -> name) has its name; else UnknownEntity. New versions take
    effect at `effective_from` (a platform sync's time; None: when recorded)."""
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
        result.add(await _register(session, _PROJECT, rows, source, effective_from))
    return result


async def register_wells(
    session: AsyncSession,
    inputs: Iterable[WellInput],
    source: str,
    *,
    effective_from: datetime | None = None,
) -> Registered:
    """Set-based register_well; a well of an unknown project is UnknownEntity. New versions
    take effect at `effective_from` (a platform sync's time; None: when recorded)."""
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
        result.add(await _register(session, _WELL, rows, source, effective_from))
    return result


async def register_company(session: AsyncSession, data: CompanyInput, source: str) -> Company:
    done = await register_companies(session, [data], source)
    return await session.get(Company, done.ids[data.credit_code])


async def company_by_code(session: AsyncSession, credit_code: str) -> Company | None:
    code = normalize_credit_code(credit_code)
    return await session.scalar(sa.select(Company).where(Company.credit_code == code))


async def register_project(
    session: AsyncSession,
    data: ProjectInput,
    source: str,
    company_name: str | None = None,
    *,
    effective_from: datetime | None = None,
) -> Project:
    """A new version when anything changed. Zone flags and county left None keep their known
    values: the platform does not know them, only the registry's own records do.

    With `effective_from` (an admin's record; not in the future) the record states its
    attributes from then on — a correction when it lies in the past (see _correct)."""
    names = None if company_name is None else {data.credit_code: company_name}
    project = await session.scalar(sa.select(Project).where(Project.code == data.code))
    if effective_from is None or project is None:
        done = await register_projects(session, [data], source, names)
        return await session.get(Project, done.ids[data.code])
    company = await session.scalar(
        sa.select(Company.id).where(Company.credit_code == data.credit_code)
    )
    if company is None:
        if company_name is None:
            raise UnknownEntity(f"no company with credit code {data.credit_code}")
        company = (await register_company(
            session, CompanyInput(credit_code=data.credit_code, name=company_name), source
        )).id  # fmt: skip
    stated = data.model_dump(exclude={"code", "credit_code"}) | {"company_id": company}
    stated = {k: v for k, v in stated.items() if not (k in _PROJECT.keep and v is None)}
    await _correct(session, _PROJECT, project.id, stated, effective_from, source)
    return project


class ZonesInput(_Input):
    """A project's zone flags; None keeps the known value."""

    project_code: str
    in_spring_protection_zone: bool | None = None
    in_drinking_water_source: bool | None = None
    in_groundwater_restricted_zone: bool | None = None


async def set_project_zones(
    session: AsyncSession,
    data: ZonesInput,
    source: str,
    *,
    effective_from: datetime | None = None,
) -> Project:
    """A project's zone flags (None: leave as known), the rest as it stands, from
    `effective_from` (None: now; in the past: a correction, see _correct)."""
    project = await project_by_code(session, data.project_code)
    stated = {k: v for k, v in data.model_dump(include=set(ZONE_FIELDS)).items() if v is not None}
    if not stated:
        return project
    if effective_from is not None:
        await _correct(session, _PROJECT, project.id, stated, effective_from, source)
        return project
    version = ProjectVersion.__table__
    current = (
        (
            await session.execute(
                sa.select(version)
                .where(version.c.project_id == project.id)
                .order_by(version.c.id.desc())
                .limit(1)
            )
        )
        .mappings()
        .one()
    )
    skip = {"id", "project_id", "source", "recorded_at", "effective_from"}
    attrs = {k: v for k, v in current.items() if k not in skip}
    if _changed(attrs, attrs | stated):
        await session.execute(
            sa.insert(version), [{"project_id": project.id, "source": source} | attrs | stated]
        )
    return project


async def project_by_code(session: AsyncSession, code: str) -> Project:
    project = await session.scalar(sa.select(Project).where(Project.code == code))
    if project is None:
        raise UnknownEntity(f"no project with code {code!r}", "project_code")
    return project


async def register_well(session: AsyncSession, data: WellInput, source: str) -> Well:
    done = await register_wells(session, [data], source)
    return await session.get(Well, done.ids[data.code])


async def record_permit(
    session: AsyncSession,
    data: PermitInput,
    recorded_by: str,
    *,
    effective_from: datetime | None = None,
) -> Permit:
    """Record a permit; it supersedes the project's current permit of the same kind from
    `effective_from` (None: now) on — in the past: a correction of the months since. (The first
    permit of a kind is in force from the beginning.)"""
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
        effective_from=effective_from,
        **data.model_dump(exclude={"project_code"}),
    )
    session.add(permit)
    await session.flush()
    return permit
