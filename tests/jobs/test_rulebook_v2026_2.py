"""Rulebook v2026.2 on real PostgreSQL, through the Things sync, stored meter data, rollup and
scoring run to the answer an approval system gets: each case of what v2026.1 got wrong, the
policy clause it concerns, and that scoring again changes nothing.

Each test has a database of its own (outage slots depend on every project in it).
"""

import asyncio
from datetime import UTC, date, datetime

import pytest

from jobs import ingest
from monitorsim.config import DATA_FAULT_KINDS, Config, local_midnight
from monitorsim.generator import World as Simulated
from monitorsim.server import run_in_thread
from registry.creditcode import check_char
from registry.db import make_engine
from scoring.model import DecisionKind, Grade
from tests.conftest import drop_database, new_database
from tests.jobs.ingest_sim import assert_matches_truth
from tests.jobs.metrics_world import local
from tests.jobs.registry_world import Registry, Site, doublet, graphql

NOV, DEC, JAN = date(2025, 11, 1), date(2025, 12, 1), date(2026, 1, 1)
SEASON_START = date(2025, 11, 15)  # 运城: 15 Nov – 15 Mar


def code(n: int) -> str:
    first17 = f"91140800MA{n:07d}"
    return first17 + check_char(first17)


@pytest.fixture
def registry(pg_admin_url, template_db):
    url = new_database(pg_admin_url, template_db)
    engine = make_engine(url)
    yield Registry(url, engine)
    engine.dispose()
    drop_database(pg_admin_url, url)


def compliant(reg: Registry, first: date, last: date, n: int = 3) -> None:
    """Companies reinjecting all they take, metered every slot, reporting on time: they keep
    the platform's days from being outage days (one silent project among them is not)."""
    for i in range(n):
        site = doublet(code(900 + i), f"OK-{i}")
        reg.sync(site.things())
        reg.zones(site.project)
        reg.permit(site.project, annual=1e7, daily=1e5)
        reg.meter(f"{site.project}-E1", "extraction_volume", first, last, 10.0)
        reg.meter(f"{site.project}-R1", "reinjection_volume", first, last, 10.0)
        reg.reports(site.project, [NOV, DEC])


def unchanged_by_rescoring(reg: Registry, now: datetime) -> None:
    before = reg.counts()
    reg.roll_up_and_score(now)
    reg.roll_up_and_score(now)
    assert reg.counts() == before


# --------------------------------------------------------------------------------- case 1


@pytest.mark.parametrize("change", ["operating", "type"])
def test_a_later_registry_change_never_rewrites_a_month_before_it(registry, change):
    """二(二)6 (NO_METERING): a MEDIUM_DEEP project silent on its reinjection meter all December
    is listed; its wells later reported not operating (or its type changed) by the platform do
    not void December's finding or the listing: the change takes effect from its sync."""
    reg = registry
    compliant(reg, SEASON_START, date(2026, 1, 9))
    site = doublet(code(2), "SILENT")
    reg.sync(site.things())
    reg.zones(site.project)
    reg.permit(site.project, annual=1e7, daily=1e5)
    reg.reports(site.project, [NOV, DEC])
    reg.meter("SILENT-E1", "extraction_volume", SEASON_START, date(2026, 1, 7), 10.0)
    reg.watermark(local(2026, 1, 5, 12))
    reg.roll_up_and_score(local(2026, 1, 5, 13))

    found = reg.findings(site.credit_code)
    december = found["NO_METERING:SILENT:2025-12"]
    assert (december.severity, december.final, december.policy_clause) == ("CRITICAL", True,
                                                                           "二(二)6")  # fmt: skip
    (listing,) = reg.listings(site.credit_code)
    assert reg.answer(site.credit_code, local(2026, 1, 5, 13)).decision is DecisionKind.BLOCK

    synced = local(2026, 1, 8, 10)
    if change == "operating":
        reg.sync(site.things(operating=False), synced_at=synced)
    else:
        reg.sync(site.things(type="CLOSED_LOOP"), synced_at=synced)
    (version,) = reg.meters.rows(
        "SELECT v.effective_from FROM project_version v JOIN project p ON p.id = v.project_id "
        "WHERE p.code = 'SILENT' ORDER BY v.id DESC LIMIT 1"
    )
    assert version.effective_from == synced
    reg.watermark(local(2026, 1, 10, 12))
    now = local(2026, 1, 10, 13)
    reg.roll_up_and_score(now)

    assert reg.findings(site.credit_code)["NO_METERING:SILENT:2025-12"].id == december.id
    assert [row.id for row in reg.listings(site.credit_code)] == [listing.id]
    answer = reg.answer(site.credit_code, now)
    assert (answer.decision, answer.grade) == (DecisionKind.BLOCK, Grade.D)
    assert answer.restricted_until == listing.min_end
    # January: each day with its facts — metered as operating (MEDIUM_DEEP) up to the sync's
    # day, 8 Jan; its meter sent until the 7th
    (jan,) = reg.meters.rows(
        "SELECT m.* FROM project_month_metric m JOIN project p ON p.id = m.project_id "
        "WHERE p.code = 'SILENT' AND m.month = :m",
        m=JAN,
    )
    assert jan.evaluated and jan.extraction_completeness == 7 / 8
    if change == "type":
        assert jan.scope_end == local(2026, 1, 9) and jan.project_type == "MEDIUM_DEEP"
    unchanged_by_rescoring(reg, now)


# --------------------------------------------------------------------------------- case 4


@pytest.mark.parametrize("extraction", [False, True])
def test_a_project_whose_wells_are_all_flagged_not_operating(registry, extraction):
    """二(二)6: a project flagged operating whose wells are all flagged not operating is not
    operating — its metering rules are listed as not evaluated (NO_OPERATING_WELLS) — unless it
    reports extraction: data overrides a flag, and its silent reinjection meter is then
    NO_METERING (CRITICAL)."""
    reg = registry
    compliant(reg, SEASON_START, date(2026, 1, 6))
    site = doublet(code(4), "IDLE")
    for w in site.wells:
        w.operating = False
    reg.sync(site.things())
    reg.register(site, effective_from=local(2025, 11, 1), operating=True)  # the admin says so
    reg.zones(site.project)
    reg.permit(site.project, annual=1e7, daily=1e5)
    reg.reports(site.project, [NOV, DEC])
    if extraction:
        reg.meter("IDLE-E1", "extraction_volume", date(2025, 12, 1), date(2025, 12, 31), 10.0)
    reg.watermark(local(2026, 1, 5, 12))
    now = local(2026, 1, 5, 13)
    reg.roll_up_and_score(now)

    answer = reg.answer(site.credit_code, now)
    found = reg.findings(site.credit_code)
    if extraction:
        december = found["NO_METERING:IDLE:2025-12"]
        assert december.evidence["streams_without_data"] == ["reinjection"]
        assert (answer.decision, answer.grade) == (DecisionKind.BLOCK, Grade.D)
        assert reg.listings(site.credit_code)
    else:
        assert found == {} and not reg.listings(site.credit_code)
        assert (answer.decision, answer.grade) == (DecisionKind.ALLOW, Grade.A)
        [reason] = [r for r in answer.reasons if r.code == "NOT_EVALUATED"]
        rules = {(r["ruleId"], r["why"]): r for r in reason.evidence["rules"]}
        assert rules["NO_METERING", "NO_OPERATING_WELLS"] == {
            "ruleId": "NO_METERING", "why": "NO_OPERATING_WELLS", "projects": 1, "months": 3,
        }  # fmt: skip
        assert ("METERING_GAP", "NO_OPERATING_WELLS") in rules
    unchanged_by_rescoring(reg, now)


# --------------------------------------------------------------------------------- case 5

CREDIT_FILE = """query($c: String!) { company(creditCode: $c) {
    notEvaluated { projectCode ruleId why reason windowStart windowEnd } } }"""
ELIGIBILITY = """query($c: String!) { eligibility(creditCode: $c, kind: WATER_PERMIT) {
    decision grade reasons { code message evidence } } }"""


def test_what_was_not_evaluated_reaches_the_credit_file_and_eligibility(registry):
    """二(三)1 (EXTRACTION_CAP) needs the water permit's limits: without a permit registered the
    rule is not evaluated, the credit file lists it per month and a decision carries one
    NOT_EVALUATED reason; once a permit is recorded, nothing is left unevaluated."""
    reg = registry
    compliant(reg, SEASON_START, date(2026, 1, 6))
    site = doublet(code(5), "NOPERMIT")
    reg.sync(site.things())
    reg.zones(site.project)
    reg.reports(site.project, [NOV, DEC])
    reg.meter("NOPERMIT-E1", "extraction_volume", SEASON_START, date(2026, 1, 5), 10.0)
    reg.meter("NOPERMIT-R1", "reinjection_volume", SEASON_START, date(2026, 1, 5), 10.0)
    reg.watermark(local(2026, 1, 5, 12))
    now = local(2026, 1, 5, 13)
    reg.roll_up_and_score(now)

    items = graphql(reg.url, CREDIT_FILE, {"c": site.credit_code}, now)["company"]["notEvaluated"]
    assert {(i["ruleId"], i["why"], i["windowStart"]) for i in items} == {
        ("EXTRACTION_CAP", "REGISTRY_FACT_MISSING", m.isoformat()) for m in (NOV, DEC, JAN)
    }
    assert {i["reason"] for i in items} == {
        "no water permit annual total or daily intensity registered"
    }
    answer = graphql(reg.url, ELIGIBILITY, {"c": site.credit_code}, now, "approval_system")
    answer = answer["eligibility"]
    assert (answer["decision"], answer["grade"]) == ("ALLOW", "A")
    [reason] = [r for r in answer["reasons"] if r["code"] == "NOT_EVALUATED"]
    assert reason["evidence"] == {"rules": [
        {"ruleId": "EXTRACTION_CAP", "why": "REGISTRY_FACT_MISSING", "projects": 1, "months": 3}
    ]}  # fmt: skip
    assert "EXTRACTION_CAP（登记信息缺失：1 个项目、3 个月）" in reason["message"]
    unchanged_by_rescoring(reg, now)

    reg.permit(site.project, annual=1e7, daily=1e5)  # the first permit: in force from the start
    reg.roll_up_and_score(now)
    answer = graphql(reg.url, ELIGIBILITY, {"c": site.credit_code}, now, "approval_system")
    assert [r["code"] for r in answer["eligibility"]["reasons"]] == ["GRADE"]
    assert graphql(reg.url, CREDIT_FILE, {"c": site.credit_code}, now)["company"] == {
        "notEvaluated": []
    }


# --------------------------------------------------------------------------------- case 6


def test_water_level_compares_with_the_previous_seasons_stored_levels(registry):
    """三 (以灌定采): the 2025-26 heating season's mean depth to water, 2.5 m below the 2024-25
    season's (stored before applies_from), is a WATER_LEVEL warning; a project without a
    previous season is listed as not evaluated (NO_PREVIOUS_SEASON)."""
    reg = registry
    compliant(reg, SEASON_START, date(2026, 1, 6))
    sites = [doublet(code(6), "LEVEL", level=True), doublet(code(6), "NEW", level=True)]
    for site in sites:
        reg.sync(site.things())
        reg.zones(site.project)
        reg.permit(site.project, annual=1e7, daily=1e5)
        reg.reports(site.project, [NOV, DEC])
        last = date(2026, 1, 5)
        reg.meter(f"{site.project}-E1", "extraction_volume", SEASON_START, last, 10.0)
        reg.meter(f"{site.project}-R1", "reinjection_volume", SEASON_START, last, 10.0)
        reg.meter(f"{site.project}-E1", "water_level", SEASON_START, last, 42.5)
    # the season before applies_from: levels stored for some of its days only
    reg.meter("LEVEL-E1", "water_level", date(2024, 12, 1), date(2024, 12, 3), 40.0)
    reg.watermark(local(2026, 1, 5, 12))
    now = local(2026, 1, 5, 13)
    reg.roll_up_and_score(now)

    found = reg.findings(code(6))
    warning = found["WATER_LEVEL:LEVEL:2025-26"]
    assert (warning.severity, warning.deduction, warning.policy_clause) == ("WARNING", 0, "三")
    assert warning.evidence["previous_mean_depth_m"] == 40.0
    assert warning.evidence["mean_depth_m"] == 42.5 and warning.evidence["rise_m"] == 2.5
    assert "2025-26 供暖期平均水位埋深 42.50 m" in warning.message
    assert not any(k.startswith("WATER_LEVEL:NEW") for k in found)
    answer = reg.answer(code(6), now)
    assert (answer.decision, answer.grade, answer.score) == (DecisionKind.ALLOW, Grade.A, 100.0)
    assert not reg.listings(code(6))
    [reason] = [r for r in answer.reasons if r.code == "NOT_EVALUATED"]
    assert reason.evidence == {"rules": [
        {"ruleId": "WATER_LEVEL", "why": "NO_PREVIOUS_SEASON", "projects": 1, "months": 3}
    ]}  # fmt: skip
    unchanged_by_rescoring(reg, now)


# --------------------------------------------------------------------------------- case 7


def test_year_to_date_extraction_counts_from_applies_from(registry):
    """二(三)1 (EXTRACTION_CAP): 107,520 m³ taken on 1–14 Nov 2025, before the rulebook applies,
    do not count towards the permit's 100,000 m³ a year: 22,560 m³ from 15 Nov on do."""
    reg = registry
    compliant(reg, SEASON_START, date(2026, 1, 6))
    site = doublet(code(7), "YTD")
    reg.sync(site.things())
    reg.zones(site.project)
    reg.permit(site.project, annual=100_000, daily=10_000)
    reg.reports(site.project, [NOV, DEC])
    for well, indicator in (("YTD-E1", "extraction_volume"), ("YTD-R1", "reinjection_volume")):
        reg.meter(well, indicator, date(2025, 11, 1), date(2025, 11, 14), 80.0)  # 7,680 m³/d
        reg.meter(well, indicator, SEASON_START, date(2026, 1, 5), 5.0)  # 480 m³/d
    reg.watermark(local(2026, 1, 5, 12))
    now = local(2026, 1, 5, 13)
    reg.roll_up_and_score(now)

    (dec,) = reg.meters.rows(
        "SELECT m.* FROM project_month_metric m JOIN project p ON p.id = m.project_id "
        "WHERE p.code = 'YTD' AND m.month = :m",
        m=DEC,
    )
    assert dec.final and dec.ytd_extraction_m3 == 47 * 480  # 15 Nov – 31 Dec
    assert not [k for k in reg.findings(site.credit_code) if k.startswith("EXTRACTION_CAP")]
    answer = reg.answer(site.credit_code, now)
    assert (answer.decision, answer.grade, answer.score) == (DecisionKind.ALLOW, Grade.A, 100.0)
    assert not reg.listings(site.credit_code)
    unchanged_by_rescoring(reg, now)


# --------------------------------------------------------------------------------- case 8

NOW_UTC = datetime(2026, 1, 31, 20, 0, tzinfo=UTC)  # 1 Feb 2026, 04:00 in Shanghai


def _zoned(reg: Registry, n: int, drilled: date) -> Site:
    site = doublet(code(n), f"ZONE-{n}")
    reg.sync(site.things())
    reg.drilled(site, drilled)
    reg.zones(site.project, in_spring_protection_zone=True)
    reg.permit(site.project, annual=1e7, daily=1e5)
    reg.reports(site.project, [NOV, DEC])
    for well, indicator in ((f"ZONE-{n}-E1", "extraction_volume"),
                            (f"ZONE-{n}-R1", "reinjection_volume")):  # fmt: skip
        reg.meter(well, indicator, SEASON_START, date(2026, 1, 30), 10.0)
    return site


def test_zone_ban_applies_to_projects_built_since_and_dates_shown_are_local(registry):
    """二(三)1 bans *building* in a spring protection zone: a project drilled in 2019 gets the
    LEGACY_IN_BANNED_ZONE warning and key supervision, one drilled in January 2026 ZONE_BAN
    (CRITICAL) and a listing whose periods — 12 and 36 months — end at 24:00 local time, every
    date people read being the local one (the run is at 20:00 UTC on 31 Jan)."""
    reg = registry
    compliant(reg, SEASON_START, date(2026, 1, 30))
    old, new = _zoned(reg, 81, date(2019, 5, 1)), _zoned(reg, 82, date(2026, 1, 5))
    reg.watermark(local(2026, 1, 31, 12))
    reg.roll_up_and_score(NOW_UTC)

    [legacy] = reg.findings(old.credit_code).values()
    assert (legacy.rule_id, legacy.severity, legacy.deduction) == (
        "LEGACY_IN_BANNED_ZONE",
        "WARNING",
        0,
    )
    assert "于 2019-05-01 建成" in legacy.message
    answer = reg.answer(old.credit_code, NOW_UTC)
    assert (answer.decision, answer.grade, answer.score) == (DecisionKind.ALLOW, Grade.A, 100.0)
    assert not reg.listings(old.credit_code)
    supervised = graphql(
        reg.url, "{ supervisionList(first: 10) { edges { node { creditFile { creditCode } } } } }",
        {}, NOW_UTC,
    )["supervisionList"]["edges"]  # fmt: skip
    assert [e["node"]["creditFile"]["creditCode"] for e in supervised] == [
        old.credit_code, new.credit_code,
    ]  # fmt: skip

    banned = reg.findings(new.credit_code)["ZONE_BAN:ZONE-82:SPRING_PROTECTION"]
    assert (banned.severity, banned.policy_clause) == ("CRITICAL", "二(三)1")
    (listing,) = reg.listings(new.credit_code)
    assert listing.critical and listing.started_at == NOW_UTC
    assert (listing.min_end, listing.max_end) == (local(2027, 2, 2), local(2029, 2, 2))
    assert "最短期限至 2027-02-01 24 时" in listing.reason
    assert "最迟于 2029-02-01 24 时" in listing.reason
    answer = reg.answer(new.credit_code, NOW_UTC)
    assert (answer.decision, answer.grade) == (DecisionKind.BLOCK, Grade.D)
    assert answer.restricted_until == local(2027, 2, 2)
    [listed] = [r for r in answer.reasons if r.code == "LISTED"]
    assert "自 2026-02-01 起" in listed.message
    assert "最短期限至 2027-02-01 24 时" in listed.message
    assert "2026-01-31" not in listed.message  # the UTC date of the run
    unchanged_by_rescoring(reg, NOW_UTC)


def test_a_score_based_listing_ends_after_12_months_and_reopens_if_still_d(registry):
    """三 (失信, national credit-repair rules: ordinary 失信 3 months to 1 year): a company graded
    D by its score is listed for at least 6 months, at most 12; still D then, it is listed
    again, with new periods."""
    reg = registry
    compliant(reg, SEASON_START, date(2026, 1, 31))
    site = doublet(code(83), "SCORE")
    reg.sync(site.things())
    reg.zones(site.project)
    reg.permit(site.project, annual=1e7, daily=1e5)
    reg.reports(site.project, [NOV, DEC, JAN])
    for well, indicator in (("SCORE-E1", "extraction_volume"), ("SCORE-R1", "reinjection_volume")):
        reg.meter(well, indicator, SEASON_START, date(2026, 1, 30), 10.0)
    reg.inspect(site.credit_code, date(2026, 1, 20), "MAJOR", "MAJOR", "MAJOR")  # −40 (cap)
    reg.evaluate(site.project, date(2026, 1, 21), "FAIL")  # −30: 30, D by score
    reg.watermark(local(2026, 1, 31, 12))
    reg.roll_up_and_score(NOW_UTC)
    answer = reg.answer(site.credit_code, NOW_UTC)
    assert answer.grade is Grade.D and answer.decision is DecisionKind.BLOCK
    (first,) = reg.listings(site.credit_code)
    assert not first.critical
    assert (first.min_end, first.max_end) == (local(2026, 8, 2), local(2027, 2, 2))

    later = local(2027, 2, 2)  # 1 Feb 2027, 24:00
    reg.roll_up_and_score(later)
    ended, reopened = reg.listings(site.credit_code, active=False)
    assert (ended.id, ended.how) == (first.id, "EXPIRED")
    assert reopened.how is None and not reopened.critical
    assert (reopened.min_end, reopened.max_end) == (local(2027, 8, 3), local(2028, 2, 3))
    assert reg.answer(site.credit_code, later).decision is DecisionKind.BLOCK
    unchanged_by_rescoring(reg, later)


# ----------------------------------------------------- case 1, through the simulated platform


def test_a_registry_change_the_platform_reports_mid_season(registry):
    """二(二)6 (NO_REINJECTION): the simulated platform's company that reinjects nothing is
    listed on December's CRITICAL finding; on 8 Jan the platform starts reporting its wells not
    operating and its project a closed loop (and its meters go silent). The pull that syncs
    that on 12 Jan changes the registry from then: December keeps its finding and the listing."""
    reg = registry
    quiet = dict(
        scenario="demo", start=local_midnight(date(2025, 12, 1)), wall_clock=False,
        data_faults=dict.fromkeys(DATA_FAULT_KINDS, 0.0), outage_hours=0,
    )  # fmt: skip
    roster = Simulated(Config(**quiet, days=1))
    [company] = [c for c in roster.companies if c.role == "no_reinjection"]
    [project] = company.projects
    change = {"at": local(2026, 1, 8), "project": project.code, "operating": False,
              "projectType": "CLOSED_LOOP"}  # fmt: skip
    config = Config(
        **quiet, end=local_midnight(date(2026, 1, 13)), now=local(2026, 1, 5, 12),
        registry_changes=[change],
    )  # fmt: skip
    base, stop, app = run_in_thread(config)
    try:
        asyncio.run(ingest.pull(reg.url, base, now=local(2026, 1, 5, 12)))
        reg.roll_up_and_score(local(2026, 1, 5, 13))
        december = reg.findings(company.credit_code)[f"NO_REINJECTION:{project.code}:2025-12"]
        assert (december.severity, december.final) == ("CRITICAL", True)
        (listing,) = reg.listings(company.credit_code)

        app.clock.frozen = local(2026, 1, 12, 12).timestamp()
        synced = local(2026, 1, 12, 12)
        asyncio.run(ingest.pull(reg.url, base, now=synced))
        assert_matches_truth(reg.url, app.truth())
    finally:
        stop()
    versions = reg.meters.rows(
        "SELECT v.type, v.operating, v.effective_from FROM project_version v "
        "JOIN project p ON p.id = v.project_id WHERE p.code = :c ORDER BY v.id",
        c=project.code,
    )
    assert [tuple(v) for v in versions] == [
        ("SHALLOW_WATER_SOURCE", True, None), ("CLOSED_LOOP", False, synced),
    ]  # fmt: skip
    now = local(2026, 1, 12, 13)
    reg.roll_up_and_score(now)
    assert reg.findings(company.credit_code)[december.key].id == december.id
    assert [row.id for row in reg.listings(company.credit_code)] == [listing.id]
    answer = reg.answer(company.credit_code, now)
    assert (answer.decision, answer.grade) == (DecisionKind.BLOCK, Grade.D)
    unchanged_by_rescoring(reg, now)


def test_an_admin_correction_in_the_past_judges_its_months_again(registry):
    """二(二)6: the registry said the project took water; an admin corrects it, from 1 Nov, to a
    closed loop (取热不取水). November and December — final — are judged again with the corrected
    facts: their NO_METERING findings are voided, the listing resting on them withdrawn, and the
    records say who corrected what, from when."""
    reg = registry
    compliant(reg, SEASON_START, date(2026, 1, 9))
    site = doublet(code(11), "WRONG")
    reg.sync(site.things())
    reg.zones(site.project)
    reg.permit(site.project, annual=1e7, daily=1e5)
    reg.reports(site.project, [NOV, DEC])
    reg.meter("WRONG-E1", "extraction_volume", SEASON_START, date(2026, 1, 7), 10.0)
    reg.watermark(local(2026, 1, 5, 12))
    reg.roll_up_and_score(local(2026, 1, 5, 13))
    before = reg.findings(site.credit_code)
    assert set(before) == {f"NO_METERING:WRONG:{m}" for m in ("2025-11", "2025-12", "2026-01")}
    december = before["NO_METERING:WRONG:2025-12"]
    (listing,) = reg.listings(site.credit_code)

    closed = Site(site.credit_code, site.project, type="CLOSED_LOOP", wells=site.wells)
    reg.register(closed, effective_from=local(2025, 11, 1))
    now = local(2026, 1, 6, 13)
    reg.roll_up_and_score(now)

    assert reg.findings(site.credit_code) == {}
    (voided,) = reg.meters.rows(
        "SELECT reason FROM finding_event WHERE finding_id = :f AND kind = 'VOIDED'", f=december.id
    )
    assert voided.reason.startswith("no longer found")
    ended = reg.listings(site.credit_code, active=False)
    assert [(row.id, row.how) for row in ended] == [(listing.id, "WITHDRAWN")]
    answer = reg.answer(site.credit_code, now)
    assert answer.decision is DecisionKind.ALLOW and answer.grade is Grade.A
    (version,) = reg.meters.rows(
        "SELECT v.type, v.source, v.effective_from, a.actor FROM project_version v "
        "JOIN project p ON p.id = v.project_id "
        "JOIN audit_log a ON a.table_name = 'project_version' AND a.row_id = v.id "
        "WHERE p.code = 'WRONG' AND v.type = 'CLOSED_LOOP' ORDER BY v.id LIMIT 1"
    )
    assert tuple(version) == ("CLOSED_LOOP", "admin:test", local(2025, 11, 1), "admin:test")
    unchanged_by_rescoring(reg, now)
