"""Score, grade and listings over time: provisional months, outages, lookback, appeals, repairs."""

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest

from scoring.model import (
    Appeal,
    AppealOutcome,
    CreditRepair,
    FindingStatus,
    Grade,
    InspectionFinding,
    LayerMonth,
    ListedFinding,
    ListingRecord,
    MonthlyReport,
    PostEvaluation,
    ProjectType,
    Severity,
    Source,
    TransitionKind,
    Verdict,
)
from scoring.rulebook import load_rulebook, parse_rulebook
from tests.scoring.scoring_builders import (
    JAN,
    NOW,
    RB,
    company,
    local,
    month,
    of_rule,
    project,
    score,
)

SHALLOW = ProjectType.SHALLOW_WATER_SOURCE
V1 = load_rulebook(version="2026.1")  # what v2026.2 changed, v2026.1 still does as before


def _zoned(**kw):
    """A project in a spring protection zone, built (its wells drilled) in 2026: banned."""
    wells = tuple(dataclasses.replace(w, drilled_on=date(2026, 1, 5)) for w in project().wells)
    return project(in_spring_protection_zone=True, wells=wells, **kw)


def _critical_inspection(day=date(2026, 1, 10), fid="F1") -> InspectionFinding:
    return InspectionFinding(fid, "INS-1", "P1", day, Severity.CRITICAL, "擅自停用回灌井")


# --------------------------------------------------------------------------- grade and score


def test_score_89_99_is_b_and_90_is_a():
    """A rulebook whose minor ratio deduction is 10.01 / 10 puts the score on the band edge."""
    raw = RB.model_dump(mode="json")
    for deduction, grade in ((10.01, Grade.B), (10, Grade.A)):
        raw["rules"]["REINJ_RATIO"]["minor"] = deduction
        rb = parse_rulebook(raw)
        result = score(company([project()], [month(reinjection=9_700)]), rulebook=rb)
        assert (result.score, result.grade) == (round(100 - deduction, 2), grade)


def test_a_final_critical_gives_d_and_opens_a_critical_listing():
    result = score(company(months=[month(extraction_completeness=0.0)]))
    assert result.grade is Grade.D and result.score == 60.0
    assert result.critical_keys == ("NO_METERING:P1:2026-01",)
    [t] = result.listing_transitions
    assert (t.kind, t.critical) == (TransitionKind.OPEN, True)
    assert [lf.key for lf in t.findings] == ["NO_METERING:P1:2026-01"]


# ------------------------------------------------------------------------ provisional months


def test_a_provisional_critical_lowers_the_score_but_neither_makes_d_nor_lists():
    result = score(company(months=[month(extraction_completeness=0.0, final=False)]))
    assert (result.score, result.grade) == (60.0, Grade.C)
    assert result.confirmed_score == 100.0
    assert result.critical_keys == () and result.listing_transitions == []


def test_provisional_findings_alone_never_push_the_grade_into_d():
    months = [
        month(m=JAN, extraction_completeness=0.0, final=False),  # −40 NO_METERING
        month(m=date(2026, 2, 1), reinjection_completeness=0.5, final=False),  # −10 METERING_GAP
    ]
    result = score(company(months=months), now=local(2026, 2, 20))
    assert result.score == 50.0 and result.confirmed_score == 100.0
    assert result.grade is Grade.C and result.listing_transitions == []


def test_final_findings_below_the_d_band_do_list():
    months = [
        month(m=JAN, extraction_completeness=0.5),
        month(m=date(2026, 2, 1), reinjection=8_000),
    ]
    inspections = [
        InspectionFinding("F1", "I1", "P1", date(2026, 2, 1), Severity.MAJOR, "…"),
        InspectionFinding("F2", "I1", "P1", date(2026, 2, 1), Severity.MAJOR, "…"),
    ]
    result = score(company(months=months, inspection_findings=inspections))
    assert result.confirmed_score == 100 - 10 - 15 - 30
    assert result.grade is Grade.D
    [t] = result.listing_transitions
    assert (t.kind, t.critical) == (TransitionKind.OPEN, False)
    assert len(t.findings) == 4


# ---------------------------------------------------------------------------------- outages


def test_an_all_outage_month_yields_no_findings():
    silent = month(
        extraction=0.0,
        reinjection=0.0,
        tds=None,
        ph=None,
        expected_slots=0,
        outage_slots=2976,
        extraction_completeness=None,
        reinjection_completeness=None,
        level_completeness=None,
        temperature_completeness=None,
        quality_completeness=None,
    )
    assert score(company(months=[silent])).findings == []


def test_an_all_outage_month_is_not_judged_on_the_volumes_that_trickled_in():
    silent = month(
        extraction=9_000.0,
        reinjection=0.0,  # the reinjection totalizer's catch-up reading has not arrived yet
        expected_slots=0,
        outage_slots=2976,
        extraction_completeness=None,
        reinjection_completeness=None,
    )
    assert score(company([project(type=SHALLOW)], [silent])).findings == []


def test_completeness_is_measured_outside_outage_slots():
    # 1,000 outage slots; the project sent 1,900 of the 1,976 others = 96.2%: no gap
    m = month(expected_slots=1976, outage_slots=1000, extraction_completeness=1900 / 1976)
    assert score(company(months=[m])).findings == []


# ----------------------------------------------------------------------------- boundaries


def test_ratio_exactly_on_the_threshold_is_compliant():
    def ratio_findings(type_, reinjection, extraction=10_000.0):
        months = [month(extraction=extraction, reinjection=reinjection)]
        return {
            f.rule_id: f.severity for f in score(company([project(type=type_)], months)).findings
        }

    assert ratio_findings(SHALLOW, 9_500) == {}
    assert ratio_findings(SHALLOW, 9_499) == {"REINJ_RATIO": Severity.MINOR}
    assert ratio_findings(SHALLOW, 8_500) == {"REINJ_RATIO": Severity.MINOR}  # exactly 10 pp below
    assert ratio_findings(SHALLOW, 8_499) == {"REINJ_RATIO": Severity.MAJOR}
    assert ratio_findings(ProjectType.MEDIUM_DEEP, 9_800) == {}
    assert ratio_findings(SHALLOW, 5_000) == {"REINJ_RATIO": Severity.MAJOR}  # 0.5 is not < 0.5
    assert ratio_findings(SHALLOW, 4_999)["NO_REINJECTION"] is Severity.CRITICAL
    # float noise: 0.95 × an awkward volume is still exactly on the threshold
    assert ratio_findings(SHALLOW, 0.95 * 12_345.67, 12_345.67) == {}


@pytest.mark.parametrize(
    ("completeness", "severity"),
    [(0.95, None), (0.9499, Severity.MINOR), (0.70, Severity.MINOR), (0.6999, Severity.MAJOR)],
)
def test_metering_gap_boundaries(completeness, severity):
    found = of_rule(
        score(company(months=[month(reinjection_completeness=completeness)])), "METERING_GAP"
    )
    assert [f.severity for f in found] == ([severity] if severity else [])


def test_monthly_report_is_due_to_the_day_local_time():
    inputs = company(monthly_reports=[])
    assert of_rule(score(inputs, now=local(2026, 2, 15, 23, 59, 59)), "MONTHLY_REPORT") == []
    assert of_rule(score(inputs, now=local(2026, 2, 16)), "MONTHLY_REPORT")
    on_time = company(monthly_reports=[MonthlyReport("P1", JAN, date(2026, 2, 15))])
    late = company(monthly_reports=[MonthlyReport("P1", JAN, date(2026, 2, 16))])
    assert of_rule(score(on_time), "MONTHLY_REPORT") == []
    [f] = of_rule(score(late), "MONTHLY_REPORT")
    assert f.evidence["submitted_on"] == "2026-02-16"


def test_monthly_report_only_for_heating_months_of_operating_projects():
    months = [
        month(m=date(2026, 4, 1), evaluated=False),
        month(m=date(2026, 2, 1), operating=False),
    ]
    closed = project("P2", type=ProjectType.CLOSED_LOOP)
    months.append(month("P2", date(2026, 2, 1), evaluated=False))
    result = score(company([project(), closed], months, monthly_reports=[]))
    assert [f.key for f in result.findings] == ["MONTHLY_REPORT:P2:2026-02"]


def test_findings_older_than_the_24_month_lookback_stop_counting():
    now = local(2027, 11, 20)  # lookback starts 2025-12-01
    inputs = company(
        inspection_findings=[
            InspectionFinding("OLD", "I1", "P1", date(2025, 11, 30), Severity.MAJOR, "…"),
            InspectionFinding("NEW", "I2", "P1", date(2025, 12, 1), Severity.MINOR, "…"),
        ]
    )
    result = score(inputs, now=now)
    assert {f.key: f.counts for f in result.findings} == {
        "INSPECTION:NEW": True,
        "INSPECTION:OLD": False,
    }
    assert result.score == 95.0
    assert result.window_start == date(2025, 12, 1) and result.window_end == date(2027, 11, 20)


def test_registry_facts_count_as_long_as_they_hold():
    result = score(company([_zoned()]), now=local(2030, 1, 1))
    [f] = result.findings
    assert f.source is Source.REGISTRY and f.counts and result.grade is Grade.D


# ----------------------------------------------------------------------------- appeals


def test_an_overturned_appeal_voids_its_finding():
    base = company(months=[month(reinjection=9_000)])
    key = "REINJ_RATIO:P1:2026-01"
    overturned = score(
        company(months=base.months, appeals=[Appeal("A1", key, AppealOutcome.OVERTURNED)])
    )
    [f] = overturned.findings
    assert (f.status, f.counts, overturned.score) == (FindingStatus.OVERTURNED, False, 100.0)
    pending = score(company(months=base.months, appeals=[Appeal("A1", key, AppealOutcome.PENDING)]))
    [f] = pending.findings
    assert (f.status, f.counts, pending.score) == (FindingStatus.UNDER_APPEAL, True, 95.0)
    upheld = score(company(months=base.months, appeals=[Appeal("A1", key, AppealOutcome.UPHELD)]))
    assert upheld.findings[0].status is FindingStatus.ACTIVE


# ----------------------------------------------------------------------------- listings


_BY_SCORE = company(
    inspection_findings=[
        InspectionFinding(f"F{i}", "I1", "P1", date(2026, 1, 10), Severity.MAJOR, "…")
        for i in range(2)
    ],
    post_evaluations=[PostEvaluation("E1", "P1", date(2026, 1, 20), Verdict.FAIL, "采灌失衡")],
)


def test_listing_periods_run_to_the_day_in_shanghai():
    # 31 Jan 20:00 UTC is 1 Feb 04:00 in Shanghai: the listing starts on 1 Feb local time
    now = datetime(2026, 1, 31, 20, 0, tzinfo=UTC)
    critical = score(
        company(inspection_findings=[_critical_inspection()], monthly_reports=[]), now=now,
        rulebook=V1,
    )  # fmt: skip
    [t] = critical.listing_transitions
    assert t.min_end == local(2027, 2, 1) and t.max_end == local(2029, 2, 1)
    [t] = score(_BY_SCORE, now=now, rulebook=V1).listing_transitions
    assert (t.critical, t.min_end) == (False, local(2026, 8, 1))
    assert t.min_end == datetime(2026, 7, 31, 16, 0, tzinfo=UTC)


def test_v2026_2_listing_periods_end_at_24_00_local_and_by_score_after_a_year():
    """National credit-repair rules: ordinary 失信 3 months–1 year, serious 1–3 years."""
    now = datetime(2026, 1, 31, 20, 0, tzinfo=UTC)  # 1 Feb 04:00 in Shanghai
    critical = score(
        company(inspection_findings=[_critical_inspection()], monthly_reports=[]), now=now
    )
    [t] = critical.listing_transitions
    # 12 and 36 months after 1 Feb 2026, at 24:00 local time of that day
    assert t.min_end == local(2027, 2, 2) and t.max_end == local(2029, 2, 2)
    assert "最短期限至 2027-02-01 24 时" in t.message and "最迟于 2029-02-01 24 时" in t.message
    [t] = score(_BY_SCORE, now=now).listing_transitions
    assert (t.critical, t.min_end, t.max_end) == (False, local(2026, 8, 2), local(2027, 2, 2))
    assert t.min_end == datetime(2026, 8, 1, 16, 0, tzinfo=UTC)


def _listed(keys=("INSPECTION:F1",), critical=True, **kw) -> ListingRecord:
    findings = [ListedFinding(k, k.split(":")[0], Source.REVIEWER, date(2026, 1, 10)) for k in keys]
    values = {
        "id": "L1",
        "started_at": local(2026, 2, 1, 4),
        "min_end": local(2027, 2, 1),
        "max_end": local(2029, 2, 1),
        "critical": critical,
        "findings": findings,
    }
    return ListingRecord(**(values | kw))


def test_an_approved_repair_lifts_the_listing_at_its_minimum_end_to_the_second():
    listing = _listed()
    early_repair = CreditRepair("R1", "L1", approved_at=local(2027, 1, 20))
    inputs = company(
        inspection_findings=[_critical_inspection()], listings=[listing], repairs=[early_repair]
    )

    before = score(inputs, now=local(2027, 1, 31, 23, 59, 59))
    assert before.listing_transitions == [] and before.listing.listing_id == "L1"
    assert before.grade is Grade.D

    after = score(inputs, now=local(2027, 2, 1))
    [t] = after.listing_transitions
    assert (t.kind, t.at, t.repair_id) == (TransitionKind.LIFT, local(2027, 2, 1), "R1")
    assert after.findings[0].status is FindingStatus.REPAIRED
    assert (after.score, after.grade, after.listing) == (100.0, Grade.A, None)


def test_a_repair_after_the_minimum_lifts_when_approved():
    repair = CreditRepair("R1", "L1", approved_at=local(2027, 3, 3, 9))
    inputs = company(
        inspection_findings=[_critical_inspection()], listings=[_listed()], repairs=[repair]
    )
    [t] = score(inputs, now=local(2027, 4, 1)).listing_transitions
    assert (t.kind, t.at) == (TransitionKind.LIFT, local(2027, 3, 3, 9))


def test_a_repair_leaves_findings_not_behind_the_listing_counting():
    repair = CreditRepair("R1", "L1", approved_at=local(2027, 3, 3))
    minor = InspectionFinding("F2", "I2", "P1", date(2027, 3, 1), Severity.MAJOR, "…")
    inputs = company(
        inspection_findings=[_critical_inspection(), minor], listings=[_listed()], repairs=[repair]
    )
    result = score(inputs, now=local(2027, 4, 1))
    assert (result.score, result.grade) == (85.0, Grade.B)


@pytest.mark.parametrize(
    ("rulebook", "new_max_end"),
    [(V1, local(2032, 2, 1)), (RB, local(2032, 2, 2))],  # v2026.2: 24:00 of 1 Feb 2032
    ids=["v2026.1", "v2026.2"],
)
def test_a_listing_expires_after_36_months_and_reopens_if_still_d(rulebook, new_max_end):
    inputs = company([_zoned()], listings=[_listed(keys=("ZONE_BAN:P1:SPRING_PROTECTION",))])
    result = score(inputs, now=local(2029, 2, 1), rulebook=rulebook)
    kinds = [(t.kind, t.at) for t in result.listing_transitions]
    assert kinds == [
        (TransitionKind.EXPIRE, local(2029, 2, 1)),
        (TransitionKind.OPEN, local(2029, 2, 1)),
    ]
    assert result.listing_transitions[1].max_end == new_max_end  # new periods, from that day
    assert score(inputs, now=local(2029, 1, 31, 23), rulebook=rulebook).listing_transitions == []


def test_a_score_based_listing_ends_after_12_months_under_v2026_2():
    listing = _listed(keys=("INSPECTION:F1",), critical=False, min_end=local(2026, 8, 2),
                      max_end=local(2027, 2, 2))  # fmt: skip
    result = score(company(listings=[listing]), now=local(2027, 2, 2))
    [t] = result.listing_transitions
    assert (t.kind, t.at) == (TransitionKind.EXPIRE, local(2027, 2, 2))
    assert "2027-02-01 24 时" in t.message


def test_a_listing_resting_only_on_voided_findings_is_withdrawn():
    # the listing rested on January's ratio; corrected data no longer shows it
    listed = ListingRecord(
        "L1", local(2026, 2, 10), local(2026, 8, 10), local(2029, 2, 10), False,
        [ListedFinding("REINJ_RATIO:P1:2026-01", "REINJ_RATIO", Source.METRICS, JAN)],
    )  # fmt: skip
    result = score(company(listings=[listed], metrics_from=date(2025, 11, 1)))
    assert [t.kind for t in result.listing_transitions] == [TransitionKind.WITHDRAW]
    assert result.listing is None
    # a finding from before the months given cannot be re-derived: no withdrawal
    result = score(company(listings=[listed], metrics_from=date(2026, 2, 1)))
    assert result.listing_transitions == [] and result.listing.listing_id == "L1"


def test_a_listing_on_an_overturned_finding_is_withdrawn():
    appeal = Appeal("A1", "INSPECTION:F1", AppealOutcome.OVERTURNED)
    inputs = company(
        inspection_findings=[_critical_inspection()], listings=[_listed()], appeals=[appeal]
    )
    result = score(inputs)
    assert [t.kind for t in result.listing_transitions] == [TransitionKind.WITHDRAW]
    assert result.grade is Grade.A


@pytest.mark.parametrize(
    ("rulebook", "ends"),
    [
        (V1, (local(2027, 4, 20), local(2029, 4, 20))),
        (RB, (local(2027, 4, 21), local(2029, 4, 21))),
    ],
    ids=["v2026.1", "v2026.2"],
)
def test_a_new_critical_during_a_listing_extends_it(rulebook, ends):
    listing = _listed(keys=("INSPECTION:F1",), critical=False, min_end=local(2026, 8, 1))
    inputs = company(
        inspection_findings=[_critical_inspection(), _critical_inspection(date(2026, 4, 2), "F2")],
        listings=[listing],
    )
    result = score(inputs, now=NOW, rulebook=rulebook)
    [t] = result.listing_transitions
    assert (t.kind, t.listing_id, t.critical) == (TransitionKind.EXTEND, "L1", True)
    assert [lf.key for lf in t.findings] == ["INSPECTION:F2"]
    assert (t.min_end, t.max_end) == ends
    assert result.listing.finding_keys == ("INSPECTION:F1", "INSPECTION:F2")


def test_an_active_listing_stays_while_nothing_changes():
    inputs = company(inspection_findings=[_critical_inspection()], listings=[_listed()])
    result = score(inputs)
    assert result.listing_transitions == [] and result.key_supervision
    # … and even once the company's grade has recovered
    later = score(company(listings=[_listed(keys=("INSPECTION:F1",))], inspection_findings=[
        _critical_inspection()]), now=local(2026, 6, 1))  # fmt: skip
    assert later.listing.listing_id == "L1"


def test_grade_c_companies_are_under_key_supervision():
    late = InspectionFinding(
        "F1", "I1", "P1", date(2026, 1, 10), Severity.MAJOR, "…", rectification_deadline=JAN
    )
    result = score(company(inspection_findings=[late]))
    assert (result.grade, result.key_supervision) == (Grade.C, True)


def test_repair_of_an_unknown_listing_is_an_input_error():
    from scoring.engine import InputError

    with pytest.raises(InputError, match="unknown listing"):
        score(company(repairs=[CreditRepair("R1", "L404", NOW - timedelta(days=1))]))


def test_multi_layer_months_use_exact_sums():
    layers = tuple(LayerMonth(f"K{i}", 0.1, 0.1) for i in range(10))
    assert score(company(months=[month(layers=layers)])).findings == []
