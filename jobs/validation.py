"""Which monitoring rows are good: accepted units and plausibility limits, in one place.

These rules are agreed with the platform stand-in's `/truth` endpoint (monitorsim): change them
only together with it. Values are checked after conversion to canonical units.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from registry.vocabulary import Accumulation, Indicator

# Quarantine reasons.
MALFORMED = "malformed"  # missing or unparseable times or ids, not an object
UNKNOWN_DATASTREAM = "unknown_datastream"
BAD_UNIT = "bad_unit"
NOT_A_NUMBER = "not_a_number"
NEGATIVE_VALUE = "negative_value"
OUT_OF_RANGE = "out_of_range"
FUTURE_TIME = "future_time"  # after its resultTime by more than MAX_FUTURE_US, or after now
EARLY_TIME = "early_time"  # a phenomenonTime before EARLIEST

# indicator -> {unit symbol: factor to the canonical unit}
UNITS: dict[str, dict[str, float]] = {
    Indicator.EXTRACTION_VOLUME: {"m3": 1.0, "L": 1000.0},  # divide by the factor: L -> m³
    Indicator.REINJECTION_VOLUME: {"m3": 1.0, "L": 1000.0},
    Indicator.WATER_LEVEL: {"m": 1.0},  # depth to water; negative = artesian, allowed
    Indicator.WATER_TEMPERATURE: {"degC": 1.0},
    Indicator.WATER_QUALITY_TDS: {"mg/L": 1.0},
    Indicator.WATER_QUALITY_PH: {"pH": 1.0},
}
VOLUMES = (Indicator.EXTRACTION_VOLUME, Indicator.REINJECTION_VOLUME)

MAX_INTERVAL_VOLUME_M3 = 10_000.0  # per observation
MAX_METER_READING_M3 = 1e10
# indicator -> inclusive [low, high] in canonical units (volumes: negatives are checked apart)
RANGES: dict[str, tuple[float, float]] = {
    Indicator.WATER_TEMPERATURE: (-5.0, 150.0),
    Indicator.WATER_QUALITY_PH: (0.0, 14.0),
    Indicator.WATER_QUALITY_TDS: (0.0, 100_000.0),
    Indicator.WATER_LEVEL: (-100.0, 2_000.0),
}
MAX_FUTURE_US = 15 * 60 * 1_000_000  # phenomenonTime may lead its resultTime by this much
# Times may lead the ingest's clock by this much (clock skew). A resultTime further ahead never
# moves the watermark: the row is read again by every pull (and quarantined once) until it is due.
MAX_AHEAD_US = 10 * 60 * 1_000_000
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # no monitoring data is older


@dataclass(frozen=True, slots=True)
class StreamRule:
    """How to check and convert one datastream's values (None divisor: bad unit)."""

    divisor: float | None
    volume: bool
    low: float
    high: float


def stream_rule(indicator: str, unit: str, accumulation: str) -> StreamRule:
    divisor = UNITS.get(indicator, {}).get(unit)
    if indicator in VOLUMES:
        high = (
            MAX_METER_READING_M3
            if accumulation == Accumulation.CUMULATIVE
            else MAX_INTERVAL_VOLUME_M3
        )
        return StreamRule(divisor, True, 0.0, high)
    low, high = RANGES.get(indicator, (-math.inf, math.inf))
    return StreamRule(divisor, False, low, high)


def as_number(result: object) -> float | None:
    """The result as a float, or None (null, NaN, infinite, non-numeric, boolean). An integer too
    large for a float is ±inf, which no range holds."""
    if type(result) is float:
        return result if math.isfinite(result) else None
    if type(result) is int:
        try:
            return float(result)
        except OverflowError:
            return math.inf if result > 0 else -math.inf
    if type(result) is Decimal:  # an integer of more digits than Python parses (jobs/platform.py)
        return None if result.is_nan() else float(result)
    if type(result) is str:
        try:
            number = float(result)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def check_value(rule: StreamRule, value: float) -> tuple[str, str] | None:
    """(reason, detail) when a canonical value is implausible, else None."""
    if rule.volume and value < 0:
        return NEGATIVE_VALUE, f"negative volume {value!r} m3"
    if math.isinf(value):
        return OUT_OF_RANGE, "a number beyond any float (over 1.8e308)"
    if not rule.low <= value <= rule.high:
        return OUT_OF_RANGE, f"{value!r} outside [{rule.low!r}, {rule.high!r}]"
    return None
