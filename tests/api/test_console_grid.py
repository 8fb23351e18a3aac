"""The compliance grid shows, in each month's tooltip, the rules the latest scoring could not
evaluate there and why (a missing registry fact in every month)."""

from datetime import date

from api.console.views import compliance_grid

MONTHS = [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]
PROJECT = {"id": 7, "code": "P-7", "name": "示例项目"}


def _metric(month: date) -> dict:
    return {"project_id": 7, "month": month, "final": True, "evaluated": True, "outage_slots": 0}


def test_not_evaluated_rules_are_in_their_months_tooltips():
    not_evaluated = [
        {"project_code": "P-7", "rule_id": "REINJ_RATIO", "reason": "平台全时段中断",
         "window_start": date(2026, 2, 1), "window_end": date(2026, 2, 28)},
        {"project_code": "P-7", "rule_id": "QUALITY", "reason": "未登记热储层水质限值",
         "window_start": None, "window_end": None},
        {"project_code": "P-8", "rule_id": "ZONE_BAN", "reason": "另一个项目",
         "window_start": None, "window_end": None},
    ]  # fmt: skip
    (row,) = compliance_grid(
        [PROJECT], {7: [_metric(m) for m in MONTHS]}, [], MONTHS, not_evaluated
    )
    january, february, march = row.cells
    assert february.not_evaluated == [
        "REINJ_RATIO：平台全时段中断",
        "QUALITY：未登记热储层水质限值",
    ]
    assert january.not_evaluated == march.not_evaluated == ["QUALITY：未登记热储层水质限值"]
    assert "未评估：REINJ_RATIO：平台全时段中断" in february.tooltip
    assert "ZONE_BAN" not in " ".join(c.tooltip for c in row.cells)
