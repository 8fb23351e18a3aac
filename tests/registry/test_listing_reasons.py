"""A listing's reasons survive their findings being recorded again: when later data changes a
finding's evidence (the old row voided, a new one added under the same key), a BLOCK still names
the finding behind the listing, with its rule, clause and new evidence."""

import asyncio
from datetime import UTC, datetime

import sqlalchemy as sa

from registry import rescoring
from registry.standing import load_standings
from scoring.decision import decide
from scoring.model import ApplicationKind
from scoring.rulebook import load_rulebook
from tests.api.console_sample import file_company
from tests.api.support import code

CODE = code(9401)


def _standing(db_url: str):
    from registry import db

    async def read():
        engine = db.make_async_engine(db_url, pool_size=1)
        try:
            async with engine.connect() as conn:
                return (await load_standings(conn, [CODE], datetime.now(UTC)))[CODE]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_a_listing_still_names_a_finding_recorded_again(engine, db_url):
    filed = file_company(
        engine, CODE, "阳泉测试热力有限公司", projects=1, marks={(0, 1): "critical"}
    )
    rulebook = load_rulebook()
    before = decide(
        _standing(db_url).standing, ApplicationKind.WATER_PERMIT, rulebook, datetime.now(UTC)
    )
    assert before.decision.value == "BLOCK"
    assert "NO_REINJECTION" in [r.code for r in before.reasons]

    # Late data for the same month: more extraction, still no reinjection to speak of.
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                """
                UPDATE project_month_metric
                SET layers = jsonb_set(layers, '{0,extraction_m3}', '45000'::jsonb)
                WHERE project_id = (SELECT project_id FROM project_version WHERE company_id = :c LIMIT 1)
                  AND month = :m
                """
            ),
            {"c": filed.company_id, "m": filed.months[-2]},
        )
        conn.execute(sa.text("SELECT set_config('geocredit.actor', 'scoring', true)"))
        summary = rescoring.rescore(
            conn, [filed.company_id], rulebook=rulebook, force_snapshot=True
        )
    assert summary.findings_voided >= 1 and summary.findings_added >= 1

    after = decide(
        _standing(db_url).standing, ApplicationKind.WATER_PERMIT, rulebook, datetime.now(UTC)
    )
    assert after.decision.value == "BLOCK"
    (reason,) = [r for r in after.reasons if r.code == "NO_REINJECTION"]
    assert reason.policy_clause == "二(二)6"
    assert reason.evidence["extraction_m3"] == 45000
