"""Time policy shared by the rollup and the scoring: local months, heating seasons, the evaluated
part of a month, finality, report deadlines. All local times are the rulebook's zone
(Asia/Shanghai); months are `date`s on the first of the month."""

import calendar as _cal
import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from scoring.model import ProjectType
from scoring.rulebook import Rulebook


def _aware(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt.isoformat()}: pass a time zone")
    return dt


def local_date(dt: datetime, rulebook: Rulebook) -> date:
    return _aware(dt).astimezone(rulebook.zone).date()


def local_midnight(day: date, rulebook: Rulebook) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=rulebook.zone)


def month_of(day: date) -> date:
    return day.replace(day=1)


def add_months(day: date, months: int) -> date:
    """Same day-of-month `months` later (or earlier), clamped to the month's last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = _cal.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


@functools.lru_cache(maxsize=4096)
def month_end(month: date) -> date:
    """The last day of the month."""
    return add_months(month, 1) - timedelta(days=1)


@functools.lru_cache(maxsize=4096)
def month_label(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def heating_season_bounds(city: str, season: int, rulebook: Rulebook) -> tuple[date, date]:
    """First and last day (both included) of the heating season starting in year `season`."""
    spec = rulebook.season_for(city)
    (sm, sd), (em, ed) = spec.start_md, spec.end_md
    return date(season, sm, sd), date(season + 1, em, ed)


def season_of(day: date, city: str, rulebook: Rulebook) -> int | None:
    """The season (its start year) that `day` belongs to, or None outside heating seasons."""
    for season in (day.year - 1, day.year):
        first, last = heating_season_bounds(city, season, rulebook)
        if first <= day <= last:
            return season
    return None


def season_label(season: int) -> str:
    return f"{season}-{(season + 1) % 100:02d}"


def heating_season_days(city: str, month: date, rulebook: Rulebook) -> tuple[date, date] | None:
    """First and last heating-season day of `month` in `city` (both included), or None."""
    key = ("heating_season_days", city, month)
    memo = rulebook.memo
    if key not in memo:
        memo[key] = None
        first, last = month, month_end(month)
        for season in (month.year - 1, month.year):
            start, end = heating_season_bounds(city, season, rulebook)
            lo, hi = max(first, start), min(last, end)
            if lo <= hi:
                memo[key] = lo, hi
                break
    return memo[key]


def is_final(month: date, watermark: datetime | None, rulebook: Rulebook) -> bool:
    """A month is final once the ingest watermark is `finality_days` past the month's end."""
    if watermark is None:
        return False
    cutoff = local_midnight(add_months(month, 1), rulebook)
    return _aware(watermark) >= cutoff + timedelta(days=rulebook.monitoring.finality_days)


def is_outage_slot(silent_projects: int, operating_projects: int, rulebook: Rulebook) -> bool:
    """A slot is an outage slot when at least `outage_share` of the operating water-taking
    projects sent no volume data in it (the rollup counts both per slot)."""
    return operating_projects > 0 and silent_projects >= (
        rulebook.monitoring.outage_share * operating_projects
    )


def listing_end(start: date, months: int, rulebook: Rulebook) -> datetime:
    """When a listing period of `months` that began on local day `start` ends: at 00:00 or 24:00
    (rulebook listing.period_end) of the local day `months` later (clamped to the month's end)."""
    day = add_months(start, months)
    if rulebook.listing.period_end == "end_of_day":
        day += timedelta(days=1)
    return local_midnight(day, rulebook)


def last_day(end: datetime, rulebook: Rulebook) -> date:
    """The last local day of a period ending at `end` (exclusive): what people are shown, as
    "until that day, 24:00"."""
    return local_date(end - timedelta(microseconds=1), rulebook)


def report_due(month: date, rulebook: Rulebook) -> date:
    """Last day on which a monthly operating report for `month` is on time."""
    return month_end(month) + timedelta(days=rulebook.rules.MONTHLY_REPORT.grace_days)


def slot_count(start: datetime, end: datetime, rulebook: Rulebook) -> int:
    """Whole transmission slots (15 min) in [start, end)."""
    if end <= start:
        return 0
    return int((end - start) // timedelta(minutes=rulebook.monitoring.slot_minutes))


def first_season(rulebook: Rulebook) -> int:
    """The first heating season judged: the one applies_from falls in, or else the next one."""
    spec = rulebook.heating_season.default
    day = rulebook.applies_from
    if day < date(day.year, *spec.start_md) and day <= date(day.year, *spec.end_md):
        return day.year - 1
    return day.year


def rollup_months(rulebook: Rulebook, last: date) -> list[date]:
    """The months the rollup keeps, up to `last`: those of the heating season before the first
    judged one (its water levels are that season's baseline), then from applies_from's on."""
    season = first_season(rulebook) - 1
    specs = (rulebook.heating_season.default, *rulebook.heating_season.cities.values())
    first = min(date(season, *s.start_md) for s in specs).replace(day=1)
    end = max(date(season + 1, *s.end_md) for s in specs)
    months = []
    month = first
    while month <= min(end, last):
        months.append(month)
        month = add_months(month, 1)
    month = max(month, month_of(rulebook.applies_from))
    while month <= last:
        months.append(month)
        month = add_months(month, 1)
    return months


def lookback_start(now: datetime, rulebook: Rulebook) -> date:
    """First day of the oldest month counted: the month of `now` and the ones before it."""
    this_month = month_of(local_date(now, rulebook))
    return add_months(this_month, 1 - rulebook.score.lookback_months)


@dataclass(frozen=True, slots=True)
class MonthScope:
    """The part of a month the volume and metering rules look at: [start, end) local time."""

    month: date
    evaluated: bool
    start: datetime
    end: datetime
    final: bool

    def slots(self, rulebook: Rulebook) -> int:
        """Slots in the evaluated part; the rollup subtracts outage slots to get expected_slots."""
        return slot_count(self.start, self.end, rulebook) if self.evaluated else 0


def month_scope(
    month: date,
    *,
    city: str,
    project_type: ProjectType,
    extraction_outside_season: bool,
    watermark: datetime | None,
    rulebook: Rulebook,
    days: tuple[date, date] | None = None,
) -> MonthScope:
    """What the rollup needs for one project-month: the evaluated part and the `final` flag.

    Volume and metering rules apply to water-taking projects in heating-season months (only the
    heating-season days of a partial month) and in any month the project reports extraction.
    DECISION: extraction reported on a non-heating day of a partial month (e.g. 1–14 Nov) brings
    the whole month into scope, as it would for a summer month. Nothing before `applies_from` or
    after the watermark is evaluated. `days` (first, last) limits the part to those days of the
    month (a segment with the same registry facts).
    """
    month = month_of(month)
    month_start = local_midnight(month, rulebook)
    next_start = local_midnight(add_months(month, 1), rulebook)
    start = max(month_start, local_midnight(rulebook.applies_from, rulebook))
    end = start
    heating = heating_season_days(city, month, rulebook)
    if project_type in rulebook.water_taking and watermark is not None:
        if extraction_outside_season:
            end = next_start
        elif heating is not None:
            start = max(start, local_midnight(heating[0], rulebook))
            end = local_midnight(heating[1] + timedelta(days=1), rulebook)
        end = min(end, _aware(watermark).astimezone(rulebook.zone))
    if days is not None:
        start = max(start, local_midnight(days[0], rulebook))
        end = min(end, local_midnight(days[1] + timedelta(days=1), rulebook))
    evaluated = end > start
    return MonthScope(
        month=month,
        evaluated=evaluated,
        start=start,
        end=end if evaluated else start,
        final=is_final(month, watermark, rulebook),
    )
