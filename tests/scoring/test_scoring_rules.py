"""One table-driven case (or more) per rule of docs/rulebook.md, each naming its policy clause."""

from dataclasses import dataclass
from datetime import date

import pytest

from scoring.model import (
    CompanyInputs,
    InspectionFinding,
    LayerMonth,
    PostEvaluation,
    ProjectType,
    SeasonLevel,
    Severity,
    Source,
    Verdict,
    WellFacts,
    WellRole,
)
from scoring.rulebook import RULE_IDS
from tests.scoring.scoring_builders import (
    JAN,
    NOW,
    company,
    local,
    month,
    of_rule,
    project,
    replace,
    score,
)

SHALLOW = ProjectType.SHALLOW_WATER_SOURCE
DEEP = ProjectType.MEDIUM_DEEP
CLOSED = ProjectType.CLOSED_LOOP
DIRECT = ProjectType.DIRECT_USE


@dataclass(frozen=True)
class Case:
    rule_id: str
    clause: str
    inputs: CompanyInputs
    severity: Severity
    deduction: float
    source: Source = Source.METRICS
    mentions: tuple[str, ...] = ()  # text the officer's message must contain
    note: str = ""


def _one(type_=DEEP, **month_kw) -> CompanyInputs:
    return company([project(type=type_)], [month(**month_kw)])


def _inspection(severity: Severity, description: str = "回灌井口渗漏", **kw) -> CompanyInputs:
    f = InspectionFinding("F1", "INS-7", "P1", date(2026, 1, 10), severity, description, **kw)
    return company(inspection_findings=[f])


def _evaluation(verdict: Verdict, summary: str) -> CompanyInputs:
    return company(
        post_evaluations=[PostEvaluation("E1", "P1", date(2026, 3, 20), verdict, summary)]
    )


def _well(code: str, confined: bool = False, drilled_on: date = date(2020, 5, 1)) -> WellFacts:
    return WellFacts(code, WellRole.EXTRACTION, "K1", confined, drilled_on)


def _built_in(year: int, **kw) -> list:
    """A project whose wells were drilled in `year` (v2026.2: the zone ban applies to projects
    built on or after applies_from)."""
    wells = (_well("W1", drilled_on=date(year, 1, 3)),)
    return [project(wells=wells, **kw)]


def _levels(depths: dict[int, float]) -> CompanyInputs:
    return company(season_levels=[SeasonLevel("P1", s, d) for s, d in depths.items()])


CASES = [
    Case("REINJ_RATIO", "二(三)1", _one(SHALLOW, reinjection=9_000), Severity.MINOR, 5,
         mentions=("P1", "2026-01", "90.0%", "95%", "9,000", "10,000")),
    Case("REINJ_RATIO", "二(三)1", _one(SHALLOW, reinjection=8_000), Severity.MAJOR, 15),
    Case("REINJ_RATIO", "二(二)5", _one(DEEP, reinjection=9_700), Severity.MINOR, 5,
         mentions=("97.0%", "98%")),
    Case("REINJ_RATIO", "二(二)5", _one(DEEP, reinjection=8_700), Severity.MAJOR, 15),
    Case("NO_REINJECTION", "二(二)6", _one(SHALLOW, reinjection=4_000), Severity.CRITICAL, 40,
         mentions=("P1", "2026-01", "40.0%", "10,000")),
    Case("METERING_GAP", "二(二)6、二(三)6", _one(reinjection_completeness=0.9), Severity.MINOR, 3,
         mentions=("P1", "2026-01", "回灌", "90.0%")),
    Case("METERING_GAP", "二(二)6、二(三)6", _one(extraction_completeness=0.6), Severity.MAJOR, 10,
         mentions=("取水", "60.0%")),
    Case("NO_METERING", "二(二)6", _one(extraction_completeness=0.0), Severity.CRITICAL, 40,
         mentions=("P1", "2026-01", "取水")),
    Case("EXTRACTION_CAP", "二(三)1", _one(ytd_extraction_m3=1_200_000.0), Severity.MAJOR, 15,
         mentions=("P1", "2026", "1,200,000", "1,000,000")),
    Case("EXTRACTION_CAP", "二(三)1",
         _one(days_over_daily_limit=2, max_daily_extraction_m3=12_500.0), Severity.MINOR, 6,
         mentions=("P1", "2026-01", "2 天", "10,000", "12,500")),
    Case("EXTRACTION_CAP", "二(三)1", _one(days_over_daily_limit=9), Severity.MINOR, 15),
    Case("QUALITY", "二(三)6", _one(tds=3_400.0), Severity.MAJOR, 10,
         mentions=("P1", "2026-01", "TDS", "3400", "3000"), note="TDS"),
    Case("QUALITY", "二(三)6", _one(ph=6.1), Severity.MAJOR, 10, mentions=("pH", "6.1", "6.5"),
         note="pH"),
    Case("WATER_LEVEL", "三", _levels({2024: 40.0, 2025: 42.5}), Severity.WARNING, 0,
         mentions=("P1", "2025-26", "42.50", "40.00", "2.50")),
    Case("MONTHLY_REPORT", "二(三)6", company(monthly_reports=[]), Severity.MINOR, 2,
         Source.REVIEWER, mentions=("P1", "2026-01", "2026-02-15")),
    Case("ZONE_BAN", "二(三)1",
         company(_built_in(2026, type=CLOSED, in_spring_protection_zone=True), []),
         Severity.CRITICAL, 40, Source.REGISTRY, mentions=("P1", "泉域重点保护区"),
         note="spring zone"),
    Case("ZONE_BAN", "二(三)1",
         company(_built_in(2026, type=DIRECT, in_drinking_water_source=True)),
         Severity.CRITICAL, 40, Source.REGISTRY, mentions=("集中式地下水饮用水水源地",),
         note="drinking-water source"),
    Case("LEGACY_IN_BANNED_ZONE", "二(三)1",
         company(_built_in(2019, type=CLOSED, in_spring_protection_zone=True), []),
         Severity.WARNING, 0, Source.REGISTRY, mentions=("P1", "泉域重点保护区", "2019-01-03"),
         note="built before the ban applied"),
    Case("CONFINED_WATER", "二(三)1",
         company([project(type=SHALLOW, wells=(_well("W9", confined=True),))]),
         Severity.CRITICAL, 40, Source.REGISTRY, mentions=("P1", "W9", "承压水")),
    Case("NEW_WELL_IN_ZONE", "二(三)1",
         company([project(type=SHALLOW, in_groundwater_restricted_zone=True,
                          wells=(_well("W5", drilled_on=date(2026, 1, 3)),))]),
         Severity.CRITICAL, 40, Source.REGISTRY, mentions=("P1", "W5", "2026-01-03")),
    Case("INSPECTION", "三", _inspection(Severity.MINOR), Severity.MINOR, 5, Source.REVIEWER,
         mentions=("P1", "INS-7", "2026-01-10", "回灌井口渗漏"), note="open"),
    Case("INSPECTION", "三", _inspection(Severity.MAJOR), Severity.MAJOR, 15, Source.REVIEWER),
    Case("INSPECTION", "三", _inspection(Severity.CRITICAL), Severity.CRITICAL, 40,
         Source.REVIEWER),
    Case("INSPECTION", "三", _inspection(Severity.MAJOR, rectification_deadline=date(2026, 2, 10)),
         Severity.MAJOR, 30, Source.REVIEWER, mentions=("2026-02-10", "加倍"),
         note="unrectified after deadline: doubled"),
    Case("INSPECTION", "三",
         _inspection(Severity.MINOR, rectification_deadline=date(2026, 2, 10),
                     rectified_on=date(2026, 2, 1)),
         Severity.MINOR, 5, Source.REVIEWER, note="rectified in time"),
    Case("POST_EVALUATION", "三",
         _evaluation(Verdict.CONDITIONAL, "回灌方案需补充论证"),
         Severity.MINOR, 10, Source.REVIEWER, mentions=("P1", "E1", "有条件通过")),
    Case("POST_EVALUATION", "三",
         _evaluation(Verdict.FAIL, "采灌失衡"),
         Severity.MAJOR, 30, Source.REVIEWER),
    Case("FALSIFIED_DATA", "三",
         _inspection(Severity.CRITICAL, "回灌流量计被改装", falsified_data=True),
         Severity.CRITICAL, 40, Source.REVIEWER, mentions=("P1", "INS-7", "造假")),
    Case("MONITORING_GAP", "二(三)6", _one(level_completeness=0.5), Severity.WARNING, 0,
         mentions=("P1", "2026-01", "水位 50.0%")),
]  # fmt: skip


def _case_id(c: Case) -> str:
    return f"{c.rule_id} {c.clause} {c.severity}-{c.deduction:g} {c.note}".strip()


def test_every_rule_of_the_rulebook_has_a_case():
    assert {c.rule_id for c in CASES} == set(RULE_IDS)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_rule(case: Case):
    result = score(case.inputs)
    found = of_rule(result, case.rule_id)
    assert len(found) == 1, result.findings
    f = found[0]
    assert f.policy_clause == case.clause
    assert (f.severity, f.deduction, f.source) == (case.severity, case.deduction, case.source)
    assert f.counts and f.final
    assert f.key.startswith(f"{case.rule_id}:")
    for text in case.mentions:
        assert text in f.message, f.message
    # nothing else fires on an otherwise clean company, except what the same fact implies
    implied = {"NO_REINJECTION": {"REINJ_RATIO"}, "NO_METERING": set()}.get(case.rule_id, set())
    assert {g.rule_id for g in result.findings} <= {case.rule_id} | implied
    expected = max(0.0, 100 - sum(min(40, x) for x in result.deductions.values()))
    assert result.score == expected


def test_clean_company_scores_100_a_without_findings():
    result = score(company())
    assert (result.findings, result.score, result.grade.value) == ([], 100.0, "A")
    assert result.listing_transitions == [] and result.listing is None


# ---------------------------------------------------------------------- rule applicability


@pytest.mark.parametrize(
    ("type_", "kw", "absent"),
    [
        (DIRECT, {"reinjection": 0.0}, "REINJ_RATIO"),  # direct use need not reinject
        (DIRECT, {"reinjection_completeness": 0.0}, "NO_METERING"),  # nor meter reinjection
        (CLOSED, {"extraction_completeness": 0.0}, "NO_METERING"),  # closed loops take no water
        (CLOSED, {"reinjection": 0.0}, "REINJ_RATIO"),
        (DEEP, {"evaluated": False, "reinjection": 0.0}, "REINJ_RATIO"),  # month out of scope
        (DEEP, {"operating": False, "extraction_completeness": 0.0}, "NO_METERING"),
    ],
)
def test_rule_does_not_apply(type_, kw, absent):
    assert of_rule(score(_one(type_, **kw)), absent) == []


def test_drinking_water_zone_does_not_ban_a_closed_loop():
    inputs = company([project(type=CLOSED, in_drinking_water_source=True)], [])
    assert score(inputs).findings == []


def test_medium_deep_sites_are_not_limited_by_groundwater_zones():
    well = WellFacts("W5", WellRole.EXTRACTION, "K1", True, date(2026, 1, 3))
    inputs = company([project(type=DEEP, in_groundwater_restricted_zone=True, wells=(well,))])
    assert score(inputs).findings == []


def test_wells_drilled_before_the_rulebook_are_not_new():
    well = WellFacts("W5", WellRole.EXTRACTION, "K1", False, date(2025, 11, 14))
    p = project(type=SHALLOW, in_groundwater_restricted_zone=True, wells=(well,))
    assert of_rule(score(company([p])), "NEW_WELL_IN_ZONE") == []


def test_missing_registry_facts_are_reported_not_evaluated():
    p = project(
        type=SHALLOW,
        in_spring_protection_zone=None,
        permit_annual_m3=None,
        quality_limits=(),
        wells=(WellFacts("W1", WellRole.EXTRACTION, "K1"),),
    )
    result = score(company([p], [month(tds=3999.0)]))
    assert result.findings == []
    skipped = {(n.rule_id, n.reason) for n in result.not_evaluated}
    assert ("ZONE_BAN", "zone flag unknown: 泉域重点保护区") in skipped
    assert {"EXTRACTION_CAP", "QUALITY", "CONFINED_WATER"} <= {r for r, _ in skipped}


def test_daily_cap_without_permit_intensity_is_not_evaluated():
    result = score(company([project(permit_daily_m3=None)], [month(days_over_daily_limit=3)]))
    assert of_rule(result, "EXTRACTION_CAP") == []
    assert [n.rule_id for n in result.not_evaluated] == ["EXTRACTION_CAP"]


# ------------------------------------------------------------------------- rule details


def test_reinjection_into_another_layer_does_not_count():
    """同层回灌: K2's surplus does not make up for K1's shortfall."""
    layers = (LayerMonth("K1", 10_000.0, 5_000.0), LayerMonth("K2", 0.0, 5_000.0))
    result = score(company(months=[month(layers=layers)]))
    [f] = of_rule(result, "REINJ_RATIO")
    assert f.evidence["ratio"] == 0.5
    assert [x["aquifer"] for x in f.evidence["layers"]] == ["K1", "K2"]


def test_no_reinjection_also_counts_as_a_major_ratio_finding():
    result = score(_one(SHALLOW, reinjection=1_000))
    assert {f.rule_id: f.severity for f in result.findings} == {
        "NO_REINJECTION": Severity.CRITICAL,
        "REINJ_RATIO": Severity.MAJOR,
    }


def test_a_silent_reinjection_meter_is_no_metering_not_no_reinjection():
    result = score(_one(reinjection=0.0, reinjection_completeness=0.0))
    assert [f.rule_id for f in result.findings] == ["NO_METERING"]
    assert result.findings[0].evidence["streams_without_data"] == ["reinjection"]


def test_annual_cap_fires_once_per_year_in_the_month_it_is_crossed():
    months = [
        month(m=date(2025, 12, 1), ytd_extraction_m3=1_100_000.0),
        month(m=JAN, ytd_extraction_m3=600_000.0),
        month(m=date(2026, 2, 1), ytd_extraction_m3=1_100_000.0),
        month(m=date(2026, 3, 1), ytd_extraction_m3=1_300_000.0),
    ]
    keys = [f.key for f in of_rule(score(company(months=months)), "EXTRACTION_CAP")]
    assert keys == ["EXTRACTION_CAP:P1:2025", "EXTRACTION_CAP:P1:2026"]


def test_each_rule_is_capped_at_40_points():
    months = [month(m=m, reinjection=9_000) for m in (date(2025, 11, 1), date(2025, 12, 1))]
    months += [month(m=m, reinjection=8_000) for m in (JAN, date(2026, 2, 1), date(2026, 3, 1))]
    result = score(company([project(type=SHALLOW)], months))
    assert sum(f.deduction for f in result.findings) == 5 + 5 + 15 * 3
    assert result.deductions == {"REINJ_RATIO": 40.0}
    assert result.score == 60.0


def test_finding_keys_are_stable_and_content_fingerprinted():
    a = score(_one(reinjection=9_000)).findings[0]
    b = score(_one(reinjection=9_000)).findings[0]
    c = score(_one(reinjection=9_100)).findings[0]
    assert a.key == b.key == c.key == "REINJ_RATIO:P1:2026-01"
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_water_level_compares_with_the_previous_season_only():
    assert score(_levels({2025: 50.0})).findings == []  # no previous season
    assert score(_levels({2024: 40.0, 2025: 42.0})).findings == []  # exactly 2 m: no warning
    assert of_rule(score(_levels({2024: 40.0, 2025: 42.01})), "WATER_LEVEL")


def test_a_finding_names_a_company_level_inspection_as_the_company():
    f = InspectionFinding("F1", "INS-1", None, date(2026, 1, 10), Severity.MINOR, "台账缺失")
    [finding] = score(company(inspection_findings=[f])).findings
    assert finding.project_code is None and finding.message.startswith("企业")


def test_records_dated_after_now_are_ignored():
    f = InspectionFinding("F1", "INS-1", "P1", date(2026, 4, 21), Severity.MAJOR, "…")
    assert score(company(inspection_findings=[f]), now=local(2026, 4, 20, 23, 0)).findings == []


def test_evidence_is_json_serialisable():
    import json

    result = score(_one(SHALLOW, reinjection=1_000, level_completeness=0.2, tds=9_000.0))
    assert len(result.findings) == 4
    for f in result.findings:
        json.dumps(f.to_json(), ensure_ascii=False)


def test_now_must_be_aware():
    with pytest.raises(ValueError, match="naive"):
        score(company(), now=NOW.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: replace(c, months=[month(code="P9")]), "unknown project"),
        (lambda c: replace(c, months=[month(), month()]), "duplicate"),
        (lambda c: replace(c, months=[month(m=date(2026, 1, 2))]), "first day"),
        (lambda c: replace(c, months=[month(extraction=-1.0)]), "≥ 0"),
        (lambda c: replace(c, months=[month(extraction=float("nan"))]), "≥ 0"),
        (lambda c: replace(c, months=[month(reinjection_completeness=1.5)]), "completeness"),
        (lambda c: replace(c, projects=[project(), project()]), "duplicate project"),
    ],
)
def test_contradictory_inputs_are_rejected(change, message):
    from scoring.engine import InputError

    with pytest.raises(InputError, match=message):
        score(change(company()))


def test_months_before_the_rulebook_applies_are_not_judged():
    old = month(m=date(2025, 10, 1), reinjection=0.0)  # even if a rollup flags it evaluated
    assert score(company([project(type=SHALLOW)], [old], monthly_reports=[])).findings == []


def test_an_inspection_finding_needs_a_real_severity():
    from scoring.model import InputError

    with pytest.raises(InputError, match="severity"):
        InspectionFinding("F1", "I1", "P1", date(2026, 1, 10), Severity.WARNING, "…")
