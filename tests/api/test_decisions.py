"""Every row of the decision table (docs/rulebook.md), for every application kind, over HTTP."""

from datetime import UTC, datetime, timedelta

import pytest

from registry.vocabulary import Role
from scoring.model import ApplicationKind
from tests.api.support import NOW, FindingSpec, code, file_company

KINDS = [k.value for k in ApplicationKind]

FIELDS = """
    creditCode company { id creditCode name } decision grade score
    reasons { code message ruleId policyClause evidence }
    conditions restrictedUntil asOf rulebookVersion
"""
BATCH = f"query($r: [EligibilityRequest!]!) {{ eligibilities(requests: $r) {{ {FIELDS} }} }}"
SINGLE = f"""query($c: String!, $k: ApplicationKind!) {{
    eligibility(creditCode: $c, kind: $k) {{ {FIELDS} }} }}"""

CRITICAL = FindingSpec("NO_REINJECTION", "CRITICAL", 40, "二(二)6")
MAJOR = FindingSpec("REINJ_RATIO", "MAJOR", 15)

# name → (file_company arguments or None for no file, expected decision)
CASES = {
    "no_file": (None, "ALLOW"),
    "unscored": ({}, "ALLOW"),
    "grade_a": ({"grade": "A", "score": 96}, "ALLOW"),
    "grade_b": ({"grade": "B", "score": 82, "findings": [MAJOR]}, "ALLOW"),
    "grade_c": ({"grade": "C", "score": 70, "findings": [MAJOR, MAJOR]}, "RESTRICT"),
    "grade_d_listed": (
        {"grade": "D", "score": 40, "findings": [CRITICAL], "listing": "active"},
        "BLOCK",
    ),
    "grade_d_unlisted": ({"grade": "D", "score": 50, "findings": [MAJOR]}, "BLOCK"),
    "listed_grade_b": (
        {"grade": "B", "score": 85, "findings": [CRITICAL], "listing": "active"},
        "BLOCK",
    ),
    "listed_unscored": ({"findings": [CRITICAL], "listing": "active"}, "BLOCK"),
    "listing_ended": ({"grade": "A", "score": 92, "listing": "ended"}, "ALLOW"),
    "listing_expired": ({"grade": "A", "score": 92, "listing": "expired"}, "ALLOW"),
    "stale_a": ({"grade": "A", "score": 99, "scored_at": NOW - timedelta(hours=60)}, "ALLOW"),
    "stale_c": ({"grade": "C", "score": 65, "scored_at": NOW - timedelta(hours=49)}, "RESTRICT"),
    "latest_snapshot_wins": ({"grade": "A", "score": 91, "older_snapshot": "D"}, "ALLOW"),
    "voided_finding": (
        {"grade": "C", "score": 70, "findings": [MAJOR, FindingSpec("QUALITY", voided=True)]},
        "RESTRICT",
    ),
    "appealed_finding": (
        {
            "grade": "C",
            "score": 72,
            "findings": [FindingSpec("QUALITY", "MAJOR", 10, appealed=True)],
        },
        "RESTRICT",
    ),
}


@pytest.fixture(scope="module")
def files(api_engine):
    written = {}
    for n, (name, (args, _)) in enumerate(CASES.items(), start=100):
        written[name] = {"code": code(n)}
        if args is not None:
            written[name] |= file_company(api_engine, code(n), f"{name} 地热有限公司", **args)
    return written


@pytest.fixture(scope="module")
def answers(files, gql, tokens):
    """Every case × every kind, asked in one eligibilities call."""
    requests = [{"creditCode": f["code"], "kind": k} for f in files.values() for k in KINDS]
    body = gql(BATCH, {"r": requests}, tokens[Role.APPROVAL_SYSTEM])
    assert "errors" not in body, body
    results = body["data"]["eligibilities"]
    assert [r["creditCode"] for r in results] == [r["creditCode"] for r in requests]
    return {
        (name, k): results[i * len(KINDS) + j]
        for i, name in enumerate(files)
        for j, k in enumerate(KINDS)
    }


def codes(answer) -> list[str]:
    return [r["code"] for r in answer["reasons"]]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", list(CASES))
def test_decision_table(answers, case, kind):
    assert answers[case, kind]["decision"] == CASES[case][1]


def test_no_credit_file_allows_with_its_reason(answers, files):
    for kind in KINDS:
        a = answers["no_file", kind]
        assert a["company"] is None and a["grade"] is None and a["score"] is None
        assert codes(a) == ["NO_CREDIT_FILE"]
        assert abs(at(a["asOf"]) - datetime.now(UTC)) < timedelta(minutes=5)
        assert a["rulebookVersion"] == "2026.2"  # none scored: the version in force


def test_never_scored_allows_with_its_reason(answers, files):
    a = answers["unscored", "WATER_PERMIT"]
    assert a["company"]["creditCode"] == files["unscored"]["code"]
    assert a["company"]["name"] == "unscored 地热有限公司"
    assert a["grade"] is None
    assert codes(a) == ["NOT_YET_SCORED"]


def test_grades_a_and_b_allow_and_say_their_grade(answers):
    a = answers["grade_a", "PROJECT_FILING"]
    assert (a["grade"], a["score"], a["conditions"], a["restrictedUntil"]) == ("A", 96, [], None)
    assert codes(a) == ["GRADE"]
    b = answers["grade_b", "NEW_WELL"]
    assert codes(b) == ["GRADE", "REINJ_RATIO"]
    finding = b["reasons"][1]
    assert finding["ruleId"] == "REINJ_RATIO" and finding["policyClause"] == "二(三)1"
    assert finding["evidence"]["window"]["start"] == "2026-01-01"
    assert finding["evidence"]["ratio"] == 0.81


def test_grade_c_restricts_with_the_three_conditions(answers):
    for kind in KINDS:
        a = answers["grade_c", kind]
        assert len(a["conditions"]) == 3
        assert any("回灌方案" in c for c in a["conditions"])
        assert any("在线计量" in c for c in a["conditions"])
        assert any("重点监督" in c for c in a["conditions"])
        assert a["restrictedUntil"] is None


def test_listed_blocks_until_the_listings_earliest_end_with_the_findings_behind_it(answers, files):
    for case in ("grade_d_listed", "listed_grade_b", "listed_unscored"):
        a = answers[case, "MINING_RIGHT"]
        assert abs(at(a["restrictedUntil"]) - (NOW + timedelta(days=365))) < timedelta(seconds=1)
        assert codes(a)[:2] == ["LISTED", "NO_REINJECTION"], case
        assert a["reasons"][0]["evidence"]["listing_id"] == str(files[case]["listing"])
        assert a["reasons"][1]["policyClause"] == "二(二)6"
        assert a["conditions"] == []


def test_grade_d_without_a_listing_blocks_without_an_end(answers):
    a = answers["grade_d_unlisted", "WATER_PERMIT"]
    assert a["restrictedUntil"] is None
    assert codes(a) == ["GRADE", "REINJ_RATIO"]


def test_a_stale_snapshot_is_answered_with_a_stale_score_reason(answers):
    fresh = answers["grade_a", "WATER_PERMIT"]
    assert "STALE_SCORE" not in codes(fresh)
    for case in ("stale_a", "stale_c"):
        a = answers[case, "WATER_PERMIT"]
        assert codes(a)[-1] == "STALE_SCORE"
        assert abs(at(a["asOf"]) - datetime.now(UTC)) > timedelta(hours=48)


def test_as_of_is_the_snapshot_the_decision_rests_on(answers):
    a = answers["grade_c", "WATER_PERMIT"]
    assert abs(at(a["asOf"]) - (NOW - timedelta(hours=1))) < timedelta(seconds=1)


def test_findings_that_stopped_counting_are_not_reasons_and_appeals_are_shown(answers):
    assert codes(answers["voided_finding", "WATER_PERMIT"]) == ["GRADE", "REINJ_RATIO"]
    appealed = answers["appealed_finding", "WATER_PERMIT"]["reasons"][1]
    assert appealed["ruleId"] == "QUALITY"
    assert appealed["evidence"]["status"] == "UNDER_APPEAL"


def test_single_eligibility_answers_like_the_batch(gql, tokens, answers, files):
    for case in ("no_file", "grade_c", "grade_d_listed"):
        body = gql(
            SINGLE,
            {"c": files[case]["code"].lower() + " ", "k": "WATER_PERMIT"},
            tokens[Role.REVIEWER],
        )
        single = body["data"]["eligibility"]
        batch = answers[case, "WATER_PERMIT"]
        assert {k: v for k, v in single.items() if k != "asOf"} == {
            k: v for k, v in batch.items() if k != "asOf"
        }
        assert single["creditCode"] == files[case]["code"]  # normalised
