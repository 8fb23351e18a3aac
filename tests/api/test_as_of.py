"""As-of answers: `eligibilities(asOf: T)` answers exactly what was answered at T.

A hypothesis state machine runs random sequences of what changes standings — pulls from the
stand-in platform (then rollup and scoring), scoring runs, reviewers' inspections, appeals,
listing expiries and credit repairs — and after each step asks for every company's decision on
every application kind, noting the instant. At the end, the same questions as of each noted
instant must get the same answers, field for field."""

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from api.context import Services, request_context
from api.schema import build_schema
from jobs.ingest import pull
from jobs.rollup import run_rollup
from jobs.scoring_run import run_listing_expiry, run_scoring
from registry import actions, db
from registry.auth import Client
from registry.current import finding_counts
from registry.vocabulary import Role
from scoring.rulebook import load_rulebook
from tests.conftest import drop_database, new_database
from tests.jobs.ingest_sim import monitorsim

START = datetime(2025, 12, 1, tzinfo=UTC)
KINDS = ("PROJECT_FILING", "WATER_PERMIT", "MINING_RIGHT", "ENVIRONMENTAL_ASSESSMENT", "NEW_WELL")
ANSWERS = """
query($requests: [EligibilityRequest!]!, $asOf: DateTime) {
  eligibilities(requests: $requests, asOf: $asOf) {
    creditCode company { id name } decision grade score conditions restrictedUntil asOf
    rulebookVersion reasons { code message ruleId policyClause evidence }
  }
}
"""
ADMIN = Client(1, "as-of test", Role.ADMIN)
SCHEMA = build_schema()


@pytest.fixture(scope="module")
def platform():
    with monitorsim("--scenario", "demo", "--start", "2025-12-01", "--days", "50",
                    "--now", START.isoformat()) as url:  # fmt: skip
        yield url


async def _answers(url: str, codes: list[str], now: datetime, as_of: datetime | None) -> list:
    services = Services.for_database(url, pool_size=2)
    try:
        context = request_context(services, ADMIN, "as-of test", now=now)
        requests = [{"creditCode": c, "kind": k} for c in codes for k in KINDS]
        variables = {"requests": requests, "asOf": None if as_of is None else as_of.isoformat()}
        result = await SCHEMA.execute(ANSWERS, variables, context_value=context)
        assert result.errors is None, result.errors
        return result.data["eligibilities"]
    finally:
        await services.engine.dispose()


async def _act(url: str, now: datetime, action, data: dict) -> None:
    engine = db.make_async_engine(url, pool_size=1)
    try:
        acting = actions.Acting(ADMIN, db.session_factory(engine), load_rulebook(), now)
        with contextlib.suppress(actions.Refused):  # e.g. a repair before the minimum period
            await action(acting, data)
    finally:
        await engine.dispose()


class AsOfMachine(RuleBasedStateMachine):
    platform_url: str = ""
    admin_url: str = ""
    template: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.url = new_database(self.admin_url, self.template)
        self.engine = db.make_engine(self.url)
        self.clock = START  # the platform's and the scoring's time
        self.noted: list[tuple[datetime, list]] = []

    # ------------------------------------------------------------------ steps

    @initialize()
    def first_pull(self) -> None:
        self._pull(timedelta(days=3))

    @rule(days=st.integers(1, 20))
    def pull_roll_up_and_score(self, days: int) -> None:
        self._pull(timedelta(days=days))

    @rule()
    def score_everything(self) -> None:
        run_scoring(self.engine, everything=True, now=self.clock)
        self._note()

    @rule(pick=st.integers(0, 10**6), severity=st.sampled_from(["MINOR", "MAJOR", "CRITICAL"]))
    def inspect(self, pick: int, severity: str) -> None:
        code = self._codes()[pick % len(self._codes())]
        data = {
            "credit_code": code,
            "inspected_on": self.clock.date(),
            "inspector": "task force",
            "findings": [{"severity": severity, "description": "回灌井未运行"}],
        }
        asyncio.run(_act(self.url, self.clock, actions.record_inspection, data))
        self._note()

    @precondition(lambda self: self._counting_findings())
    @rule(pick=st.integers(0, 10**6), overturn=st.booleans())
    def appeal(self, pick: int, overturn: bool) -> None:
        findings = self._counting_findings()
        finding_id = findings[pick % len(findings)]
        opened = {"finding_id": finding_id, "grounds": "the meter was being replaced"}
        asyncio.run(_act(self.url, self.clock, actions.open_appeal, opened))
        with self.engine.connect() as conn:
            appeal_id = conn.scalar(
                sa.text("SELECT max(id) FROM appeal WHERE finding_id = :f"), {"f": finding_id}
            )
        if appeal_id is not None:
            decided = {"appeal_id": appeal_id, "overturn": overturn, "reason": "reviewed"}
            asyncio.run(_act(self.url, self.clock, actions.decide_appeal, decided))
        self._note()

    @rule(days=st.integers(30, 1200))
    def time_passes_and_listings_expire(self, days: int) -> None:
        self.clock += timedelta(days=days)
        run_listing_expiry(self.engine, now=self.clock)
        self._note()

    @precondition(lambda self: self._open_listings())
    @rule(pick=st.integers(0, 10**6), approve=st.booleans())
    def credit_repair(self, pick: int, approve: bool) -> None:
        listings = self._open_listings()
        listing_id = listings[pick % len(listings)]
        request = {"listing_id": listing_id, "statement": "reinjection wells repaired"}
        asyncio.run(_act(self.url, self.clock, actions.request_repair, request))
        with self.engine.connect() as conn:
            repair_id = conn.scalar(
                sa.text("SELECT max(id) FROM credit_repair WHERE listing_id = :l"),
                {"l": listing_id},
            )
        if repair_id is not None:
            decided = {"repair_id": repair_id, "approve": approve, "reason": "checked on site"}
            asyncio.run(_act(self.url, self.clock, actions.decide_repair, decided))
        self._note()

    def teardown(self) -> None:
        try:
            codes = self._codes()
            for instant, answered in self.noted:
                again = asyncio.run(_answers(self.url, codes, datetime.now(UTC), instant))
                assert again == answered, f"as of {instant.isoformat()}"
        finally:
            self.engine.dispose()
            drop_database(self.admin_url, self.url)

    # ------------------------------------------------------------------ helpers

    def _pull(self, step: timedelta) -> None:
        self.clock += step
        httpx.post(f"{self.platform_url}/clock", json={"now": self.clock.isoformat()}, timeout=30)
        asyncio.run(pull(self.url, self.platform_url, now=self.clock))
        run_rollup(self.engine)
        run_scoring(self.engine, now=self.clock)
        self._note()

    def _note(self) -> None:
        """Every company's answers now, and the instant they were given at."""
        instant = datetime.now(UTC)
        self.noted.append((instant, asyncio.run(_answers(self.url, self._codes(), instant, None))))

    def _codes(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.scalars(sa.text("SELECT credit_code FROM company ORDER BY id")))

    def _counting_findings(self) -> list[int]:
        with self.engine.connect() as conn:
            return list(
                conn.scalars(
                    sa.text(
                        f"SELECT f.id FROM credit_finding f WHERE {finding_counts('f')} "
                        "AND NOT EXISTS (SELECT 1 FROM appeal a WHERE a.finding_id = f.id) "
                        "ORDER BY f.id"
                    )
                )
            )

    def _open_listings(self) -> list[int]:
        with self.engine.connect() as conn:
            return list(
                conn.scalars(
                    sa.text(
                        "SELECT l.id FROM listing l WHERE NOT EXISTS "
                        "(SELECT 1 FROM listing_end e WHERE e.listing_id = l.id) ORDER BY l.id"
                    )
                )
            )


def test_answers_as_of_any_noted_instant_are_the_answers_given_then(
    platform, pg_admin_url, template_db
):
    AsOfMachine.platform_url = platform
    AsOfMachine.admin_url = pg_admin_url
    AsOfMachine.template = template_db
    run = AsOfMachine.TestCase
    run.settings = settings(
        max_examples=3,
        stateful_step_count=8,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    run().runTest()


async def test_a_future_as_of_is_an_error(db_url):
    future = datetime.now(UTC) + timedelta(minutes=5)
    services = Services.for_database(db_url, pool_size=1)
    try:
        context = request_context(services, ADMIN, "as-of test")
        query = 'query($t: DateTime) { eligibility(creditCode: "91350100M000100Y43", ' + (
            "kind: WATER_PERMIT, asOf: $t) { decision } }"
        )
        for t in (future.isoformat(), "2026-01-01T00:00:00"):
            result = await SCHEMA.execute(query, {"t": t}, context_value=context)
            assert [e.extensions["code"] for e in result.errors] == ["INVALID_AS_OF"], t
    finally:
        await services.engine.dispose()


async def test_before_a_company_was_filed_there_was_no_credit_file(db_url, engine):
    before = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO company (credit_code) VALUES ('91350100M000100Y43')"))
    now = await _answers(db_url, ["91350100M000100Y43"], datetime.now(UTC), None)
    then = await _answers(db_url, ["91350100M000100Y43"], datetime.now(UTC), before)
    assert {a["reasons"][0]["code"] for a in now} == {"NOT_YET_SCORED"}
    assert {a["reasons"][0]["code"] for a in then} == {"NO_CREDIT_FILE"}
