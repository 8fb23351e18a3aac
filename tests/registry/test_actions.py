"""The reviewers' use cases: each checks the role, appends and rescores in one transaction; a
rescore that fails keeps nothing of the action."""

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from registry import actions, db, roles
from registry.auth import Client
from registry.vocabulary import Role
from scoring import periods
from scoring.rulebook import load_rulebook
from tests.api.support import code
from tests.conftest import scalar

NOW = datetime.now(UTC)
RULEBOOK = load_rulebook()
TODAY = periods.local_date(NOW, RULEBOOK)
ADMIN = Client(1, "王科长", Role.ADMIN)
REVIEWER = Client(2, "李明", Role.REVIEWER)
APPROVAL = Client(3, "审批系统", Role.APPROVAL_SYSTEM)
FIRST, SECOND = code(8101), code(8102)


def acting(session_factory, client: Client = REVIEWER) -> actions.Acting:
    return actions.Acting(client, session_factory, RULEBOOK, NOW)


async def file_company(session_factory, credit_code: str, project: str) -> actions.Done:
    return await actions.register_project(
        acting(session_factory, ADMIN),
        {
            "code": project,
            "credit_code": credit_code,
            "name": "盐湖区地热供暖",
            "type": "CLOSED_LOOP",
            "city": "运城",
        },
        company_name="运城热能有限公司",
    )


def count(engine, table: str) -> int:
    return scalar(engine, f"SELECT count(*) FROM {table}")


async def test_an_inspection_is_recorded_and_rescored_in_one_step(session_factory):
    filed = await file_company(session_factory, FIRST, "YC-1")
    assert filed.grade == "A"
    done = await actions.record_inspection(
        acting(session_factory),
        {
            "credit_code": FIRST,
            "project_code": "YC-1",
            "inspected_on": TODAY,
            "inspector": "李明",
            "findings": [{"severity": "CRITICAL", "description": "回灌井未运行"}],
        },
    )
    assert done.company_id == filed.company_id
    assert (done.grade, done.score) == ("D", done.score)
    async with session_factory() as s:
        grade = await s.scalar(
            sa.text(
                "SELECT grade FROM score_snapshot WHERE company_id = :c "
                "ORDER BY computed_at DESC, id DESC LIMIT 1"
            ),
            {"c": done.company_id},
        )
    assert grade == "D"


async def test_a_failed_rescore_keeps_nothing_of_the_action(session_factory, engine):
    filed = await file_company(session_factory, SECOND, "YC-2")
    # Stored month metrics the scoring cannot take (completeness above 1).
    month = periods.month_of(TODAY)
    async with db.transaction(session_factory, "tests") as s:
        await s.execute(
            sa.text(
                """
                INSERT INTO project_month_metric (project_id, month, operating, evaluated, final,
                    scope_start, scope_end, expected_slots, outage_slots, extraction_completeness,
                    layers, days_over_daily_limit, extraction_m3, season_level_sum,
                    season_level_n)
                VALUES (:p, :m, true, true, false, :now, :now, 96, 0, 1.5, '[]', 0, 0, 0, 0)
                """
            ),
            {"p": filed.record_id, "m": month, "now": NOW},
        )
    before = count(engine, "inspection"), count(engine, "audit_log")
    with pytest.raises(actions.RescoreFailed, match="completeness"):
        await actions.record_inspection(
            acting(session_factory),
            {
                "credit_code": SECOND,
                "inspected_on": TODAY,
                "inspector": "李明",
                "findings": [{"severity": "MAJOR", "description": "流量计未联网"}],
            },
        )
    assert (count(engine, "inspection"), count(engine, "audit_log")) == before


async def test_roles_come_from_one_table(session_factory):
    assert roles.may(Role.REVIEWER, roles.Action.RECORD_INSPECTION)
    assert not roles.may(Role.REVIEWER, roles.Action.PLACE_LISTING)
    assert all(action in roles.ALLOWED for action in roles.Action)
    with pytest.raises(roles.Forbidden, match="reviewer may not place_listing"):
        await actions.place_listing(acting(session_factory), {"credit_code": FIRST, "reason": "x"})
    with pytest.raises(roles.Forbidden):  # before the input is even looked at
        await actions.record_inspection(acting(session_factory, APPROVAL), {})


async def test_refusals_name_their_code_and_field(session_factory):
    with pytest.raises(actions.Refused) as bad:
        await actions.record_inspection(
            acting(session_factory),
            {"credit_code": FIRST, "inspected_on": "yesterday", "inspector": ""},
        )
    assert {(p.code, p.field) for p in bad.value.problems} == {
        ("INVALID_INPUT", ("inspected_on",)),
        ("INVALID_INPUT", ("inspector",)),
    }
    with pytest.raises(actions.Refused) as unknown:
        await actions.submit_monthly_report(
            acting(session_factory),
            {"project_code": "NOPE", "month": TODAY, "submitted_on": TODAY},
        )
    assert [(p.code, p.field) for p in unknown.value.problems] == [("NOT_FOUND", ("project_code",))]
    with pytest.raises(actions.Refused) as malformed:
        await actions.place_listing(
            acting(session_factory, ADMIN), {"credit_code": "91140100MA0K000018", "reason": "x"}
        )
    assert [p.code for p in malformed.value.problems] == ["INVALID_CREDIT_CODE"]
