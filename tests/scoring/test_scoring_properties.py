"""Properties of score_company over generated companies (hypothesis)."""

import dataclasses
import json
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring.decision import Standing, decide
from scoring.model import (
    Appeal,
    AppealOutcome,
    ApplicationKind,
    CompanyInputs,
    DecisionKind,
    Grade,
    InspectionFinding,
    LayerMonth,
    MonthlyReport,
    PostEvaluation,
    ProjectFacts,
    ProjectMonth,
    ProjectType,
    QualityLimits,
    SeasonLevel,
    Severity,
    Source,
    Verdict,
    WellFacts,
    WellRole,
)
from tests.scoring.scoring_builders import CODE, NOW, RB, WATERMARK, month, project, score

# Generating a company costs ~20 ms; 60 examples per property keeps the suite quick.
settings.register_profile(
    "scoring", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("scoring")

MONTHS = [date(2025, 11, 1), date(2025, 12, 1), date(2026, 1, 1), date(2026, 2, 1),
          date(2026, 3, 1), date(2026, 4, 1)]  # fmt: skip
DAYS = st.dates(date(2024, 6, 1), date(2026, 4, 20))
AQUIFERS = ["K1", "K2"]
RANK = {Grade.A: 0, Grade.B: 1, Grade.C: 2, Grade.D: 3}

volume = st.one_of(st.sampled_from([0.0, 5_000.0, 9_500.0, 10_000.0]), st.floats(0, 50_000))
fraction = st.one_of(st.none(), st.sampled_from([0.0, 0.7, 0.95, 1.0]), st.floats(0, 1))
maybe_flag = st.sampled_from([None, False, False, False, True])
# Strategies are built once here: building them inside a draw re-validates them every time.
maybe_day = st.one_of(st.none(), DAYS)
roles = st.sampled_from(list(WellRole))
aquifer = st.sampled_from(AQUIFERS)
aquifer_sets = st.lists(aquifer, unique=True, min_size=1)
types = st.sampled_from(list(ProjectType))
cities = st.sampled_from(["运城市", "太原市", "临汾市"])
annual = st.sampled_from([None, 100_000.0, 1e6])
daily = st.sampled_from([None, 1_000.0])
tds = st.sampled_from([None, 1_500.0, 3_000.0, 3_400.0])
ph = st.sampled_from([None, 7.0, 6.0, 9.0])
month_sets = st.lists(st.sampled_from(MONTHS), unique=True, max_size=4)
slots = st.sampled_from([0, 1000, 2976])
flags = st.sampled_from(
    [(o, e, f) for o in (True, False) for e in (True, False) for f in (True, False)]
)
outages = st.sampled_from([0, 100, 2976])
max_daily = st.sampled_from([None, 500.0, 20_000.0])
days_over = st.sampled_from([0, 0, 1, 7])
ytd = st.sampled_from([None, 0.0, 50_000.0, 250_000.0])
severities = st.sampled_from([Severity.MINOR, Severity.MAJOR, Severity.CRITICAL])
verdicts = st.sampled_from(list(Verdict))
outcomes = st.sampled_from(list(AppealOutcome))
depths = st.sampled_from([40.0, 41.0, 43.0])
seasons = st.lists(st.sampled_from([2024, 2025]), unique=True)


@st.composite
def projects(draw, code: str, clean: bool) -> ProjectFacts:
    wells = tuple(
        WellFacts(
            f"{code}-W{i}",
            draw(roles),
            draw(aquifer),
            confined=False if clean else draw(maybe_flag),
            drilled_on=draw(maybe_day),
        )
        for i in range(draw(st.integers(0, 3)))
    )
    return ProjectFacts(
        code=code,
        name=f"项目{code}",
        type=draw(types),
        city=draw(cities),
        registered_on=draw(DAYS),
        in_spring_protection_zone=False if clean else draw(maybe_flag),
        in_drinking_water_source=False if clean else draw(maybe_flag),
        in_groundwater_restricted_zone=False if clean else draw(maybe_flag),
        permit_annual_m3=draw(annual),
        permit_daily_m3=draw(daily),
        wells=wells,
        quality_limits=(QualityLimits("K1", 3000.0, 6.5, 8.5),),
    )


@st.composite
def months_of(draw, code: str, final: bool | None) -> list[ProjectMonth]:
    rows = []
    for m in draw(month_sets):
        aquifers = draw(aquifer_sets)
        layers = tuple(
            LayerMonth(
                a,
                draw(volume),
                draw(volume),
                draw(tds),
                draw(ph),
            )
            for a in aquifers
        )
        expected = draw(slots)
        operating, evaluated, is_final = draw(flags)
        over = draw(days_over)
        monitoring = draw(fraction)
        rows.append(
            ProjectMonth(
                project_code=code,
                month=m,
                operating=operating,
                evaluated=evaluated,
                final=is_final if final is None else final,
                layers=layers,
                expected_slots=expected,
                outage_slots=draw(outages),
                extraction_completeness=draw(fraction),
                reinjection_completeness=draw(fraction),
                level_completeness=monitoring,
                temperature_completeness=monitoring,
                quality_completeness=draw(fraction),
                max_daily_extraction_m3=draw(max_daily) if over == 0 else 20_000.0,
                days_over_daily_limit=over,
                ytd_extraction_m3=draw(ytd),
            )
        )
    return rows


@st.composite
def companies(draw, clean: bool = False, final: bool | None = None) -> CompanyInputs:
    """`clean`: no reviewer record, no registry violation and every report on time, so only the
    monthly metrics can produce findings."""
    codes = [f"P{i}" for i in range(draw(st.integers(1, 2)))]
    ps = [draw(projects(c, clean)) for c in codes]
    ms = [row for c in codes for row in draw(months_of(c, final))]
    if clean:
        reports = [MonthlyReport(m.project_code, m.month, m.month) for m in ms]
        inspections: list[InspectionFinding] = []
        evaluations: list[PostEvaluation] = []
    else:
        reports = [
            MonthlyReport(m.project_code, m.month, draw(DAYS)) for m in ms if draw(st.booleans())
        ]
        inspections = [
            InspectionFinding(
                f"F{i}",
                f"I{i}",
                draw(st.sampled_from([None, *codes])),
                draw(DAYS),
                draw(severities),
                "检查发现",
                falsified_data=draw(st.booleans()),
                rectification_deadline=draw(maybe_day),
                rectified_on=draw(maybe_day),
            )
            for i in range(draw(st.integers(0, 3)))
        ]
        evaluations = [
            PostEvaluation(f"E{i}", draw(st.sampled_from(codes)), draw(DAYS), draw(verdicts))
            for i in range(draw(st.integers(0, 2)))
        ]  # fmt: skip
    keys = [
        "INSPECTION:F0",
        "FALSIFIED_DATA:F1",
        "REINJ_RATIO:P0:2026-01",
        "NO_METERING:P0:2026-01",
    ]
    appeals = [
        Appeal(f"A{i}", k, draw(outcomes))
        for i, k in enumerate(draw(st.lists(st.sampled_from(keys), unique=True, max_size=2)))
    ]
    levels = [SeasonLevel(c, s, draw(depths)) for c in codes for s in draw(seasons)]
    return CompanyInputs(
        credit_code=CODE,
        name="示例公司",
        watermark=WATERMARK,
        projects=ps,
        months=ms,
        season_levels=levels,
        monthly_reports=reports,
        inspection_findings=inspections,
        post_evaluations=evaluations,
        appeals=appeals,
    )


def _canonical(result) -> str:
    data = dataclasses.asdict(result)
    return json.dumps(data, sort_keys=True, default=str, ensure_ascii=False)


@given(companies())
def test_score_is_between_0_and_100(inputs):
    r = score(inputs)
    assert 0 <= r.score <= r.confirmed_score <= 100
    assert sum(r.deductions.values()) <= 40 * len(r.deductions)


@given(companies(), st.data())
def test_more_reinjection_never_lowers_a_score(inputs, data):
    if not inputs.months:
        return
    i = data.draw(st.integers(0, len(inputs.months) - 1))
    row = inputs.months[i]
    j = data.draw(st.integers(0, len(row.layers) - 1))
    extra = data.draw(st.floats(0, 50_000))
    layers = list(row.layers)
    layers[j] = dataclasses.replace(layers[j], reinjection_m3=layers[j].reinjection_m3 + extra)
    months = list(inputs.months)
    months[i] = dataclasses.replace(row, layers=tuple(layers))
    more = dataclasses.replace(inputs, months=months)
    assert score(more).score >= score(inputs).score


@given(companies(), st.data())
def test_an_extra_finding_never_raises_a_score(inputs, data):
    day = data.draw(DAYS)
    code = data.draw(st.sampled_from([p.code for p in inputs.projects]))
    extra = data.draw(st.sampled_from(["inspection", "evaluation", "report_missing", "zone"]))
    if extra == "inspection":
        severity = data.draw(severities)
        f = InspectionFinding("FX", "IX", code, day, severity, "新增问题")
        worse = dataclasses.replace(inputs, inspection_findings=[*inputs.inspection_findings, f])
    elif extra == "evaluation":
        e = PostEvaluation(
            "EX", code, day, data.draw(st.sampled_from([Verdict.CONDITIONAL, Verdict.FAIL]))
        )
        worse = dataclasses.replace(inputs, post_evaluations=[*inputs.post_evaluations, e])
    elif extra == "report_missing":
        worse = dataclasses.replace(inputs, monthly_reports=inputs.monthly_reports[1:])
    else:
        ps = [dataclasses.replace(p, in_spring_protection_zone=True) if p.code == code else p
              for p in inputs.projects]  # fmt: skip
        worse = dataclasses.replace(inputs, projects=ps)
    before, after = score(inputs), score(worse)
    assert after.score <= before.score
    assert RANK[after.grade] >= RANK[before.grade]


@given(companies(), st.data())
def test_any_qualifying_critical_gives_d_and_block(inputs, data):
    how = data.draw(st.sampled_from(["inspection", "falsified", "zone", "final_month"]))
    day = data.draw(st.dates(date(2024, 5, 1), date(2026, 4, 20)))
    if how in ("inspection", "falsified"):
        f = InspectionFinding(
            "FX", "IX", None, day, Severity.CRITICAL, "严重问题", how == "falsified"
        )
        inputs = dataclasses.replace(inputs, inspection_findings=[*inputs.inspection_findings, f])
    elif how == "zone":
        # v2026.2: the ban applies to projects built on or after applies_from (二(三)1).
        built = RB.applies_from
        first = inputs.projects[0]
        wells = tuple(dataclasses.replace(w, drilled_on=built) for w in first.wells)
        ps = [
            dataclasses.replace(
                first, in_spring_protection_zone=True, registered_on=built, wells=wells
            ),
            *inputs.projects[1:],
        ]
        inputs = dataclasses.replace(inputs, projects=ps)
    else:
        silent = month("PX", data.draw(st.sampled_from(MONTHS[:5])), extraction_completeness=0.0)
        inputs = dataclasses.replace(
            inputs, projects=[*inputs.projects, project("PX")], months=[*inputs.months, silent]
        )
    result = score(inputs)
    assert result.grade is Grade.D and result.critical_keys
    standing = Standing.from_result(result, RB)
    for kind in ApplicationKind:
        assert decide(standing, kind, RB, NOW).decision is DecisionKind.BLOCK


@given(companies(), st.randoms(use_true_random=False))
def test_results_do_not_depend_on_input_order(inputs, rnd):
    def shuffled(seq):
        seq = list(seq)
        rnd.shuffle(seq)
        return seq

    months = [dataclasses.replace(m, layers=tuple(shuffled(m.layers))) for m in inputs.months]
    permuted = dataclasses.replace(
        inputs,
        projects=shuffled(inputs.projects),
        months=shuffled(months),
        season_levels=shuffled(inputs.season_levels),
        monthly_reports=shuffled(inputs.monthly_reports),
        inspection_findings=shuffled(inputs.inspection_findings),
        post_evaluations=shuffled(inputs.post_evaluations),
        appeals=shuffled(inputs.appeals),
    )
    assert score(permuted) == score(inputs)


@given(companies())
def test_same_inputs_give_identical_outputs(inputs):
    a, b = score(inputs), score(inputs)
    assert a == b
    assert _canonical(a) == _canonical(b)
    assert [f.fingerprint() for f in a.findings] == [f.fingerprint() for f in b.findings]
    for f in a.findings:
        json.dumps(f.to_json(), ensure_ascii=False)  # evidence is JSON


@given(companies(clean=True, final=False))
def test_provisional_months_never_make_d_or_open_a_listing(inputs):
    result = score(inputs)
    assert result.grade is not Grade.D
    assert result.listing_transitions == []
    assert all(not f.final for f in result.findings if f.deduction)


@given(companies(clean=True))
def test_the_platforms_silence_is_never_penalised(inputs):
    silent = [
        dataclasses.replace(
            m,
            expected_slots=0,
            outage_slots=2976,
            extraction_completeness=None,
            reinjection_completeness=None,
            level_completeness=None,
            temperature_completeness=None,
            quality_completeness=None,
        )
        for m in inputs.months
    ]
    result = score(dataclasses.replace(inputs, months=silent))
    assert [
        f for f in result.findings if f.source is Source.METRICS and f.rule_id != "WATER_LEVEL"
    ] == []


@given(
    st.floats(1, 1e7), st.sampled_from([ProjectType.SHALLOW_WATER_SOURCE, ProjectType.MEDIUM_DEEP])
)
def test_reinjection_exactly_at_the_threshold_is_compliant(extraction, type_):
    threshold = RB.rules.REINJ_RATIO.threshold[type_]
    row = month(extraction=extraction, reinjection=extraction * threshold, ytd_extraction_m3=0.0)
    inputs = CompanyInputs(CODE, "x", [project(type=type_)], [row], WATERMARK,
                           monthly_reports=[MonthlyReport("P1", row.month, row.month)])  # fmt: skip
    assert score(inputs).findings == []
