"""Builders of clean scoring inputs: a clean company scores 100 / A with no findings, so each test
changes only what it is about."""

import dataclasses
from datetime import date, datetime
from zoneinfo import ZoneInfo

from scoring.engine import score_company
from scoring.model import (
    CompanyInputs,
    CompanyResult,
    LayerMonth,
    MonthlyReport,
    ProjectFacts,
    ProjectMonth,
    ProjectType,
    QualityLimits,
    WellFacts,
    WellRole,
)
from scoring.rulebook import load_rulebook

TZ = ZoneInfo("Asia/Shanghai")
RB = load_rulebook()
CODE = "91350100M000100Y43"
# After the 2025-26 season; every month of it is final.
NOW = datetime(2026, 4, 20, 10, 0, tzinfo=TZ)
WATERMARK = datetime(2026, 4, 20, 9, 45, tzinfo=TZ)
JAN = date(2026, 1, 1)
SEASON_MONTHS = (date(2025, 11, 1), date(2025, 12, 1), JAN, date(2026, 2, 1), date(2026, 3, 1))


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ)


def project(code: str = "P1", type: ProjectType = ProjectType.MEDIUM_DEEP, **kw) -> ProjectFacts:
    wells = (
        WellFacts(
            f"{code}-E1", WellRole.EXTRACTION, "K1", confined=False, drilled_on=date(2020, 5, 1)
        ),
        WellFacts(
            f"{code}-R1", WellRole.REINJECTION, "K1", confined=False, drilled_on=date(2020, 5, 1)
        ),
    )
    values = {
        "code": code,
        "name": f"示例地热供暖项目{code}",
        "type": type,
        "city": "运城市",
        "registered_on": date(2024, 6, 1),
        "in_spring_protection_zone": False,
        "in_drinking_water_source": False,
        "in_groundwater_restricted_zone": False,
        "permit_annual_m3": 1_000_000.0,
        "permit_daily_m3": 10_000.0,
        "wells": wells,
        "quality_limits": (QualityLimits("K1", tds_max_mg_l=3000.0, ph_min=6.5, ph_max=8.5),),
    }
    return ProjectFacts(**(values | kw))


def month(
    code: str = "P1",
    m: date = JAN,
    *,
    extraction: float = 10_000.0,
    reinjection: float = 10_000.0,
    tds: float | None = 1500.0,
    ph: float | None = 7.5,
    **kw,
) -> ProjectMonth:
    values = {
        "project_code": code,
        "month": m,
        "operating": True,
        "evaluated": True,
        "final": True,
        "layers": (LayerMonth("K1", extraction, reinjection, tds, ph),),
        "expected_slots": 2976,
        "outage_slots": 0,
        "extraction_completeness": 1.0,
        "reinjection_completeness": 1.0,
        "level_completeness": 1.0,
        "temperature_completeness": 1.0,
        "quality_completeness": 1.0,
        "max_daily_extraction_m3": 400.0,
        "days_over_daily_limit": 0,
        "ytd_extraction_m3": extraction,
    }
    return ProjectMonth(**(values | kw))


def company(
    projects: list[ProjectFacts] | None = None,
    months: list[ProjectMonth] | None = None,
    **kw,
) -> CompanyInputs:
    """A company; unless `monthly_reports` is given, every month row gets an on-time report."""
    projects = [project()] if projects is None else projects
    months = [month(p.code) for p in projects] if months is None else months
    kw.setdefault(
        "monthly_reports", [MonthlyReport(m.project_code, m.month, m.month) for m in months]
    )
    kw.setdefault("watermark", WATERMARK)
    return CompanyInputs(
        credit_code=CODE, name="示例能源有限公司", projects=projects, months=months, **kw
    )


def score(inputs: CompanyInputs, now: datetime = NOW, rulebook=RB) -> CompanyResult:
    return score_company(inputs, rulebook, now)


def replace(obj, **kw):
    return dataclasses.replace(obj, **kw)


def of_rule(result: CompanyResult, rule_id: str):
    return [f for f in result.findings if f.rule_id == rule_id]
