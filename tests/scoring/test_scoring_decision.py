"""decide(): the decision table (docs/rulebook.md) for every application kind."""

import json
from datetime import date, timedelta

import pytest

from scoring.decision import ListingStanding, Reason, Standing, decide
from scoring.model import ApplicationKind, DecisionKind, Grade, InspectionFinding, Severity
from tests.scoring.scoring_builders import NOW, RB, company, month, score

KINDS = list(ApplicationKind)


def _standing(grade: Grade, score_: float = 80.0, **kw) -> Standing:
    return Standing(scored_at=NOW, grade=grade, score=score_, rulebook_version="2026.1", **kw)


@pytest.mark.parametrize("kind", KINDS)
def test_no_credit_file_is_allowed(kind):
    d = decide(None, kind, RB, NOW)
    assert (d.decision, d.grade, d.score, d.as_of) == (DecisionKind.ALLOW, None, None, NOW)
    assert [r.code for r in d.reasons] == ["NO_CREDIT_FILE"]
    assert d.rulebook_version == "2026.2" and d.restricted_until is None


@pytest.mark.parametrize("kind", KINDS)
def test_a_file_never_scored_is_allowed(kind):
    d = decide(Standing(), kind, RB, NOW)
    assert d.decision is DecisionKind.ALLOW
    assert [r.code for r in d.reasons] == ["NOT_YET_SCORED"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("grade", "expected"),
    [(Grade.A, DecisionKind.ALLOW), (Grade.B, DecisionKind.ALLOW), (Grade.C, DecisionKind.RESTRICT),
     (Grade.D, DecisionKind.BLOCK)],
)  # fmt: skip
def test_decision_table(kind, grade, expected):
    d = decide(_standing(grade), kind, RB, NOW + timedelta(hours=1))
    assert (d.decision, d.grade, d.score, d.as_of) == (expected, grade, 80.0, NOW)
    assert d.reasons[0].code == "GRADE"
    if expected is DecisionKind.RESTRICT:
        assert len(d.conditions) == 3
        assert "充分论证回灌方案" in d.conditions[0]
    else:
        assert d.conditions == []


def test_restrict_reasons_name_project_month_numbers_rule_and_clause():
    inputs = company(months=[month(reinjection=8_000), ], inspection_findings=[
        InspectionFinding("F1", "INS-3", "P1", date(2026, 1, 10), Severity.MAJOR, "回灌井堵塞")
    ])  # fmt: skip
    result = score(inputs)
    assert result.grade is Grade.C
    d = decide(Standing.from_result(result, RB), ApplicationKind.WATER_PERMIT, RB, NOW)
    assert d.decision is DecisionKind.RESTRICT
    [grade, major_a, major_b] = d.reasons
    assert grade.code == "GRADE" and "C" in grade.message
    ratio = next(r for r in (major_a, major_b) if r.code == "REINJ_RATIO")
    assert (ratio.rule_id, ratio.policy_clause) == ("REINJ_RATIO", "二(二)5")
    assert "P1" in ratio.message and "2026-01" in ratio.message and "80.0%" in ratio.message
    assert ratio.evidence["window"] == {"start": "2026-01-01", "end": "2026-01-31"}
    assert ratio.evidence["ratio"] == 0.8 and ratio.evidence["key"] == "REINJ_RATIO:P1:2026-01"
    inspection = next(r for r in d.reasons if r.code == "INSPECTION")
    assert inspection.evidence["inspection_id"] == "INS-3"
    json.dumps([r.to_json() for r in d.reasons], ensure_ascii=False)


def test_listed_company_is_blocked_until_the_listings_minimum_end():
    inputs = company(months=[month(extraction_completeness=0.0)])
    result = score(inputs)
    standing = Standing.from_result(result, RB, listing_id="L7")
    for kind in KINDS:
        d = decide(standing, kind, RB, NOW + timedelta(hours=1))
        assert d.decision is DecisionKind.BLOCK
        assert d.restricted_until == result.listing.min_end
        assert d.listing_id == "L7"
        assert [r.code for r in d.reasons] == ["LISTED", "NO_METERING", "GRADE"]
        assert d.reasons[1].policy_clause == "二(二)6"


def test_a_listing_blocks_even_once_the_grade_has_recovered():
    listing = ListingStanding(
        "L1", True, NOW, NOW + timedelta(days=300), NOW + timedelta(days=900), ()
    )
    d = decide(_standing(Grade.A, 100.0, listing=listing), ApplicationKind.NEW_WELL, RB, NOW)
    assert d.decision is DecisionKind.BLOCK and d.restricted_until == listing.min_end


def test_a_listing_past_its_maximum_end_no_longer_blocks():
    listing = ListingStanding("L1", True, NOW, NOW + timedelta(days=1), NOW + timedelta(days=2), ())
    d = decide(
        _standing(Grade.A, 100.0, listing=listing),
        ApplicationKind.NEW_WELL,
        RB,
        NOW + timedelta(days=2),
    )
    assert d.decision is DecisionKind.ALLOW and d.restricted_until is None


def test_a_snapshot_older_than_48_hours_is_answered_as_stale():
    standing = _standing(Grade.B)
    fresh = decide(standing, ApplicationKind.MINING_RIGHT, RB, NOW + timedelta(hours=48))
    assert "STALE_SCORE" not in [r.code for r in fresh.reasons] and not fresh.stale
    stale = decide(standing, ApplicationKind.MINING_RIGHT, RB, NOW + timedelta(hours=48, seconds=1))
    assert stale.decision is DecisionKind.ALLOW and stale.stale
    assert stale.reasons[-1].code == "STALE_SCORE" and stale.as_of == NOW


def test_reason_json_shape():
    r = Reason("LISTED", "m", None, None, {"a": 1})
    assert r.to_json() == {"code": "LISTED", "message": "m", "ruleId": None, "policyClause": None,
                           "evidence": {"a": 1}}  # fmt: skip


def test_deciding_formats_nothing_the_snapshot_already_holds():
    """Why a 1,000-code batch is cheap (timed in bench/scoring.py): the reasons of a fresh
    standing are the ones built when its snapshot was taken, not formatted again per request."""
    result = score(company(months=[month(reinjection=8_000)]))
    standing = Standing.from_result(result, RB)
    assert standing.reasons  # a finding to explain
    for _ in range(3):
        d = decide(standing, ApplicationKind.PROJECT_FILING, RB, NOW)
        assert d.reasons[0] is standing.grade_reason
        assert len(d.reasons) == 1 + len(standing.reasons)
        assert all(a is b for a, b in zip(d.reasons[1:], standing.reasons, strict=True))


def test_a_standing_survives_storage_as_json():
    result = score(
        company(months=[month(extraction_completeness=0.0), month("P1", date(2026, 2, 1))])
    )
    standing = Standing.from_result(result, RB, listing_id="L9")
    stored = json.loads(json.dumps(standing.to_json(), ensure_ascii=False))
    again = Standing.from_json(stored)
    assert again == standing
    later = NOW + timedelta(days=3)
    assert decide(again, ApplicationKind.NEW_WELL, RB, later) == decide(
        standing, ApplicationKind.NEW_WELL, RB, later
    )


def test_a_standing_built_without_precomputed_reasons_is_answered_the_same():
    result = score(company(months=[month(extraction_completeness=0.0)]))
    full = Standing.from_result(result, RB, listing_id="L9")
    bare = Standing(
        full.scored_at, full.grade, full.score, full.rulebook_version, full.reasons,
        ListingStanding(*[getattr(full.listing, f) for f in ("listing_id", "critical", "started_at",
                        "min_end", "max_end", "reasons")]),
    )  # fmt: skip
    assert decide(bare, ApplicationKind.NEW_WELL, RB, NOW) == decide(
        full, ApplicationKind.NEW_WELL, RB, NOW
    )


def test_what_was_not_evaluated_is_one_reason_with_compact_evidence():
    """v2026.2: at most one NOT_EVALUATED reason, per rule and cause how many projects and
    months of the window; none when everything was evaluated (or under v2026.1)."""
    from scoring.decision import not_evaluated_summary
    from scoring.model import NotEvaluated, NotEvaluatedWhy
    from scoring.rulebook import load_rulebook

    jan, feb = (date(2026, 1, 1), date(2026, 1, 31)), (date(2026, 2, 1), date(2026, 2, 28))
    items = [
        NotEvaluated("P1", "EXTRACTION_CAP", "no permit", window=jan),
        NotEvaluated("P1", "EXTRACTION_CAP", "no permit", window=feb),
        NotEvaluated("P2", "EXTRACTION_CAP", "no permit", window=jan),
        NotEvaluated("P2", "ZONE_BAN", "zone flag unknown"),
        NotEvaluated("P3", "WATER_LEVEL", "no previous season", NotEvaluatedWhy.NO_PREVIOUS_SEASON,
                     (date(2025, 11, 15), date(2026, 3, 15))),
        NotEvaluated("P4", "EXTRACTION_CAP", "no permit", window=(date(2023, 1, 1),
                                                                  date(2023, 1, 31))),
    ]  # fmt: skip
    summary = not_evaluated_summary(items, window_start=date(2024, 3, 1), today=date(2026, 2, 10))
    assert summary == {"rules": [
        {"ruleId": "EXTRACTION_CAP", "why": "REGISTRY_FACT_MISSING", "projects": 2, "months": 2},
        {"ruleId": "WATER_LEVEL", "why": "NO_PREVIOUS_SEASON", "projects": 1, "months": 4},
        {"ruleId": "ZONE_BAN", "why": "REGISTRY_FACT_MISSING", "projects": 1, "months": 0},
    ]}  # fmt: skip

    def codes(standing: Standing) -> list[str]:
        return [r.code for r in decide(standing, KINDS[0], RB, NOW).reasons]

    def v2(**kw) -> Standing:
        return Standing(scored_at=NOW, grade=Grade.A, score=95.0, rulebook_version="2026.2", **kw)

    [reason] = [
        r for r in decide(v2(not_evaluated=summary), KINDS[0], RB, NOW).reasons
        if r.code == "NOT_EVALUATED"
    ]  # fmt: skip
    assert reason.evidence == summary
    assert "EXTRACTION_CAP（登记信息缺失：2 个项目、2 个月）" in reason.message
    assert "NOT_EVALUATED" not in codes(v2(not_evaluated={"rules": []}))
    # a score made under v2026.1 is answered with v2026.1, which has no such reason
    assert load_rulebook(version="2026.1").reasons.NOT_EVALUATED is None
    assert "NOT_EVALUATED" not in codes(_standing(Grade.A, 95.0, not_evaluated=summary))


def test_a_score_is_answered_with_the_rulebook_version_it_was_made_under():
    from dataclasses import replace

    result = score(company(inspection_findings=[InspectionFinding(
        "F1", "I1", "P1", date(2026, 1, 10), Severity.CRITICAL, "回灌井未运行")]))  # fmt: skip
    standing = Standing.from_result(result, RB)
    for version, listed_text in (("2026.2", "24 时"), ("2026.1", "起可经信用修复移出")):
        bare = replace(standing, rulebook_version=version, grade_reason=None,
                       listing=replace(standing.listing, reason=None))  # fmt: skip
        d = decide(bare, KINDS[0], RB, NOW)
        assert d.rulebook_version == version
        [listed] = [r for r in d.reasons if r.code == "LISTED"]
        assert listed_text in listed.message
