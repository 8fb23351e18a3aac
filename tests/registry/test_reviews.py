"""Reviewers' records: append-only, with expected refusals carrying stable codes."""

from datetime import UTC, date, datetime, timedelta

import pydantic
import pytest
import sqlalchemy as sa

from registry import db, registration, reviews
from registry.models import CreditFinding, FindingEvent, Listing, ListingEnd

CODE = "91140100MA0K000017"
NOW = datetime(2026, 11, 25, 6, tzinfo=UTC)


@pytest.fixture
async def company(session_factory):
    async with db.transaction(session_factory, "admin") as s:
        company = await registration.register_company(
            s, registration.CompanyInput(credit_code=CODE, name="运城热能有限公司"), "admin"
        )
        await registration.register_project(
            s,
            registration.ProjectInput(
                code=f"YC-{company.id}",
                credit_code=CODE,
                name="盐湖区地热",
                type="MEDIUM_DEEP",
                city="运城",
            ),
            "admin",
        )
    return company


async def _finding(factory, company_id: int, key: str) -> int:
    async with db.transaction(factory, "scoring") as s:
        finding = CreditFinding(
            company_id=company_id,
            key=key,
            rule_id="NO_REINJECTION",
            policy_clause="二(二)6",
            severity="CRITICAL",
            deduction=0,
            window_start=date(2026, 1, 1),
            window_end=date(2026, 1, 31),
            final=True,
            source="METRICS",
            message="m",
            evidence={},
            rulebook_version="2026.1",
        )
        s.add(finding)
        await s.flush()
        return finding.id


async def test_overturned_appeal_voids_the_finding_by_a_new_event(session_factory, company):
    finding_id = await _finding(session_factory, company.id, "A:1")
    async with db.transaction(session_factory, "reviewer:zhao") as s:
        appeal = await reviews.open_appeal(
            s, finding_id, date(2026, 2, 3), "meter was miscalibrated", "r"
        )
    with pytest.raises(reviews.RecordRejected) as again:
        async with db.transaction(session_factory, "reviewer:zhao") as s:
            await reviews.open_appeal(s, finding_id, date(2026, 2, 4), "again", "r")
    assert again.value.code == "APPEAL_PENDING"
    async with db.transaction(session_factory, "reviewer:zhao") as s:
        await reviews.decide_appeal(
            s, appeal.id, overturn=True, reason="calibration proven", decided_by="r"
        )
    async with session_factory() as s:
        event = await s.scalar(sa.select(FindingEvent).where(FindingEvent.finding_id == finding_id))
    assert event.kind == "OVERTURNED" and event.appeal_id == appeal.id
    with pytest.raises(reviews.RecordRejected) as decided:
        async with db.transaction(session_factory, "reviewer:zhao") as s:
            await reviews.decide_appeal(s, appeal.id, overturn=False, reason="x", decided_by="r")
    assert decided.value.code == "ALREADY_DECIDED"


async def test_repair_is_refused_before_the_minimum_period_and_ends_the_listing_after(
    session_factory, company
):
    finding_id = await _finding(session_factory, company.id, "B:1")
    async with db.transaction(session_factory, "scoring") as s:
        listing = Listing(
            company_id=company.id,
            started_at=NOW - timedelta(days=200),
            min_end=NOW - timedelta(days=17),
            max_end=NOW + timedelta(days=900),
            critical=True,
            reason="NO_REINJECTION",
            finding_ids=[finding_id],
            recorded_by="scoring",
        )
        s.add(listing)
    too_early = listing.min_end - timedelta(seconds=1)
    with pytest.raises(reviews.RecordRejected) as refused:
        async with db.transaction(session_factory, "reviewer") as s:
            await reviews.request_repair(s, listing.id, "reinjection restored", "r", now=too_early)
    assert refused.value.code == "REPAIR_TOO_EARLY"
    async with db.transaction(session_factory, "reviewer") as s:
        repair = await reviews.request_repair(s, listing.id, "reinjection restored", "r", now=NOW)
        await reviews.decide_repair(
            s, repair.id, approve=True, reason="verified on site", decided_by="r", now=NOW
        )
    async with session_factory() as s:
        end = await s.scalar(sa.select(ListingEnd).where(ListingEnd.listing_id == listing.id))
        event = await s.scalar(sa.select(FindingEvent).where(FindingEvent.finding_id == finding_id))
    assert end.how == "REPAIRED" and event.kind == "REPAIRED"


async def test_inspection_with_findings_and_rectification(session_factory, company):
    async with db.transaction(session_factory, "reviewer:li") as s:
        inspection = await reviews.record_inspection(
            s,
            reviews.InspectionInput(
                credit_code=CODE.lower(),
                project_code=f"YC-{company.id}",
                inspected_on=date(2026, 11, 20),
                inspector="李明",
                findings=[
                    {
                        "severity": "MAJOR",
                        "description": "回灌井流量计未联网",
                        "rectification_deadline": date(2026, 12, 20),
                    }
                ],
            ),
            "reviewer:li",
        )
    async with session_factory() as s:
        found = (
            await s.execute(
                sa.text("SELECT id, severity FROM inspection_finding WHERE inspection_id = :i"),
                {"i": inspection.id},
            )
        ).one()
    assert found.severity == "MAJOR"
    async with db.transaction(session_factory, "reviewer:li") as s:
        await reviews.record_rectification(
            s, found.id, date(2026, 12, 1), "联网完成", "reviewer:li"
        )
    with pytest.raises(reviews.RecordRejected, match="already rectified"):
        async with db.transaction(session_factory, "reviewer:li") as s:
            await reviews.record_rectification(s, found.id, date(2026, 12, 2), "", "reviewer:li")


def test_inspection_input_is_validated():
    with pytest.raises(pydantic.ValidationError, match="before the inspection date"):
        reviews.InspectionInput(
            credit_code=CODE,
            inspected_on=date(2026, 11, 20),
            inspector="x",
            findings=[
                {
                    "severity": "MINOR",
                    "description": "d",
                    "rectification_deadline": date(2026, 1, 1),
                }
            ],
        )
    with pytest.raises(pydantic.ValidationError, match="severity"):
        reviews.InspectionInput(
            credit_code=CODE,
            inspected_on=date(2026, 11, 20),
            inspector="x",
            findings=[{"severity": "FATAL", "description": "d"}],
        )


async def test_rectification_cannot_predate_its_inspection(session_factory, company):
    async with db.transaction(session_factory, "reviewer:li") as s:
        inspection = await reviews.record_inspection(
            s,
            reviews.InspectionInput(
                credit_code=CODE,
                inspected_on=date(2026, 11, 20),
                inspector="李明",
                findings=[{"severity": "MINOR", "description": "月报迟交"}],
            ),
            "reviewer:li",
        )
        finding_id = await s.scalar(
            sa.text("SELECT id FROM inspection_finding WHERE inspection_id = :i"),
            {"i": inspection.id},
        )
    with pytest.raises(reviews.RecordRejected, match="before the inspection") as refused:
        async with db.transaction(session_factory, "reviewer:li") as s:
            await reviews.record_rectification(s, finding_id, date(2026, 11, 19), "", "reviewer:li")
    assert refused.value.field == ("rectified_on",)


async def test_a_listed_company_cannot_be_listed_twice(session_factory, company):
    async with db.transaction(session_factory, "admin") as s:
        await reviews.place_listing(
            s,
            CODE,
            "伪造监测数据",
            NOW + timedelta(days=365),
            NOW + timedelta(days=1095),
            True,
            "admin",
            now=NOW,
        )
    with pytest.raises(reviews.RecordRejected) as refused:
        async with db.transaction(session_factory, "admin") as s:
            await reviews.place_listing(
                s,
                CODE,
                "again",
                NOW + timedelta(days=365),
                NOW + timedelta(days=1095),
                True,
                "admin",
                now=NOW,
            )
    assert refused.value.code == "ALREADY_LISTED"
