"""No N+1: a full credit-file query (graphql/operations/reviewer_credit_file.graphql) runs the
same, bounded number of SQL statements for a company with 5 projects and one with 50; a list of
companies with their projects and wells, the same for 2 companies and 10.

Runs the schema in-process against a real database and counts the statements the engine sends."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from api.context import Services, request_context
from api.schema import build_schema
from registry.auth import Client
from registry.models import (
    ApiClient,
    Appeal,
    Application,
    Company,
    CompanyVersion,
    CreditFinding,
    CreditRepair,
    Datastream,
    Decision,
    Inspection,
    InspectionFinding,
    Listing,
    MonthlyReport,
    Permit,
    PostEvaluation,
    Project,
    ProjectMonthMetric,
    ProjectVersion,
    Quarantine,
    Role,
    ScoreSnapshot,
    Well,
    WellVersion,
)
from tests.api.support import code

CREDIT_FILE = (
    Path(__file__).resolve().parents[2] / "graphql/operations/reviewer_credit_file.graphql"
).read_text()
COMPANIES = """query($first: Int!) { companies(first: $first) { edges { node {
    creditCode standing { grade listing { id } }
    projects(first: 100) { edges { node { code wells { code } permits { number }
        monthlyMetrics(first: 3) { edges { node { month reinjectionRatio } } } } } }
    findings(first: 5) { edges { node { ruleId project { code } appeals { outcome } } } }
} } } }"""

BOUND = 30
"""Statements one credit-file query may run, whatever the size of the file."""

NOW = datetime.now(UTC)


def file_company(engine: sa.Engine, n: int, projects: int) -> str:
    """A company with `projects` projects, each with wells, a permit, month metrics, a monthly
    report and a quarantined row, and every kind of record of a credit file."""
    credit_code = code(n)
    with Session(engine) as s, s.begin():
        s.exec(sa.text("SELECT set_config('geocredit.actor', 'tests', true)"))
        company = Company(credit_code=credit_code)
        s.add(company)
        s.flush()
        s.add(CompanyVersion(company_id=company.id, name=f"企业 {n}", source="tests"))
        client = ApiClient(name=f"system {n}", role="approval_system", token_hash=f"h{n}")
        s.add(client)
        first_project = None
        for p in range(projects):
            project = Project(code=f"P{n}-{p:03d}")
            s.add(project)
            s.flush()
            first_project = first_project or project
            s.add(
                ProjectVersion(
                    project_id=project.id,
                    company_id=company.id,
                    name=f"项目 {p}",
                    type="MEDIUM_DEEP",
                    city="太原",
                    source="tests",
                )
            )
            s.add(
                Permit(
                    project_id=project.id,
                    kind="WATER_PERMIT",
                    number=f"W{n}-{p}",
                    valid_from=date(2026, 1, 1),
                    recorded_by="tests",
                )
            )
            s.add(
                MonthlyReport(
                    project_id=project.id,
                    month=date(2026, 1, 1),
                    submitted_on=date(2026, 2, 3),
                    recorded_by="tests",
                )
            )
            for m in (1, 2, 3):
                s.add(
                    ProjectMonthMetric(
                        project_id=project.id,
                        month=date(2026, m, 1),
                        operating=True,
                        evaluated=True,
                        final=True,
                        scope_start=NOW,
                        scope_end=NOW,
                        layers=[{"aquifer": "K", "extraction_m3": 100.0, "reinjection_m3": 97.0}],
                    )
                )
            for role in ("EXTRACTION", "REINJECTION"):
                well = Well(code=f"W{n}-{p}-{role[0]}")
                s.add(well)
                s.flush()
                s.add(
                    WellVersion(
                        well_id=well.id,
                        project_id=project.id,
                        role=role,
                        aquifer="K",
                        source="tests",
                    )
                )
                stream = f"DS-{well.code}"
                s.add(
                    Datastream(
                        platform_id=stream,
                        well_id=well.id,
                        indicator="extraction_volume",
                        unit="m3",
                    )
                )
                s.add(
                    Quarantine(
                        reason="NEGATIVE_VOLUME",
                        detail="-3 m³",
                        datastream_platform_id=stream,
                        raw={"result": -3},
                    )
                )
        s.flush()
        findings = []
        for p in range(min(projects, 10)):
            finding = CreditFinding(
                company_id=company.id,
                project_id=first_project.id,
                key=f"REINJ_RATIO:{n}:{p}",
                rule_id="REINJ_RATIO",
                policy_clause="二(二)5",
                severity="MINOR",
                deduction=5,
                window_start=date(2026, 1, 1),
                window_end=date(2026, 1, 31),
                final=True,
                source="METRICS",
                message="m",
                evidence={},
                rulebook_version="2026.1",
            )
            s.add(finding)
            s.flush()
            findings.append(finding.id)
            s.add(
                Appeal(
                    company_id=company.id,
                    finding_id=finding.id,
                    filed_on=date(2026, 2, 1),
                    grounds="g",
                    recorded_by="tests",
                )
            )
            inspection = Inspection(
                company_id=company.id,
                project_id=first_project.id,
                inspected_on=date(2026, 1, 5),
                inspector="王",
                recorded_by="tests",
            )
            s.add(inspection)
            s.flush()
            s.add(
                InspectionFinding(
                    inspection_id=inspection.id, severity="MINOR", description="d", evidence=["e"]
                )
            )
            s.add(
                PostEvaluation(
                    company_id=company.id,
                    project_id=first_project.id,
                    evaluated_on=date(2026, 1, 5),
                    verdict="PASS",
                    reviewer="r",
                    recorded_by="tests",
                )
            )
        s.add(
            ScoreSnapshot(
                company_id=company.id,
                computed_at=NOW,
                score=50,
                grade="D",
                rulebook_version="2026.1",
                window_start=date(2024, 12, 1),
                window_end=NOW.date(),
                inputs_digest="t",
                finding_ids=findings,
            )
        )
        listing = Listing(
            company_id=company.id,
            started_at=NOW - timedelta(days=1),
            min_end=NOW + timedelta(days=180),
            max_end=NOW + timedelta(days=900),
            critical=False,
            reason="D",
            finding_ids=findings,
            recorded_by="tests",
        )
        s.add(listing)
        s.flush()
        s.add(
            CreditRepair(
                company_id=company.id, listing_id=listing.id, statement="s", recorded_by="tests"
            )
        )
        for case in range(3):
            application = Application(
                client_id=client.id,
                case_reference=f"C{n}-{case}",
                credit_code=credit_code,
                kind="NEW_WELL",
            )
            s.add(application)
            s.flush()
            s.add(
                Decision(
                    application_id=application.id,
                    company_id=company.id,
                    decision="BLOCK",
                    grade="D",
                    score=50,
                    reasons=[{"code": "LISTED", "message": "m"}],
                    conditions=[],
                    as_of=NOW,
                    rulebook_version="2026.1",
                )
            )
    return credit_code


@pytest.fixture(scope="module")
def files(engine):
    return {
        "small": file_company(engine, 8001, projects=5),
        "large": file_company(engine, 8002, projects=50),
        **{f"more{i}": file_company(engine, 8010 + i, projects=3) for i in range(8)},
    }


@pytest.fixture
async def run(db_url):
    """Execute a query as a reviewer; returns (data, SQL statements it ran)."""
    services = Services.for_database(db_url, pool_size=5)
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    sa.event.listen(services.engine.sync_engine, "before_cursor_execute", count)
    schema = build_schema()

    async def execute(query: str, variables: dict) -> tuple[dict, int]:
        context = request_context(services, Client(1, "reviewer", Role.REVIEWER), "test")
        statements.clear()
        result = await schema.execute(query, variables, context_value=context)
        assert result.errors is None, result.errors
        return result.data, len(statements)

    yield execute
    await services.engine.dispose()


async def test_a_full_credit_file_runs_a_bounded_number_of_statements(files, run):
    _, small_count = await run(CREDIT_FILE, {"creditCode": files["small"]})
    large, large_count = await run(CREDIT_FILE, {"creditCode": files["large"]})
    file = large["company"]
    assert len(file["projects"]["edges"]) == 50
    project = file["projects"]["edges"][0]["node"]
    assert len(project["wells"]) == 2 and len(project["permits"]) == 1
    assert len(project["monthlyMetrics"]["edges"]) == 3
    assert project["monthlyMetrics"]["edges"][0]["node"]["reinjectionRatio"] == 0.97
    assert len(file["findings"]["edges"]) == 10
    assert len(file["quarantinedRows"]["edges"]) == 20  # first: 20 of 100
    assert file["standing"]["listing"] is not None
    assert all(e["node"]["finding"] for e in file["appeals"]["edges"])
    assert len(file["applications"]["edges"]) == 3
    print(f"\ncredit file: {small_count} statements (5 projects), {large_count} (50 projects)")
    assert large_count == small_count <= BOUND


async def test_a_list_of_files_batches_across_companies(files, run):
    _, two = await run(COMPANIES, {"first": 2})
    data, ten = await run(COMPANIES, {"first": 10})
    assert len(data["companies"]["edges"]) == 10
    assert ten == two
