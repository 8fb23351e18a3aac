"""Benchmark: score a province (20,000 projects × 12 months) with scoring.engine.score_company.

    .venv/bin/python -m bench.scoring [--projects 20000] [--repeat 3] [--seed 7]

Prints CPU seconds (time.process_time), projects/s, and the ratio to a baseline that only
iterates the same inputs (every project, month and layer) in the same run. Goal: a province in
under 2 s of CPU. Also times `decide` over 1,000 standings (the eligibility batch size).
"""

import argparse
import random
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from scoring import periods
from scoring.decision import Standing, decide
from scoring.engine import score_company
from scoring.model import (
    ApplicationKind,
    CompanyInputs,
    InspectionFinding,
    LayerMonth,
    MonthlyReport,
    PostEvaluation,
    ProjectFacts,
    ProjectMonth,
    ProjectType,
    QualityLimits,
    Severity,
    Verdict,
    WellFacts,
    WellRole,
)
from scoring.rulebook import load_rulebook

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 20, 3, 0, tzinfo=TZ)
WATERMARK = NOW - timedelta(minutes=20)
MONTHS = [periods.add_months(date(2025, 12, 1), i) for i in range(12)]  # Dec 2025 … Nov 2026
TYPES = (
    [ProjectType.SHALLOW_WATER_SOURCE] * 4
    + [ProjectType.MEDIUM_DEEP] * 3
    + [ProjectType.CLOSED_LOOP] * 2
    + [ProjectType.DIRECT_USE]
)
CITIES = ["运城市", "太原市", "临汾市", "大同市", "忻州市", "晋中市"]


# How well a project is run: most are clean, some sloppy, a few bad (ratio and completeness
# distributions per month, and the share of monthly reports sent on time).
PROFILES = {
    "good": ([1.0] * 98 + [0.97] * 2, [1.0] * 95 + [0.99] * 4 + [0.9], 0.995),
    "sloppy": ([1.0] * 80 + [0.96] * 10 + [0.9] * 10, [1.0] * 80 + [0.9] * 15 + [0.6] * 5, 0.95),
    "bad": ([1.0] * 60 + [0.8] * 25 + [0.3] * 15, [1.0] * 70 + [0.6] * 20 + [0.0] * 10, 0.8),
}


def _month(rng: random.Random, rb, p: ProjectFacts, m: date, ytd: float, profile: str):
    water = p.type in rb.water_taking
    heating = periods.heating_season_days(p.city, m, rb) is not None
    runs_all_year = p.type is ProjectType.DIRECT_USE
    evaluated = water and (heating or runs_all_year)
    final = periods.is_final(m, WATERMARK, rb)
    if not evaluated:
        return ProjectMonth(p.code, m, operating=True, evaluated=False, final=final), ytd
    ratios, completeness, _ = PROFILES[profile]
    extraction = rng.uniform(5_000, 60_000)
    direct = p.type is ProjectType.DIRECT_USE
    reinjection = 0.0 if direct else extraction * rng.choice(ratios)
    ytd = ytd + extraction
    month = ProjectMonth(
        project_code=p.code,
        month=m,
        operating=True,
        evaluated=True,
        final=final,
        layers=(LayerMonth("Q4", extraction, reinjection, rng.uniform(800, 3_100), 7.4),),
        expected_slots=2976,
        outage_slots=0,
        extraction_completeness=rng.choice(completeness),
        reinjection_completeness=None if direct else rng.choice(completeness),
        level_completeness=rng.choice(completeness),
        temperature_completeness=1.0,
        quality_completeness=1.0,
        max_daily_extraction_m3=extraction / 25,
        days_over_daily_limit=1 if rng.random() < 0.01 else 0,
        ytd_extraction_m3=ytd,
    )
    return month, ytd


def province(n_projects: int, seed: int, rb) -> list[CompanyInputs]:
    rng = random.Random(seed)
    companies = []
    made = 0
    while made < n_projects:
        count = min(rng.randint(1, 7), n_projects - made)
        credit = f"C{len(companies):06d}"
        projects, months, reports = [], [], []
        for i in range(count):
            code = f"{credit}-P{i}"
            p = ProjectFacts(
                code=code,
                name=f"项目{code}",
                type=rng.choice(TYPES),
                city=rng.choice(CITIES),
                registered_on=date(2024, 1, 1),
                in_spring_protection_zone=rng.random() < 0.001,
                in_drinking_water_source=False,
                in_groundwater_restricted_zone=False,
                permit_annual_m3=400_000.0,
                permit_daily_m3=2_500.0,
                wells=(
                    WellFacts(f"{code}-E", WellRole.EXTRACTION, "Q4", False, date(2023, 5, 1)),
                    WellFacts(f"{code}-R", WellRole.REINJECTION, "Q4", False, date(2023, 5, 1)),
                ),
                quality_limits=(QualityLimits("Q4", 3_000.0, 6.5, 8.5),),
            )
            projects.append(p)
            profile = rng.choices(list(PROFILES), weights=[85, 12, 3])[0]
            ytd = 0.0
            for m in MONTHS:
                if m.month == 1:
                    ytd = 0.0
                row, ytd = _month(rng, rb, p, m, ytd, profile)
                months.append(row)
                if rng.random() < PROFILES[profile][2]:
                    reports.append(MonthlyReport(code, m, m + timedelta(days=rng.randint(20, 40))))
        inspections = []
        if rng.random() < 0.1:
            sev = rng.choice([Severity.MINOR, Severity.MAJOR, Severity.MAJOR, Severity.CRITICAL])
            finding = InspectionFinding(
                f"{credit}-F1",
                f"{credit}-I1",
                projects[0].code,
                date(2026, 3, 10),
                sev,
                "回灌井运行记录不全",
                rectification_deadline=date(2026, 5, 1),
            )
            inspections.append(finding)
        evaluations = []
        if rng.random() < 0.05:
            verdict = rng.choice(list(Verdict))
            evaluations.append(
                PostEvaluation(f"{credit}-E1", projects[0].code, date(2026, 6, 1), verdict)
            )
        companies.append(
            CompanyInputs(
                credit_code=credit,
                name=f"公司{credit}",
                watermark=WATERMARK,
                projects=projects,
                months=months,
                monthly_reports=reports,
                inspection_findings=inspections,
                post_evaluations=evaluations,
            )
        )
        made += count
    return companies


def baseline(companies: list[CompanyInputs]) -> float:
    """Touch every input once: what any scoring of the same data must at least pay."""
    total = 0.0
    for c in companies:
        for p in c.projects:
            total += p.permit_annual_m3 or 0.0
        for m in c.months:
            for lay in m.layers:
                total += lay.extraction_m3 + lay.reinjection_m3
            total += m.extraction_completeness or 0.0
        for r in c.monthly_reports:
            total += r.month.day
    return total


def _cpu(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    rb = load_rulebook()
    companies = province(args.projects, args.seed, rb)
    n_projects = sum(len(c.projects) for c in companies)
    n_months = sum(len(c.months) for c in companies)
    results = [score_company(c, rb, NOW) for c in companies]  # warm-up, and the figures below

    scoring_s = _cpu(lambda: [score_company(c, rb, NOW) for c in companies], args.repeat)
    baseline_s = _cpu(lambda: baseline(companies), args.repeat)

    standings = [Standing.from_result(r, rb) for r in results]
    batch = (standings * (1_000 // len(standings) + 1))[:1_000]
    decide_s = _cpu(
        lambda: [
            decide(s, ApplicationKind.PROJECT_FILING, rb, NOW + timedelta(hours=1)) for s in batch
        ],
        args.repeat,
    )

    findings = sum(len(r.findings) for r in results)
    grades = {g: sum(r.grade == g for r in results) for g in "ABCD"}
    listed = sum(bool(r.listing_transitions) for r in results)
    print(
        f"province: {len(companies):,} companies, {n_projects:,} projects, "
        f"{n_months:,} project-months"
    )
    print(f"findings: {findings:,}; grades {grades}; listings opened: {listed:,}")
    print(f"scoring:  {scoring_s:.3f} s CPU  = {n_projects / scoring_s:,.0f} projects/s "
          f"({n_months / scoring_s:,.0f} project-months/s)  [best of {args.repeat}]")  # fmt: skip
    print(f"baseline: {baseline_s:.3f} s CPU (iterate the same inputs)  → scoring = "
          f"{scoring_s / baseline_s:.1f}× baseline")  # fmt: skip
    print(
        f"decide:   {decide_s * 1e3:.2f} ms CPU per 1,000 standings ({decide_s * 1e3:.1f} µs each)"
    )
    verdict = "met" if scoring_s < 2.0 else "NOT met"
    print(f"goal (province < 2 s CPU): {verdict}")


if __name__ == "__main__":
    main()
