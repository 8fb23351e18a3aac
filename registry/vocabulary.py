"""The registry's vocabulary: every closed set of values the registry stores, one enum each.

The scoring vocabulary (project types, well roles, severities, finding sources and statuses,
grades, decisions, application kinds, verdicts, appeal outcomes) is defined in scoring.model,
which the registry builds on; the enums here are the registry's own, and the parts of scoring's
that a record may take (an inspection records no WARNING, a decided appeal is not PENDING…).

Columns typed with these enums are stored as text, each with a CHECK constraint listing its
values (migrations/versions/0011_vocabulary_checks.py); api/schema/enums.py wraps them for GraphQL.
"""

from enum import StrEnum

from scoring.model import AppealOutcome, FindingStatus, Severity


def _part(name: str, *members: StrEnum) -> type[StrEnum]:
    """An enum of some members of another: the same names and values, in the same order."""
    return StrEnum(name, [(m.name, m.value) for m in members], module=__name__)


class Indicator(StrEnum):
    """What a datastream measures (the platform's ObservedProperty names)."""

    EXTRACTION_VOLUME = "extraction_volume"
    REINJECTION_VOLUME = "reinjection_volume"
    WATER_LEVEL = "water_level"
    WATER_TEMPERATURE = "water_temperature"
    WATER_QUALITY_TDS = "water_quality_tds"
    WATER_QUALITY_PH = "water_quality_ph"


class Accumulation(StrEnum):
    """How a volume datastream counts: a volume per interval, or a meter's running total."""

    INTERVAL = "interval"
    CUMULATIVE = "cumulative"


class PermitKind(StrEnum):
    PROJECT_FILING = "PROJECT_FILING"
    WATER_PERMIT = "WATER_PERMIT"
    MINING_RIGHT = "MINING_RIGHT"
    ENVIRONMENTAL_ASSESSMENT = "ENVIRONMENTAL_ASSESSMENT"


class Role(StrEnum):
    """A bearer token's role."""

    APPROVAL_SYSTEM = "approval_system"
    REVIEWER = "reviewer"
    ADMIN = "admin"
    SCHEDULER = "scheduler"


InspectionSeverity = _part("InspectionSeverity", Severity.MINOR, Severity.MAJOR, Severity.CRITICAL)
"""The severity of an inspection's finding (a reviewer records no WARNING)."""

FindingEventKind = _part(
    "FindingEventKind", FindingStatus.VOIDED, FindingStatus.OVERTURNED, FindingStatus.REPAIRED
)
"""What ended a finding's effect: recomputed away by a scoring run, overturned by an appeal,
repaired by an approved credit repair; the finding's status is named after it."""

AppealDecisionOutcome = _part(
    "AppealDecisionOutcome", AppealOutcome.UPHELD, AppealOutcome.OVERTURNED
)
"""A decided appeal's outcome (an appeal without a decision is PENDING)."""


class RepairOutcome(StrEnum):
    """Where a credit repair stands."""

    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


RepairDecisionOutcome = _part(
    "RepairDecisionOutcome", RepairOutcome.APPROVED, RepairOutcome.REJECTED
)
"""A decided credit repair's outcome."""


class ListingEndKind(StrEnum):
    """How a listing ended (listing_end.how)."""

    REPAIRED = "REPAIRED"  # an approved credit repair after the minimum period
    EXPIRED = "EXPIRED"  # its maximum period ran out
    WITHDRAWN = "WITHDRAWN"  # every finding behind it was voided or overturned
    LIFTED = "LIFTED"  # an admin lifted a manual listing
    EXTENDED = "EXTENDED"  # a new CRITICAL during it: ended and continued by a longer listing


class JobStatus(StrEnum):
    """A job run: RUNNING, then SUCCEEDED or FAILED."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class DeliveryStatus(StrEnum):
    """A webhook delivery: PENDING until the receiver answers 2xx, FAILED after a day of
    failures (sent again on request)."""

    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
