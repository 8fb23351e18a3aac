"""Time policy shared with the rollup: heating seasons, evaluated part, finality, deadlines."""

from datetime import UTC, date, datetime

import pytest

from scoring import periods
from scoring.model import ProjectType
from tests.scoring.scoring_builders import RB, local


@pytest.mark.parametrize(
    ("city", "month", "days"),
    [
        ("运城市", date(2025, 11, 1), (date(2025, 11, 15), date(2025, 11, 30))),
        ("运城市", date(2026, 3, 1), (date(2026, 3, 1), date(2026, 3, 15))),
        ("运城市", date(2026, 4, 1), None),
        ("运城市", date(2026, 1, 1), (date(2026, 1, 1), date(2026, 1, 31))),
        ("太原", date(2025, 11, 1), (date(2025, 11, 1), date(2025, 11, 30))),
        ("太原市", date(2026, 3, 1), (date(2026, 3, 1), date(2026, 3, 31))),
        ("太原市小店区", date(2026, 3, 1), (date(2026, 3, 1), date(2026, 3, 31))),
        ("大同市", date(2025, 10, 1), None),
    ],
)
def test_heating_season_days(city, month, days):
    assert periods.heating_season_days(city, month, RB) == days


def test_season_of_a_day():
    assert periods.season_of(date(2026, 1, 5), "运城", RB) == 2025
    assert periods.season_of(date(2025, 11, 15), "运城", RB) == 2025
    assert periods.season_of(date(2025, 11, 14), "运城", RB) is None
    assert periods.season_of(date(2025, 11, 14), "太原", RB) == 2025
    assert periods.season_label(2025) == "2025-26"


def _scope(month, city="运城市", outside=False, watermark=local(2027, 4, 20), type_=None):
    return periods.month_scope(
        month,
        city=city,
        project_type=type_ or ProjectType.MEDIUM_DEEP,
        extraction_outside_season=outside,
        watermark=watermark,
        rulebook=RB,
    )


def test_partial_heating_months_count_only_their_heating_days():
    nov = _scope(date(2026, 11, 1))
    assert (nov.start, nov.end) == (local(2026, 11, 15), local(2026, 12, 1))
    assert nov.slots(RB) == 16 * 96
    mar = _scope(date(2026, 3, 1))
    assert (mar.start, mar.end) == (local(2026, 3, 1), local(2026, 3, 16))  # 15 Mar included
    assert _scope(date(2026, 3, 1), city="太原").end == local(2026, 4, 1)


def test_extraction_outside_the_season_brings_the_whole_month_in():
    assert _scope(date(2026, 7, 1)).evaluated is False
    july = _scope(date(2026, 7, 1), outside=True)
    assert (july.evaluated, july.start, july.end) == (True, local(2026, 7, 1), local(2026, 8, 1))
    assert _scope(date(2026, 11, 1), outside=True).start == local(2026, 11, 1)


def test_nothing_before_applies_from_or_after_the_watermark():
    assert _scope(date(2025, 11, 1), city="太原").start == local(2025, 11, 15)
    assert _scope(date(2025, 10, 1), outside=True).evaluated is False
    part = _scope(date(2026, 2, 1), watermark=local(2026, 2, 3, 12))
    assert (part.end, part.slots(RB)) == (local(2026, 2, 3, 12), 2 * 96 + 48)
    assert _scope(date(2026, 3, 1), watermark=local(2026, 2, 3)).evaluated is False
    assert _scope(date(2026, 1, 1), watermark=None).evaluated is False


def test_closed_loops_have_no_evaluated_part():
    assert _scope(date(2026, 1, 1), type_=ProjectType.CLOSED_LOOP).evaluated is False


def test_a_month_is_final_three_days_after_its_end_local_time():
    jan = date(2026, 1, 1)
    assert not periods.is_final(jan, local(2026, 2, 3, 23, 59, 59), RB)
    assert periods.is_final(jan, local(2026, 2, 4), RB)
    assert periods.is_final(jan, datetime(2026, 2, 3, 16, 0, tzinfo=UTC), RB)  # = 4 Feb 00:00 CST
    assert not periods.is_final(jan, None, RB)
    assert _scope(jan, watermark=local(2026, 2, 4)).final


def test_report_due_is_fifteen_days_after_the_month_end():
    assert periods.report_due(date(2026, 1, 1), RB) == date(2026, 2, 15)
    assert periods.report_due(date(2026, 2, 1), RB) == date(2026, 3, 15)


def test_slot_counts():
    assert periods.slot_count(local(2026, 1, 1), local(2026, 2, 1), RB) == 31 * 96
    assert periods.slot_count(local(2026, 1, 1), local(2026, 1, 1, 0, 14), RB) == 0
    assert periods.slot_count(local(2026, 1, 2), local(2026, 1, 1), RB) == 0


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2026, 8, 31), 6, date(2027, 2, 28)),
        (date(2028, 1, 31), 1, date(2028, 2, 29)),
        (date(2026, 2, 1), 12, date(2027, 2, 1)),
        (date(2026, 4, 1), -23, date(2024, 5, 1)),
    ],
)
def test_add_months_clamps_to_the_month_end(day, months, expected):
    assert periods.add_months(day, months) == expected


def test_lookback_is_the_month_of_now_and_the_23_before_it_in_local_time():
    assert periods.lookback_start(local(2026, 4, 20), RB) == date(2024, 5, 1)
    # 31 Mar 16:30 UTC is already 1 April in Shanghai
    assert periods.lookback_start(datetime(2026, 3, 31, 16, 30, tzinfo=UTC), RB) == date(2024, 5, 1)
    assert periods.lookback_start(datetime(2026, 3, 31, 15, 59, tzinfo=UTC), RB) == date(2024, 4, 1)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        periods.local_date(datetime(2026, 1, 1), RB)


def test_a_slot_is_an_outage_when_at_least_half_the_projects_are_silent():
    assert periods.is_outage_slot(5, 10, RB)
    assert not periods.is_outage_slot(4, 10, RB)
    assert not periods.is_outage_slot(0, 0, RB)
