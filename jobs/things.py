"""Things sync: the platform's wells and datastreams into the registry.

Companies, projects and wells go through registry.registration's set-based register functions (a few
statements per kind and chunk, however many changed), so a change becomes a new version and an
unchanged entity writes nothing; entities that match their current version are not even sent to
the services. The datastream table is operational and mutable: upserted by the platform's @iot.id.
"""

import time
from dataclasses import dataclass, field
from datetime import datetime

import pydantic
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from jobs.platform import PlatformClient
from registry import db, registration
from registry.current import company_name
from registry.models import Datastream
from registry.vocabulary import Accumulation

SOURCE = "platform"


@dataclass
class SyncResult:
    things: int = 0
    datastreams: int = 0
    written: int = 0  # version rows of companies, projects and wells written
    datastreams_changed: int = 0
    rejected: list[str] = field(default_factory=list)  # one line per Thing or datastream skipped
    seconds: float = 0.0


@dataclass(frozen=True)
class _Stream:
    platform_id: str
    well_code: str
    indicator: str
    unit: str
    accumulation: str
    name: str


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _parse_stream(ds: object, well_code: str) -> _Stream:
    if not isinstance(ds, dict) or ds.get("@iot.id") is None:
        raise ValueError("datastream without @iot.id")
    prop = ds.get("ObservedProperty")
    uom = ds.get("unitOfMeasurement")
    props = ds.get("properties")
    accumulation = props.get("accumulation") if isinstance(props, dict) else None
    return _Stream(
        platform_id=str(ds["@iot.id"]),
        well_code=well_code,
        indicator=_text(prop.get("name")) if isinstance(prop, dict) else "",
        unit=_text(uom.get("symbol")) if isinstance(uom, dict) else "",
        accumulation=accumulation if accumulation in tuple(Accumulation) else Accumulation.INTERVAL,
        name=_text(ds.get("name")),
    )


def parse_things(things: list) -> tuple[dict, dict, dict, list[_Stream], list[str]]:
    """Validated registry inputs from Things: companies, projects, wells (by key), datastreams."""
    companies: dict[str, registration.CompanyInput] = {}
    projects: dict[str, dict] = {}
    wells: dict[str, registration.WellInput] = {}
    streams: list[_Stream] = []
    rejected: list[str] = []
    for thing in things:
        ident = thing.get("@iot.id") if isinstance(thing, dict) else None
        try:
            p = thing["properties"]
            operating = p.get("operating", True)
            company = registration.CompanyInput(
                credit_code=p["companyCreditCode"], name=p["companyName"]
            )
            project = dict(
                code=p["projectCode"],
                credit_code=company.credit_code,
                name=p.get("projectName") or p["projectCode"],
                type=p["projectType"],
                city=p["city"],
            )
            registration.ProjectInput(**project, operating=operating)  # validate now
            well = registration.WellInput(
                code=p["wellCode"],
                project_code=project["code"],
                role=p["role"],
                aquifer=p["aquifer"],
                operating=operating,
            )
            raw_streams = thing.get("Datastreams") or []
            if not isinstance(raw_streams, list):
                raise ValueError("Datastreams is not a list")
        except (KeyError, TypeError, AttributeError, ValueError, pydantic.ValidationError) as exc:
            detail = " ".join(str(exc).split())[:300]
            rejected.append(f"Thing {ident}: {type(exc).__name__}: {detail}")
            continue
        companies[company.credit_code] = company
        # A project is operating when any of its wells is.
        known = projects.get(project["code"])
        project["operating"] = bool(operating) or bool(known and known["operating"])
        projects[project["code"]] = project
        wells[well.code] = well
        for ds in raw_streams:
            try:
                streams.append(_parse_stream(ds, well.code))
            except ValueError as exc:
                rejected.append(f"Thing {ident}: {exc}")
    return companies, projects, wells, streams, rejected


_CURRENT = {
    "company": f"SELECT c.credit_code, {company_name('c')} FROM company c",
    "project": """
        SELECT DISTINCT ON (p.id) p.code, c.credit_code, v.name, v.type, v.city, v.county,
               v.operating
        FROM project p JOIN project_version v ON v.project_id = p.id
        JOIN company c ON c.id = v.company_id
        ORDER BY p.id, v.id DESC""",
    "well": """
        SELECT DISTINCT ON (w.id) w.code, p.code, v.role, v.aquifer, v.operating
        FROM well w JOIN well_version v ON v.well_id = w.id JOIN project p ON p.id = v.project_id
        ORDER BY w.id, v.id DESC""",
}


async def _current(session: AsyncSession, kind: str) -> dict[str, tuple]:
    rows = await session.execute(sa.text(_CURRENT[kind]))
    return {row[0]: tuple(row[1:]) for row in rows}


async def store_things(
    session: AsyncSession, things: list, synced_at: datetime | None = None
) -> SyncResult:
    """Register what changed and upsert the datastreams, in the caller's transaction. A change
    takes effect at `synced_at` (None: now): the platform gives no effective date."""
    companies, projects, wells, streams, rejected = parse_things(things)
    result = SyncResult(things=len(things), datastreams=len(streams), rejected=rejected)

    current = await _current(session, "company")
    changed = [c for code, c in companies.items() if current.get(code) != (c.name,)]
    result.written += (await registration.register_companies(session, changed, SOURCE)).written

    current = await _current(session, "project")
    changed = []
    for code, attrs in projects.items():
        data = registration.ProjectInput(**attrs)
        want = (data.credit_code, data.name, data.type.value, data.city, None, data.operating)
        if current.get(code) != want:
            changed.append(data)
    names = {code: c.name for code, c in companies.items()}
    done = await registration.register_projects(
        session, changed, SOURCE, names, effective_from=synced_at
    )
    result.written += done.written

    current = await _current(session, "well")
    changed = [
        w
        for code, w in wells.items()
        if current.get(code) != (w.project_code, w.role.value, w.aquifer, w.operating)
    ]
    done = await registration.register_wells(session, changed, SOURCE, effective_from=synced_at)
    result.written += done.written

    well_ids = dict(
        (
            await session.execute(
                sa.text("SELECT code, id FROM well WHERE code = ANY(:c)"), {"c": list(wells)}
            )
        ).all()
    )
    rows = {}
    for s in streams:  # the last mention of a datastream wins
        rows[s.platform_id] = dict(
            platform_id=s.platform_id,
            well_id=well_ids[s.well_code],
            indicator=s.indicator,
            unit=s.unit,
            accumulation=s.accumulation,
            name=s.name,
        )
    result.datastreams_changed = await _upsert_datastreams(session, list(rows.values()))
    return result


async def _upsert_datastreams(session: AsyncSession, rows: list[dict]) -> int:
    """Insert new datastreams and update changed ones; the number of rows written. Sent as an
    executemany, which SQLAlchemy batches into multi-row statements compiled once ("insert
    many values"), instead of a VALUES list compiled afresh for every chunk."""
    if not rows:
        return 0
    table = Datastream.__table__
    stmt = insert(table)
    new = stmt.excluded
    columns = ("well_id", "indicator", "unit", "accumulation", "name")
    stmt = stmt.on_conflict_do_update(
        index_elements=["platform_id"],
        set_={**{c: new[c] for c in columns}, "updated_at": sa.func.now()},
        where=sa.tuple_(*(table.c[c] for c in columns)).is_distinct_from(
            sa.tuple_(*(new[c] for c in columns))
        ),
    ).returning(table.c.id)
    return len((await session.execute(stmt, rows)).all())


async def sync_things(
    factory: async_sessionmaker[AsyncSession],
    client: PlatformClient,
    top: int = 1000,
    synced_at: datetime | None = None,
) -> SyncResult:
    """Read every Thing from the platform and bring the registry up to date (one transaction);
    changes take effect at `synced_at` (None: now)."""
    started = time.perf_counter()
    things = await client.things(top)
    async with db.transaction(factory, SOURCE) as session:
        result = await store_things(session, things, synced_at)
    result.seconds = time.perf_counter() - started
    return result
