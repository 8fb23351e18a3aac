"""The console's forms, one per reviewer action: a posted form becomes the input of the
registry's use case (registry.actions), the same one GraphQL's mutation calls. Only the shape
changes here (empty fields are absent, a month field gains its first day, lines become lists);
what is valid, allowed and recorded is the use case's."""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from registry import actions
from registry.actions import Acting, Done
from registry.roles import Action
from registry.vocabulary import RepairOutcome
from scoring.model import AppealOutcome

FormData = Mapping[str, str]


def _present(form: FormData, *names: str) -> dict[str, str]:
    """The named fields that were filled in."""
    return {n: form[n].strip() for n in names if (form.get(n) or "").strip()}


def _checked(form: FormData, name: str) -> bool:
    return form.get(name) in ("on", "true", "1")


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _month(value: str | None) -> str | None:
    """<input type=month> sends YYYY-MM; the use case takes any day of the month."""
    return f"{value}-01" if value and len(value) == 7 else value


def _inspection(code: str, form: FormData) -> dict[str, Any]:
    findings = []
    for i in range(_ROWS):
        p = f"findings-{i}-"
        if not (form.get(p + "description") or "").strip():
            continue
        finding: dict[str, Any] = {
            k.removeprefix(p): v
            for k, v in _present(
                form, p + "severity", p + "description", p + "rectification_deadline"
            ).items()
        }
        finding["falsified_data"] = _checked(form, p + "falsified_data")
        finding["evidence"] = _lines(form.get(p + "evidence"))
        findings.append(finding)
    return {
        "credit_code": code,
        **_present(form, "project_code", "inspected_on", "inspector", "summary"),
        "findings": findings,
    }


_ROWS = 10  # finding rows an inspection form can carry


def _post_evaluation(code: str, form: FormData) -> dict[str, Any]:
    data: dict[str, Any] = _present(
        form, "project_code", "evaluated_on", "verdict", "reviewer", "summary"
    )
    data["findings"] = _lines(form.get("findings"))
    return data


def _monthly_report(code: str, form: FormData) -> dict[str, Any]:
    data = _present(form, "project_code", "month", "submitted_on")
    if "month" in data:
        data["month"] = _month(data["month"])
    return data


def _decision(field: str, yes: str) -> Callable[[str, FormData], dict[str, Any]]:
    def parse(code: str, form: FormData) -> dict[str, Any]:
        data: dict[str, Any] = _present(form, field, "reason")
        if form.get("outcome"):
            data["approve" if yes == RepairOutcome.APPROVED else "overturn"] = (
                form["outcome"] == yes
            )
        return data

    return parse


@dataclass(frozen=True)
class Form:
    action: Action
    label: str  # what the page says was recorded
    parse: Callable[[str, FormData], dict[str, Any]]
    perform: Callable[[Acting, Any], Awaitable[Done]]


FORMS: dict[str, Form] = {
    "inspection": Form(
        Action.RECORD_INSPECTION, "监督检查", _inspection, actions.record_inspection
    ),
    "rectification": Form(
        Action.RECORD_RECTIFICATION,
        "整改完成",
        lambda code, f: _present(f, "finding_id", "rectified_on", "note"),
        actions.record_rectification,
    ),
    "post_evaluation": Form(
        Action.RECORD_POST_EVALUATION, "后评估", _post_evaluation, actions.record_post_evaluation
    ),
    "monthly_report": Form(
        Action.SUBMIT_MONTHLY_REPORT, "月度运行报告", _monthly_report, actions.submit_monthly_report
    ),
    "appeal": Form(
        Action.OPEN_APPEAL,
        "异议",
        lambda code, f: _present(f, "finding_id", "grounds", "filed_on"),
        actions.open_appeal,
    ),
    "appeal_decision": Form(
        Action.DECIDE_APPEAL,
        "异议决定",
        _decision("appeal_id", AppealOutcome.OVERTURNED),
        actions.decide_appeal,
    ),
    "repair": Form(
        Action.REQUEST_REPAIR,
        "信用修复申请",
        lambda code, f: _present(f, "listing_id", "statement"),
        actions.request_repair,
    ),
    "repair_decision": Form(
        Action.DECIDE_REPAIR,
        "信用修复决定",
        _decision("repair_id", RepairOutcome.APPROVED),
        actions.decide_repair,
    ),
    "listing": Form(
        Action.PLACE_LISTING,
        "列入失信名单",
        lambda code, f: {
            "credit_code": code,
            **_present(f, "reason"),
            "critical": _checked(f, "critical"),
        },
        actions.place_listing,
    ),
    "lift": Form(
        Action.LIFT_LISTING,
        "解除失信名单",
        lambda code, f: _present(f, "listing_id", "reason"),
        actions.lift_listing,
    ),
}
