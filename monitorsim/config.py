"""Configuration of a simulated platform: scenario defaults, times, knobs."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone

CST = timezone(timedelta(hours=8), "Asia/Shanghai")  # China has no DST: a fixed offset is exact
SLOT = 900  # seconds: one 15-minute interval
SCENARIOS = ("demo", "bench", "faults")

# Per-row probabilities of data faults (see generator.py for what each does).
DATA_FAULT_KINDS = (
    "late",  # the row arrives 1-5 days after its phenomenonTime
    "duplicate",  # an identical re-send later
    "correction",  # first sent with a wrong (good) value, corrected later
    "bad_correction",  # a good row, later "corrected" with a bad value (quarantined)
    "not_a_number",  # null, "NaN" or "n/a" (half of them re-sent good later)
    "negative",  # volumes only: a negative value or reading (half re-sent good later)
    "out_of_range",  # an absurd value (half re-sent good later)
    "future_time",  # an extra copy stamped 1-2 days in the future (device clock wrong)
    "clock_skew",  # phenomenonTime 1-10 min after resultTime: still good
    "drop",  # the row is never sent
    # poison rows, none by default: an extra copy whose result is 10**400 as a JSON integer
    # (out_of_range), or whose phenomenonTime is 0001-01-01 (early_time)
    "huge_integer",
    "year_one",
)
_LOW = {
    "late": 0.002,
    "duplicate": 0.003,
    "correction": 0.002,
    "bad_correction": 0.0005,
    "not_a_number": 0.001,
    "negative": 0.0005,
    "out_of_range": 0.0005,
    "future_time": 0.0005,
    "clock_skew": 0.002,
    "drop": 0.001,
}
DATA_FAULT_DEFAULTS = {
    "demo": dict(_LOW),
    "bench": dict(_LOW),
    "faults": {k: v * 10 for k, v in _LOW.items()},
}
# Per-reading rates of cumulative meter faults (totalizers only; see generator.py). /truth keeps
# the volumes the meters really measured; the faulty readings are what the platform receives.
METER_FAULT_KINDS = (
    "meter_glitch",  # one reading of 0 or a low value, then the meter reads on
    "meter_spike",  # one reading ten times the true one, then the meter reads on
    "meter_reset",  # the meter is replaced: it continues from a low level (0-5 m3)
    "meter_jump",  # the reading jumps by 10-100 h of a well's plausible flow and stays there
    "meter_silence",  # the meter sends nothing for meter_silence_hours, then its catch-up reading
)
METER_FAULT_DEFAULTS: dict[str, dict[str, float]] = {s: {} for s in SCENARIOS}
# HTTP faults each scenario starts with (POST /faults changes them at run time).
HTTP_FAULT_DEFAULTS: dict[str, dict] = {
    "demo": {},
    "bench": {},
    "faults": {
        "rate_limit_every": 7,
        "error_every": 11,
        "truncate_every": 13,
        "repeat_next_link": 1,
    },
}


@dataclass
class Config:
    scenario: str = "demo"
    seed: int = 7
    start: datetime | None = None  # first interval starts here; default depends on the scenario
    end: datetime | None = None  # data ends here (exclusive)
    days: float | None = None  # alternative to end
    now: datetime | None = None  # frozen "now"; None: wall clock (demo) or end of data (others)
    wall_clock: bool | None = None  # None: True for demo without --now
    wells: int | None = None  # at least this many wells (the fixed roster comes first)
    outage_start: datetime | None = None  # default: 01:00 local on the day at 70% of the span
    outage_hours: float | None = None  # 0 disables; default 6 (demo, faults), 0 (bench)
    # hours after the outage's end at which its data arrives; None: never; -1: scenario default
    # (faults: 26 h; demo, bench: never)
    outage_backfill_hours: float | None = -1.0
    gap_fraction: float = 0.15  # share of slots missing for "metering_gaps" projects
    data_faults: dict[str, float] = field(default_factory=dict)  # overrides of per-row rates
    meter_faults: dict[str, float] = field(default_factory=dict)  # per-reading rates (meters)
    meter_silence_hours: float = 48.0  # how long a meter_silence lasts
    # overrides of the scenario's HTTP faults; {"reset": true, ...} starts from none at all
    http_faults: dict = field(default_factory=dict)
    page_max: int = 10_000  # server cap for $top on Observations
    things_page_max: int = 1_000
    # Registry changes mid-season: [{"at": TIME, "project" | "well": CODE, "operating": bool,
    # "projectType": TYPE}] (at least one of the last two). From `at` on, Things report them and
    # a well that is not operating sends nothing (see generator.Changes).
    registry_changes: list[dict] = field(default_factory=list)
    resolved_: bool = field(default=False, repr=False)

    def resolved(self) -> Config:
        """A copy with every default filled in."""
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}; use one of {SCENARIOS}")
        if self.resolved_:
            return dataclasses.replace(self)
        c = dataclasses.replace(self, resolved_=True)
        wall = c.wall_clock if c.wall_clock is not None else (c.scenario == "demo" and not c.now)
        c.wall_clock = wall
        if c.start is None:
            if c.scenario == "bench":
                c.start = local_midnight(date(2026, 12, 1))
            elif wall:
                c.start = local_midnight(datetime.now(CST).date() - timedelta(days=60))
            else:
                c.start = local_midnight(date(2026, 9, 26))
        if c.end is None:
            if c.days is not None:
                c.end = c.start + timedelta(days=c.days)
            elif c.scenario == "bench":
                c.end = c.start + timedelta(days=5)
            elif wall:
                c.end = local_midnight(datetime.now(CST).date() + timedelta(days=8))
            elif c.now is not None:
                c.end = max(c.start + timedelta(days=1), c.now + timedelta(days=1))
            else:
                c.end = c.start + timedelta(days=60)
        if c.end <= c.start:
            raise ValueError("end must be after start")
        if c.wells is None:
            c.wells = 760 if c.scenario == "bench" else 0
        if c.outage_hours is None:
            c.outage_hours = 0.0 if c.scenario == "bench" else 6.0
        if c.outage_backfill_hours is not None and c.outage_backfill_hours < 0:
            c.outage_backfill_hours = 26.0 if c.scenario == "faults" else None
        if c.outage_hours and c.outage_start is None:
            last = c.end
            if c.now is not None and not wall:
                last = min(last, c.now)
            elif wall:
                last = min(last, datetime.now(UTC))
            span = max(last - c.start, timedelta(days=1))
            day = (c.start + span * 0.7).astimezone(CST).date()
            c.outage_start = datetime(day.year, day.month, day.day, 1, tzinfo=CST)
        c.registry_changes = [_registry_change(ch) for ch in c.registry_changes]
        unknown = set(c.data_faults) - set(DATA_FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown data fault kinds: {sorted(unknown)}")
        c.data_faults = {**DATA_FAULT_DEFAULTS[c.scenario], **c.data_faults}
        unknown = set(c.meter_faults) - set(METER_FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown meter fault kinds: {sorted(unknown)}")
        c.meter_faults = {
            **dict.fromkeys(METER_FAULT_KINDS, 0.0),
            **METER_FAULT_DEFAULTS[c.scenario],
            **c.meter_faults,
        }
        if sum(c.meter_faults.values()) > 1 or min(c.meter_faults.values()) < 0:
            raise ValueError("meter fault rates must be ≥ 0 and add up to at most 1")
        if c.meter_silence_hours <= 0:
            raise ValueError("meter_silence_hours must be positive")
        http = dict(c.http_faults)
        c.http_faults = {
            **({} if http.pop("reset", False) else HTTP_FAULT_DEFAULTS[c.scenario]),
            **http,
        }
        return c


def _registry_change(change: dict) -> dict:
    ch = dict(change)
    if not isinstance(ch.get("at"), datetime):
        ch["at"] = parse_time(str(ch.get("at", "")))
    if ("project" in ch) == ("well" in ch):
        raise ValueError(f"a registry change names a project or a well: {change}")
    if not {"operating", "projectType"} & set(ch) or set(ch) - {
        "at",
        "project",
        "well",
        "operating",
        "projectType",
    }:
        raise ValueError(f"a registry change sets operating and/or projectType: {change}")
    if "projectType" in ch and "project" not in ch:
        raise ValueError(f"projectType is a project's: {change}")
    return ch


def local_midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=CST)


def parse_time(text: str) -> datetime:
    """ISO 8601 date or date-time; a date is local midnight (Asia/Shanghai), a naive time is UTC."""
    text = text.strip()
    if len(text) == 10:
        return local_midnight(date.fromisoformat(text))
    t = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def epoch(t: datetime) -> int:
    return int(t.timestamp())


def wall_now() -> int:
    return int(time.time())


def iso_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_local(ts: float) -> str:
    return datetime.fromtimestamp(ts, CST).isoformat()
