"""Credit files for the console's tests and benchmark: companies with projects, wells, permits,
month metrics as the rollup leaves them (from the rulebook's first month to this one), a
quarantined row, earlier score snapshots — then scored by the registry's own scoring run, so
findings, grade and listing are what the rules make of the metrics."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from registry import rescoring
from registry.models import (
    Company,
    CompanyVersion,
    Datastream,
    Permit,
    Project,
    ProjectMonthMetric,
    ProjectVersion,
    Quarantine,
    ScoreSnapshot,
    Well,
    WellVersion,
)
from scoring import periods
from scoring.rulebook import load_rulebook

RULEBOOK = load_rulebook()

# Reinjection ratio of a month, by what the month should show (medium-deep threshold: 0.98).
RATIO = {"ok": 0.99, "minor": 0.93, "major": 0.80, "critical": 0.30}


@dataclass(frozen=True)
class Filed:
    credit_code: str
    company_id: int
    projects: list[str]
    months: list[date]  # the months with metrics, oldest first


def metric_months(now: datetime, whole_window: bool = False) -> list[date]:
    """From the rulebook's first month (or the window's, if later; with `whole_window` the
    window's) to this month."""
    first = periods.lookback_start(now, RULEBOOK)
    if not whole_window:
        first = max(periods.month_of(RULEBOOK.applies_from), first)
    this = periods.month_of(periods.local_date(now, RULEBOOK))
    months = [first]
    while months[-1] < this:
        months.append(periods.add_months(months[-1], 1))
    return months


def _metric(
    project_id: int, month: date, mark: str, final: bool, now: datetime
) -> ProjectMonthMetric:
    extraction = 30_000.0
    ratio = RATIO.get(mark, RATIO["ok"])
    return ProjectMonthMetric(
        project_id=project_id,
        month=month,
        operating=True,
        evaluated=mark != "unevaluated",
        final=final,
        scope_start=now,
        scope_end=now,
        expected_slots=2880,
        outage_slots=96 if mark == "outage" else 0,
        extraction_completeness=1.0,
        reinjection_completeness=1.0,
        layers=[
            {
                "aquifer": "K",
                "extraction_m3": extraction,
                "reinjection_m3": extraction * ratio,
                "reinjection_tds_mean": None,
                "reinjection_ph_mean": None,
            }
        ],
        extraction_m3=extraction,
    )


def file_company(
    engine: sa.Engine,
    credit_code: str,
    name: str,
    *,
    projects: int = 3,
    marks: dict[tuple[int, int], str] | None = None,
    history: list[float] = (),
    now: datetime | None = None,
    whole_window: bool = False,
) -> Filed:
    """`marks`: (project index, months before this month) → ok, minor, major, critical, outage
    or unevaluated; `history`: scores of earlier snapshots, one a day before now, oldest first;
    `whole_window`: metrics for every month of the scoring window, even before the rulebook's
    first month (which the scoring leaves out)."""
    now = now or datetime.now(UTC)
    marks = marks or {}
    months = metric_months(now, whole_window)
    codes = [f"{credit_code[-6:]}-{i + 1:02d}" for i in range(projects)]
    with Session(engine) as s, s.begin():
        s.exec(sa.text("SELECT set_config('geocredit.actor', 'tests', true)"))
        company = Company(credit_code=credit_code)
        s.add(company)
        s.flush()
        s.add(CompanyVersion(company_id=company.id, name=name, source="tests"))
        for i, code in enumerate(codes):
            project = Project(code=code)
            s.add(project)
            s.flush()
            s.add(
                ProjectVersion(
                    project_id=project.id,
                    company_id=company.id,
                    name=f"{name[:4]}供暖项目 {i + 1}",
                    type="MEDIUM_DEEP",
                    city="太原市小店区",
                    in_spring_protection_zone=False,
                    in_drinking_water_source=False,
                    in_groundwater_restricted_zone=False,
                    source="tests",
                )
            )
            s.add(
                Permit(
                    project_id=project.id,
                    kind="WATER_PERMIT",
                    number=f"晋水取 {code}",
                    annual_total_m3=10_000_000,
                    daily_intensity_m3=100_000,
                    valid_from=date(2025, 1, 1),
                    recorded_by="tests",
                )
            )
            for role in ("EXTRACTION", "REINJECTION"):
                well = Well(code=f"{code}-{role[0]}")
                s.add(well)
                s.flush()
                s.add(
                    WellVersion(
                        well_id=well.id,
                        project_id=project.id,
                        role=role,
                        aquifer="K",
                        confined=False,
                        drilled_on=date(2020, 5, 1),
                        source="tests",
                    )
                )
                if i == 0 and role == "EXTRACTION":
                    stream = f"DS-{well.code}"
                    s.add(
                        Datastream(
                            platform_id=stream,
                            well_id=well.id,
                            indicator="extraction_volume",
                            unit="m3",
                        )
                    )
                    s.flush()
                    s.add(
                        Quarantine(
                            reason="NEGATIVE_VOLUME",
                            detail="累计流量读数下降 3 m³",
                            datastream_platform_id=stream,
                            raw={"result": -3},
                        )
                    )
            for back, month in enumerate(reversed(months)):
                mark = marks.get((i, back), "ok")
                s.add(_metric(project.id, month, mark, final=back > 0, now=now))
        for k, score in enumerate(history):
            grade = next(b.grade.value for b in RULEBOOK.grades if score >= b.min)
            s.add(
                ScoreSnapshot(
                    company_id=company.id,
                    computed_at=now - timedelta(days=len(history) - k),
                    score=score,
                    grade=grade,
                    rulebook_version=RULEBOOK.version,
                    window_start=months[0],
                    window_end=periods.local_date(now, RULEBOOK),
                    inputs_digest="history",
                    finding_ids=[],
                )
            )
        s.flush()
        company_id = company.id
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT set_config('geocredit.actor', 'scoring', true)"))
        summary = rescoring.rescore(conn, [company_id], now=now, rulebook=RULEBOOK)
        assert not summary.errors, summary.errors
    return Filed(credit_code, company_id, codes, months)
