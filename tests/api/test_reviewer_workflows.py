"""Reviewers' workflows over HTTP against a started `geocredit api`, driven by the documented
operations in graphql/operations/reviewer_*.graphql: records rescore the company at once and
the next eligibility answer reflects them; roles keep reviewers and approval systems apart;
the audit chain stays intact and catches a row altered in the database."""

import os
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from registry.vocabulary import Role
from tests.api.support import NOW, code, error_codes, file_company

OPERATIONS = Path(__file__).resolve().parents[2] / "graphql" / "operations"
OPS = {p.stem.removeprefix("reviewer_"): p.read_text() for p in OPERATIONS.glob("reviewer_*")}

ELIGIBILITY = """query($c: String!, $k: ApplicationKind!) {
    eligibility(creditCode: $c, kind: $k) { decision grade reasons { code ruleId } } }"""
SCREEN = """mutation($i: ScreenApplicationInput!) { screenApplication(input: $i) {
    decisionId userErrors { code } } }"""

BLOCKED = code(7001)  # CRITICAL inspection, then its appeal overturned
UPHELD = code(7002)  # MAJOR inspection, appeal upheld
AGED = code(7003)  # listed long enough ago for credit repair
ZONED = code(7004)  # registry facts: permit, zones, post-evaluation, monthly report
OTHER = code(7005)
TODAY = NOW.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()  # the rulebook's zone


@pytest.fixture(scope="module")
def as_role(gql, tokens):
    def call(role: Role, name: str, variables: dict) -> dict:
        body = gql(OPS[name], variables, tokens[role])
        assert "errors" not in body, body
        return body["data"]

    return call


@pytest.fixture(scope="module")
def eligibility(gql, tokens):
    def ask(credit_code: str, kind: str = "NEW_WELL") -> dict:
        body = gql(ELIGIBILITY, {"c": credit_code, "k": kind}, tokens[Role.APPROVAL_SYSTEM])
        assert "errors" not in body, body
        return body["data"]["eligibility"]

    return ask


def register(as_role, credit_code: str, project: str, name: str, **extra) -> dict:
    data = as_role(
        Role.ADMIN,
        "register_project",
        {
            "input": {
                "code": project,
                "creditCode": credit_code,
                "companyName": name,
                "name": f"{name} 供暖项目",
                "type": "MEDIUM_DEEP",
                "city": "太原市小店区",
                **extra,
            }
        },
    )["registerProject"]
    assert data["userErrors"] == []
    return data


def inspect_(as_role, credit_code: str, project: str | None, severity: str, **finding) -> dict:
    data = as_role(
        Role.REVIEWER,
        "record_inspection",
        {
            "input": {
                "creditCode": credit_code,
                "projectCode": project,
                "inspectedOn": TODAY,
                "inspector": "省地热专班 王工",
                "findings": [
                    {"severity": severity, "description": "回灌井停用", "evidence": ["记录 117"]}
                    | finding
                ],
            }
        },
    )["recordInspection"]
    assert data["userErrors"] == [], data
    return data


def credit_file(as_role, credit_code: str) -> dict:
    return as_role(Role.REVIEWER, "credit_file", {"creditCode": credit_code})["company"]


def nodes(connection: dict) -> list[dict]:
    return [edge["node"] for edge in connection["edges"]]


def only_user_error(payload: dict) -> dict:
    assert len(payload["userErrors"]) == 1, payload
    return payload["userErrors"][0]


# ---------------------------------------------------------------- workflows


def test_a_critical_inspection_blocks_at_once_and_an_overturned_appeal_restores_the_grade(
    as_role, eligibility
):
    registered = register(as_role, BLOCKED, "BL-1", "晋北热源有限公司")
    assert registered["creditFile"]["standing"]["grade"] == "A"
    assert eligibility(BLOCKED)["decision"] == "ALLOW"

    recorded = inspect_(as_role, BLOCKED, "BL-1", "CRITICAL", rectificationDeadline=TODAY)
    standing = recorded["creditFile"]["standing"]
    assert (standing["grade"], standing["listed"]) == ("D", True)
    answer = eligibility(BLOCKED)
    assert answer["decision"] == "BLOCK"
    assert {r["code"] for r in answer["reasons"]} >= {"LISTED", "INSPECTION"}

    file = credit_file(as_role, BLOCKED)
    listing = file["standing"]["listing"]
    refused = as_role(
        Role.REVIEWER,
        "request_repair",
        {"input": {"listingId": listing["id"], "statement": "已整改"}},
    )["requestRepair"]
    assert only_user_error(refused)["code"] == "REPAIR_TOO_EARLY"
    assert refused["repair"] is None

    (finding,) = [f for f in nodes(file["findings"]) if f["ruleId"] == "INSPECTION"]
    opened = as_role(
        Role.REVIEWER,
        "open_appeal",
        {"input": {"findingId": finding["id"], "grounds": "停用系检修，已报备"}},
    )["openAppeal"]
    assert opened["appeal"]["finding"]["status"] == "UNDER_APPEAL"
    assert eligibility(BLOCKED)["decision"] == "BLOCK"  # an appeal alone changes nothing

    decided = as_role(
        Role.REVIEWER,
        "decide_appeal",
        {
            "input": {
                "appealId": opened["appeal"]["id"],
                "outcome": "OVERTURNED",
                "reason": "报备属实",
            }
        },
    )["decideAppeal"]
    assert decided["userErrors"] == []
    assert decided["appeal"]["finding"]["status"] == "OVERTURNED"
    standing = decided["creditFile"]["standing"]
    assert (standing["grade"], standing["listed"]) == ("A", False)
    assert eligibility(BLOCKED)["decision"] == "ALLOW"

    file = credit_file(as_role, BLOCKED)
    (ended,) = nodes(file["listings"])
    assert not ended["active"] and ended["end"]["how"] == "WITHDRAWN"
    assert [s["grade"] for s in nodes(file["scoreHistory"])] == ["A", "D", "A"]


def test_an_upheld_appeal_leaves_the_finding_counting(as_role, eligibility):
    register(as_role, UPHELD, "UP-1", "晋中暖通有限公司")
    recorded = inspect_(as_role, UPHELD, "UP-1", "MAJOR")
    assert recorded["creditFile"]["standing"]["grade"] == "B"
    (finding,) = nodes(credit_file(as_role, UPHELD)["findings"])
    appeal = as_role(
        Role.REVIEWER, "open_appeal", {"input": {"findingId": finding["id"], "grounds": "不服"}}
    )["openAppeal"]["appeal"]
    decided = as_role(
        Role.REVIEWER,
        "decide_appeal",
        {"input": {"appealId": appeal["id"], "outcome": "UPHELD", "reason": "证据充分"}},
    )["decideAppeal"]
    assert decided["appeal"]["outcome"] == "UPHELD"
    assert decided["appeal"]["finding"]["status"] == "ACTIVE"
    assert decided["creditFile"]["standing"]["grade"] == "B"
    again = as_role(
        Role.REVIEWER,
        "decide_appeal",
        {"input": {"appealId": appeal["id"], "outcome": "OVERTURNED", "reason": "再议"}},
    )["decideAppeal"]
    assert only_user_error(again)["code"] == "ALREADY_DECIDED"
    assert eligibility(UPHELD)["decision"] == "ALLOW"


def test_a_repair_after_the_minimum_period_is_approved_and_allows_again(
    as_role, eligibility, api_engine
):
    file_company(
        api_engine,
        AGED,
        "运城旧热源有限公司",
        listing="active",
        listing_min_end=NOW - timedelta(days=1),
    )
    assert eligibility(AGED)["decision"] == "BLOCK"
    listing = credit_file(as_role, AGED)["standing"]["listing"]
    requested = as_role(
        Role.REVIEWER,
        "request_repair",
        {"input": {"listingId": listing["id"], "statement": "回灌井改造完成并通过验收"}},
    )["requestRepair"]
    assert requested["userErrors"] == []
    assert requested["repair"]["outcome"] == "PENDING"

    decided = as_role(
        Role.REVIEWER,
        "decide_repair",
        {
            "input": {
                "repairId": requested["repair"]["id"],
                "outcome": "APPROVED",
                "reason": "整改到位",
            }
        },
    )["decideRepair"]
    assert decided["userErrors"] == []
    assert decided["repair"]["listing"]["end"]["how"] == "REPAIRED"
    assert decided["creditFile"]["standing"]["listed"] is False
    assert eligibility(AGED)["decision"] == "ALLOW"


def test_registry_facts_and_reviews_rescore_and_fill_the_file(as_role, eligibility):
    register(as_role, ZONED, "ZN-1", "阳泉地热开发有限公司")
    permit = as_role(
        Role.ADMIN,
        "record_permit",
        {
            "input": {
                "projectCode": "ZN-1",
                "kind": "WATER_PERMIT",
                "number": "晋水许 2026-0042",
                "annualTotalM3": 500000,
                "dailyIntensityM3": 3000,
                "validFrom": "2026-01-01",
            }
        },
    )["recordPermit"]
    assert permit["userErrors"] == [] and permit["permit"]["superseded"] is False

    report = as_role(
        Role.REVIEWER,
        "submit_monthly_report",
        {"input": {"projectCode": "ZN-1", "month": "2026-10-17", "submittedOn": "2026-11-05"}},
    )["submitMonthlyReport"]
    assert report["monthlyReport"]["month"] == "2026-10-01"

    evaluation = as_role(
        Role.REVIEWER,
        "record_post_evaluation",
        {
            "input": {
                "projectCode": "ZN-1",
                "evaluatedOn": TODAY,
                "verdict": "CONDITIONAL",
                "reviewer": "专家组",
                "findings": ["回灌率偏低"],
            }
        },
    )["recordPostEvaluation"]
    assert evaluation["creditFile"]["standing"]["grade"] == "A"  # 100 − 10
    assert evaluation["creditFile"]["standing"]["score"] == 90

    zoned = as_role(
        Role.ADMIN,
        "set_project_zones",
        {"input": {"projectCode": "ZN-1", "inSpringProtectionZone": True}},
    )["setProjectZones"]
    assert zoned["project"]["inSpringProtectionZone"] is True
    assert zoned["project"]["inDrinkingWaterSource"] is None
    assert zoned["creditFile"]["standing"]["grade"] == "D"  # ZONE_BAN is CRITICAL
    assert eligibility(ZONED)["decision"] == "BLOCK"

    file = credit_file(as_role, ZONED)
    (project,) = nodes(file["projects"])
    assert project["city"] == "太原市小店区"
    assert [p["number"] for p in project["permits"]] == ["晋水许 2026-0042"]
    assert [r["submittedOn"] for r in nodes(file["monthlyReports"])] == ["2026-11-05"]
    assert [e["verdict"] for e in nodes(file["postEvaluations"])] == ["CONDITIONAL"]
    rules = {f["ruleId"]: f for f in nodes(file["findings"])}
    assert set(rules) == {"POST_EVALUATION", "ZONE_BAN"}
    assert rules["ZONE_BAN"]["policyClause"] == "二(三)1"


def test_a_rectification_is_recorded_once(as_role):
    register(as_role, OTHER, "OT-1", "大同热能有限公司")
    recorded = inspect_(as_role, OTHER, None, "MINOR", rectificationDeadline="2099-01-01")
    (finding,) = recorded["inspection"]["findings"]
    variables = {"input": {"findingId": finding["id"], "rectifiedOn": TODAY, "note": "已恢复"}}
    done = as_role(Role.REVIEWER, "record_rectification", variables)["recordRectification"]
    assert done["inspectionFinding"]["rectification"]["note"] == "已恢复"
    assert done["inspectionFinding"]["overdue"] is False
    again = as_role(Role.REVIEWER, "record_rectification", variables)["recordRectification"]
    assert only_user_error(again)["code"] == "ALREADY_RECTIFIED"


def test_a_screened_application_shows_in_the_file(as_role, gql, tokens):
    variables = {"i": {"creditCode": OTHER, "kind": "WATER_PERMIT", "caseReference": "DT-7005"}}
    body = gql(SCREEN, variables, tokens[Role.APPROVAL_SYSTEM])
    decision_id = body["data"]["screenApplication"]["decisionId"]
    (application,) = nodes(credit_file(as_role, OTHER)["applications"])
    assert application["caseReference"] == "DT-7005"
    assert application["decisionId"] == decision_id
    assert application["clientName"] == f"test {Role.APPROVAL_SYSTEM}"


# ---------------------------------------------------------------- reads


def test_companies_filter_and_page(as_role):
    def codes(variables: dict) -> list[str]:
        data = as_role(Role.REVIEWER, "companies", variables)["companies"]
        return [n["creditCode"] for n in nodes(data)]

    ours = {BLOCKED, UPHELD, AGED, ZONED, OTHER}
    assert set(codes({"filter": {"grades": ["D"]}, "first": 100})) & ours == {ZONED}
    assert set(codes({"filter": {"listed": True}, "first": 100})) & ours == {ZONED}
    assert codes({"filter": {"search": "阳泉地热"}}) == [ZONED]
    assert codes({"filter": {"search": ZONED[:17].lower()}}) == [ZONED]
    assert set(codes({"filter": {"city": "太原", "grades": ["A", "B"]}, "first": 100})) >= {
        BLOCKED,
        UPHELD,
    }

    seen, after = [], None
    while True:
        page = as_role(Role.REVIEWER, "companies", {"first": 2, "after": after})["companies"]
        seen += [n["creditCode"] for n in nodes(page)]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) and ours <= set(seen)


def test_the_supervision_list_names_c_and_d_companies_and_when_to_inspect(as_role):
    entries = nodes(as_role(Role.REVIEWER, "supervision_list", {})["supervisionList"])
    by_code = {e["creditFile"]["creditCode"]: e for e in entries}
    assert ZONED in by_code and BLOCKED not in by_code and UPHELD not in by_code
    zoned = by_code[ZONED]
    assert zoned["grade"] == "D" and zoned["listed"]
    assert zoned["lastInspection"] is None and zoned["nextInspectionDue"] <= TODAY
    assert any(r["code"] == "ZONE_BAN" for r in zoned["reasons"])
    dues = [e["nextInspectionDue"] for e in entries]
    assert dues == sorted(dues)


def test_node_fetches_any_record_for_reviewers_only(as_role, gql, tokens):
    finding = nodes(credit_file(as_role, ZONED)["findings"])[0]
    query = OPS["node"]
    reviewer = gql(query, {"id": finding["id"]}, tokens[Role.REVIEWER])["data"]["node"]
    assert reviewer["__typename"] == "Finding" and reviewer["ruleId"] == finding["ruleId"]
    system = gql(query, {"id": finding["id"]}, tokens[Role.APPROVAL_SYSTEM])
    assert system["data"]["node"] is None and "errors" not in system


def test_an_unknown_company_is_null_and_a_malformed_code_an_error(gql, tokens):
    token = tokens[Role.REVIEWER]
    assert gql(OPS["credit_file"], {"creditCode": code(7999)}, token)["data"]["company"] is None
    body = gql(OPS["credit_file"], {"creditCode": "91350100M000100Y44"}, token)
    assert error_codes(body) == ["INVALID_CREDIT_CODE"]


def test_page_sizes_are_bounded(gql, tokens):
    body = gql(OPS["companies"], {"first": 1000}, tokens[Role.REVIEWER])
    assert error_codes(body) == ["INVALID_PAGE"]
    body = gql(OPS["companies"], {"after": "bm90LWEtY3Vyc29y"}, tokens[Role.REVIEWER])
    assert error_codes(body) == ["INVALID_PAGE"]


# ---------------------------------------------------------------- expected refusals


@pytest.mark.parametrize(
    ("name", "variables", "field", "code_"),
    [
        (
            "record_inspection",
            {"creditCode": code(7999), "inspectedOn": TODAY, "inspector": "王工"},
            ["input", "creditCode"],
            "NOT_FOUND",
        ),
        (
            "record_inspection",
            {"creditCode": "9135", "inspectedOn": TODAY, "inspector": "王工"},
            ["input", "creditCode"],
            "INVALID_CREDIT_CODE",
        ),
        (
            "record_inspection",
            {"creditCode": OTHER, "projectCode": "BL-1", "inspectedOn": TODAY, "inspector": "王"},
            ["input", "projectCode"],
            "INVALID_INPUT",
        ),
        (
            "record_inspection",
            {
                "creditCode": OTHER,
                "inspectedOn": TODAY,
                "inspector": "王工",
                "findings": [
                    {"severity": "MINOR", "description": "x", "rectificationDeadline": "2000-01-01"}
                ],
            },
            ["input"],
            "INVALID_INPUT",
        ),
        (
            "record_inspection",
            {
                "creditCode": OTHER,
                "inspectedOn": TODAY,
                "inspector": "王工",
                "findings": [{"severity": "MINOR", "description": " "}],
            },
            ["input", "findings", "0", "description"],
            "INVALID_INPUT",
        ),
        (
            "submit_monthly_report",
            {"projectCode": "NO-SUCH", "month": "2026-10-01", "submittedOn": "2026-11-01"},
            ["input", "projectCode"],
            "NOT_FOUND",
        ),
        (
            "open_appeal",
            {"findingId": "bm9wZQ==", "grounds": "x"},
            ["input", "findingId"],
            "INVALID_ID",
        ),
        (
            "open_appeal",
            {"findingId": "TGlzdGluZzox", "grounds": "x"},  # Listing:1
            ["input", "findingId"],
            "INVALID_ID",
        ),
        (
            "decide_repair",
            {"repairId": "Q3JlZGl0UmVwYWlyOjk5OTk5", "outcome": "APPROVED", "reason": "x"},
            ["input", "repairId"],
            "NOT_FOUND",
        ),
    ],
    ids=[
        "unknown company",
        "malformed code",
        "another company's project",
        "deadline before inspection",
        "blank description",
        "unknown project",
        "malformed id",
        "id of another type",
        "unknown repair",
    ],
)
def test_expected_refusals_are_user_errors(gql, tokens, name, variables, field, code_):
    body = gql(OPS[name], {"input": variables}, tokens[Role.REVIEWER])
    assert "errors" not in body, body
    (payload,) = body["data"].values()
    error = only_user_error(payload)
    assert (error["field"], error["code"]) == (field, code_), error
    assert payload["creditFile"] is None


# ---------------------------------------------------------------- roles

REVIEWER_FIELDS = {
    "company": ("credit_file", {"creditCode": OTHER}),
    "companies": ("companies", {}),
    "supervisionList": ("supervision_list", {}),
    "recordInspection": (
        "record_inspection",
        {"input": {"creditCode": OTHER, "inspectedOn": TODAY, "inspector": "x"}},
    ),
    "recordPostEvaluation": (
        "record_post_evaluation",
        {
            "input": {
                "projectCode": "OT-1",
                "evaluatedOn": TODAY,
                "verdict": "PASS",
                "reviewer": "x",
            }
        },
    ),
    "openAppeal": ("open_appeal", {"input": {"findingId": "bm9wZQ==", "grounds": "x"}}),
}
ADMIN_FIELDS = {
    "placeListing": ("place_listing", {"input": {"creditCode": OTHER, "reason": "x"}}),
    "liftListing": ("lift_listing", {"input": {"listingId": "TGlzdGluZzox", "reason": "x"}}),
    "registerProject": (
        "register_project",
        {
            "input": {
                "code": "X",
                "creditCode": OTHER,
                "name": "x",
                "type": "DIRECT_USE",
                "city": "x",
            }
        },
    ),
    "recordPermit": (
        "record_permit",
        {
            "input": {
                "projectCode": "OT-1",
                "kind": "WATER_PERMIT",
                "number": "1",
                "validFrom": TODAY,
            }
        },
    ),
    "setProjectZones": ("set_project_zones", {"input": {"projectCode": "OT-1"}}),
}


@pytest.mark.parametrize("field", [*REVIEWER_FIELDS, *ADMIN_FIELDS])
@pytest.mark.parametrize("role", [Role.APPROVAL_SYSTEM, Role.SCHEDULER, Role.REVIEWER])
def test_who_may_read_and_record_credit_files(gql, tokens, field, role):
    name, variables = {**REVIEWER_FIELDS, **ADMIN_FIELDS}[field]
    body = gql(OPS[name], variables, tokens[role])
    if role is Role.REVIEWER and field in REVIEWER_FIELDS:
        assert "errors" not in body, body
    else:
        assert error_codes(body) == ["FORBIDDEN"], body
        assert body["data"] is None or not any(body["data"].values())


def test_a_reviewer_cannot_screen_applications(gql, tokens):
    variables = {"i": {"creditCode": OTHER, "kind": "NEW_WELL", "caseReference": "R-1"}}
    assert error_codes(gql(SCREEN, variables, tokens[Role.REVIEWER])) == ["FORBIDDEN"]


def test_an_admin_lists_and_lifts_by_hand(as_role, eligibility):
    placed = as_role(
        Role.ADMIN,
        "place_listing",
        {"input": {"creditCode": OTHER, "reason": "拒不配合监督检查", "critical": True}},
    )["placeListing"]
    listing = placed["listing"]
    assert listing["active"] and listing["critical"]
    assert listing["minEnd"][:4] == str(NOW.year + 1)  # 12 months (rulebook, CRITICAL)
    assert placed["creditFile"]["standing"]["listed"] is True
    assert eligibility(OTHER)["decision"] == "BLOCK"

    lifted = as_role(
        Role.ADMIN, "lift_listing", {"input": {"listingId": listing["id"], "reason": "复核撤销"}}
    )["liftListing"]
    assert lifted["listing"]["end"]["how"] == "LIFTED"
    assert lifted["creditFile"]["standing"]["listed"] is False
    assert eligibility(OTHER)["decision"] == "ALLOW"


# ---------------------------------------------------------------- the audit chain (last)


def _audit_verify(db_url: str) -> subprocess.CompletedProcess:
    # a data folder of its own: checkpoints kept in another one are another database's
    with tempfile.TemporaryDirectory() as data_dir:
        return subprocess.run(
            [sys.executable, "-m", "api", "audit", "verify"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "GEOCREDIT_DATABASE_URL": db_url, "GEOCREDIT_DATA_DIR": data_dir},
            cwd="/",
        )


def _set_inspector(engine: sa.Engine, inspection_id: int, inspector: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL session_replication_role = replica"))  # past the guard
        conn.execute(
            sa.text("UPDATE inspection SET inspector = :v WHERE id = :id"),
            {"v": inspector, "id": inspection_id},
        )


def test_the_audit_chain_holds_every_record_and_catches_an_altered_row(api_db_url, api_engine):
    intact = _audit_verify(api_db_url)
    assert intact.returncode == 0, intact.stderr
    assert "audit chain intact" in intact.stdout
    with api_engine.connect() as conn:
        inspection_id, inspector = conn.execute(
            sa.text("SELECT id, inspector FROM inspection ORDER BY id LIMIT 1")
        ).one()
        actors = set(conn.execute(sa.text("SELECT DISTINCT actor FROM audit_log")).scalars())
    assert {f"reviewer:test {Role.REVIEWER}", f"admin:test {Role.ADMIN}"} <= actors

    _set_inspector(api_engine, inspection_id, "篡改")
    try:
        broken = _audit_verify(api_db_url)
        assert broken.returncode != 0
        assert f"inspection row {inspection_id} was altered" in broken.stdout
    finally:
        _set_inspector(api_engine, inspection_id, inspector)  # other modules share the database
    assert _audit_verify(api_db_url).returncode == 0


def test_an_admin_record_takes_effect_when_it_says(gql, tokens):
    """effectiveFrom: never in the future; in the past a correction (of the months since)."""
    admin = tokens[Role.ADMIN]
    project = {"code": "EF-1", "creditCode": code(7010), "companyName": "生效时间热力",
               "name": "x", "type": "MEDIUM_DEEP", "city": "太原"}  # fmt: skip
    tomorrow = (NOW + timedelta(days=1)).isoformat()
    body = gql(OPS["register_project"], {"input": project | {"effectiveFrom": tomorrow}}, admin)
    assert body["data"]["registerProject"]["userErrors"] == [{
        "field": ["input", "effectiveFrom"], "message": "effectiveFrom lies in the future",
        "code": "INVALID_INPUT",
    }]  # fmt: skip
    december = "2025-12-01T00:00:00+08:00"
    body = gql(OPS["register_project"], {"input": project | {"effectiveFrom": december}}, admin)
    assert body["data"]["registerProject"]["userErrors"] == []
    zones = {"projectCode": "EF-1", "inSpringProtectionZone": True, "effectiveFrom": december}
    body = gql(OPS["set_project_zones"], {"input": zones}, admin)["data"]["setProjectZones"]
    assert body["userErrors"] == [] and body["project"]["inSpringProtectionZone"] is True
    permit = {"projectCode": "EF-1", "kind": "WATER_PERMIT", "number": "EF-取水",
              "validFrom": "2025-01-01", "effectiveFrom": december}  # fmt: skip
    body = gql(OPS["record_permit"], {"input": permit}, admin)["data"]["recordPermit"]
    assert body["userErrors"] == []
    assert datetime.fromisoformat(body["permit"]["effectiveFrom"]) == datetime.fromisoformat(
        december
    )
