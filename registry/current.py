"""What is current in an append-only file, as SQL fragments every read uses: a company's latest
name, whether a finding still counts and its status, an identity's latest version.

Records are never updated, so "current" is always derived from the rows that came later: the
fragments below are the one place each derivation is written. They take the alias of the row
they qualify (their own aliases start with x_) and carry no parameters, so they fit SQLAlchemy
text and psycopg queries alike.

`at`, where taken, is an SQL expression of an instant (a query parameter): the derivation then
sees only the rows recorded by then — what was current at that instant."""

from scoring.model import FindingStatus


def recorded_by(alias: str, at: str | None) -> str:
    """`AND alias recorded at or before at` (nothing when `at` is None)."""
    return "" if at is None else f" AND {alias}.recorded_at <= {at}"


def company_name(company: str, at: str | None = None) -> str:
    """The company's latest registered name (its credit code while it has none)."""
    return (
        f"coalesce((SELECT x_cv.name FROM company_version x_cv "
        f"WHERE x_cv.company_id = {company}.id{recorded_by('x_cv', at)} "
        f"ORDER BY x_cv.id DESC LIMIT 1), {company}.credit_code)"
    )


def finding_counts(finding: str, at: str | None = None) -> str:
    """The finding still counts: no later event (VOIDED by a rescoring, OVERTURNED by an appeal,
    REPAIRED by a credit repair) ended it. One pending appeal leaves it counting."""
    return (
        f"NOT EXISTS (SELECT 1 FROM finding_event x_fe WHERE x_fe.finding_id = {finding}.id"
        f"{recorded_by('x_fe', at)})"
    )


def under_appeal(finding: str, at: str | None = None) -> str:
    """An appeal against the finding awaits its decision."""
    return (
        f"EXISTS (SELECT 1 FROM appeal x_ap WHERE x_ap.finding_id = {finding}.id"
        f"{recorded_by('x_ap', at)} AND NOT EXISTS (SELECT 1 FROM appeal_decision x_ad "
        f"WHERE x_ad.appeal_id = x_ap.id{recorded_by('x_ad', at)}))"
    )


def finding_end(finding: str, ended: str) -> str:
    """A join that names `ended` the event that stopped the finding counting (kind, reason,
    recorded_at), all null while it counts."""
    return (
        "LEFT JOIN LATERAL (SELECT x_fe.kind, x_fe.reason, x_fe.recorded_at FROM finding_event x_fe "
        f"WHERE x_fe.finding_id = {finding}.id ORDER BY x_fe.id LIMIT 1) {ended} ON true"
    )


def finding_status(finding: str, ended: str) -> str:
    """ACTIVE, UNDER_APPEAL (both count), or the kind of the event that stopped it counting
    (`ended`, joined by `finding_end`)."""
    return (
        f"coalesce({ended}.kind, CASE WHEN {under_appeal(finding)} "
        f"THEN '{FindingStatus.UNDER_APPEAL}' ELSE '{FindingStatus.ACTIVE}' END)"
    )


def latest_version(table: str, alias: str, key: str) -> str:
    """`alias` is the latest version of its identity: no later row of the same `key` exists."""
    return (
        f"NOT EXISTS (SELECT 1 FROM {table} x_newer "
        f"WHERE x_newer.{key} = {alias}.{key} AND x_newer.id > {alias}.id)"
    )
