"""`geocredit demo`: the whole chain on the embedded default, in one command.

monitorsim (the platform stand-in, over HTTP) → pull → rollup → scoring → a few task-force
records the platform cannot know → scoring again → a table of companies with grade and decision,
an approval-system token and a request to paste → the service (API + scheduler) until Ctrl-C.
"""

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from registry import db, migrate
from registry.current import finding_counts
from registry.models import Role

ACTOR = "demo"
KIND = "WATER_PERMIT"


@contextmanager
def monitorsim(port: int = 0) -> Iterator[str]:
    """The platform stand-in in a process of its own; yields its service root."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitorsim", "serve", "--port", str(port), "--scenario", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        if not line.startswith("monitorsim serving "):
            raise RuntimeError(f"monitorsim did not start (exit {proc.poll()})")
        yield line.removeprefix("monitorsim serving ")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _recorded(engine: sa.Engine, job: str, work: Callable[[], dict]) -> None:
    """A hand-started run, locked and recorded in job_run like a scheduled one."""
    from jobs.runs import recorded_run

    key = "demo:" + datetime.now(UTC).isoformat(timespec="microseconds")
    with recorded_run(engine, job, key) as run:
        if run is None:
            raise RuntimeError(f"{job} is running in another process")
        run.counts = work()


def pull(engine: sa.Engine, url: str, platform_url: str) -> None:
    from jobs.ingest import pull as pull_feed

    def work() -> dict:
        result = asyncio.run(pull_feed(url, platform_url))
        return {"rows": result.rows, "stored": result.stored}

    _recorded(engine, "pull", work)


def score(engine: sa.Engine) -> None:
    from jobs.rollup import run_rollup
    from jobs.scoring_run import run_scoring

    _recorded(engine, "rollup", lambda: run_rollup(engine).counts())
    _recorded(engine, "score", lambda: run_scoring(engine, everything=True).counts())


_FINDINGS = sa.text(
    f"""
    SELECT DISTINCT c.credit_code, f.rule_id, p.code AS project_code
    FROM credit_finding f JOIN company c ON c.id = f.company_id
    LEFT JOIN project p ON p.id = f.project_id
    WHERE f.rule_id IN ('NO_REINJECTION', 'REINJ_RATIO') AND {finding_counts("f")}
    ORDER BY 1, 2
    """
)


async def _task_force_records(url: str, today) -> int:
    """What the task force would have found (the platform cannot know it): an on-site
    inspection where the monitoring shows no reinjection, a conditional post-evaluation where
    it shows too little."""
    from registry import reviews

    engine = db.make_async_engine(url, pool_size=1)
    written = 0
    try:
        async with db.transaction(db.session_factory(engine), ACTOR) as session:
            rows = (await session.execute(_FINDINGS)).all()
            none = {r.credit_code: r.project_code for r in rows if r.rule_id == "NO_REINJECTION"}
            low = {
                r.credit_code: r.project_code
                for r in rows
                if r.rule_id == "REINJ_RATIO" and r.credit_code not in none
            }
            for code, project in none.items():
                await reviews.record_inspection(
                    session,
                    reviews.InspectionInput(
                        credit_code=code,
                        project_code=project,
                        inspected_on=today,
                        inspector="省地热能开发利用专班",
                        summary="现场核查回灌设施运行情况",
                        findings=[
                            reviews.InspectionFindingInput(
                                severity="CRITICAL",
                                description="回灌井未运行，开采地热水未回灌即排放",
                            )
                        ],
                    ),
                    ACTOR,
                )
                written += 1
            for project in low.values():
                await reviews.record_post_evaluation(
                    session,
                    reviews.PostEvaluationInput(
                        project_code=project,
                        evaluated_on=today,
                        verdict="CONDITIONAL",
                        reviewer="省地热能开发利用专班",
                        summary="回灌率未达同层等量回灌要求，限期整改",
                    ),
                    ACTOR,
                )
                written += 1
    finally:
        await engine.dispose()
    return written


@dataclass
class Row:
    name: str
    credit_code: str
    grade: str
    score: str
    decision: str
    why: str


async def _table(url: str) -> list[Row]:
    """Every company's decision for a water permit, as the API answers it."""
    from registry.standing import load_standings
    from scoring.decision import decide
    from scoring.rulebook import load_rulebook

    rulebook, now = load_rulebook(), datetime.now(UTC)
    engine = db.make_async_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            codes = (await conn.scalars(sa.text("SELECT credit_code FROM company"))).all()
            filed = await load_standings(conn, codes, now)
    finally:
        await engine.dispose()
    rows = []
    for code, f in filed.items():
        d = decide(f.standing if f else None, KIND, rulebook, now)
        causes = [r.code for r in d.reasons if r.code not in ("GRADE", "STALE_SCORE")]
        rows.append(
            Row(
                name=f.name if f else "",
                credit_code=code,
                grade=d.grade.value if d.grade else "-",
                score=f"{d.score:.0f}" if d.score is not None else "-",
                decision=d.decision.value,
                why=", ".join(dict.fromkeys(causes)) or "-",
            )
        )
    order = {"BLOCK": 0, "RESTRICT": 1, "ALLOW": 2}
    return sorted(rows, key=lambda r: (order[r.decision], r.score, r.credit_code))


def run(
    host: str,
    port: int,
    status: Callable[[str], None],
    show: Callable[[list[Row], str, str, str], None],
    serve: Callable[[], None],
) -> None:
    from api.cli_service import create_token
    from registry.settings import get_settings

    url = db.database_url()
    db.check_reachable(db.engine())
    status("migrating the embedded database")
    migrate.upgrade(url)
    engine = db.engine()
    with monitorsim() as platform_url:
        # The service's scheduler keeps pulling from the same stand-in.
        os.environ["GEOCREDIT_PLATFORM_URL"] = platform_url
        get_settings.cache_clear()
        status(f"pulling the monitoring feed from {platform_url} (about 650,000 rows)")
        pull(engine, url, platform_url)
        status("rolling up and scoring")
        score(engine)
        status("recording the task force's inspections and post-evaluations")
        if asyncio.run(_task_force_records(url, datetime.now(UTC).date())):
            score(engine)
        rows = asyncio.run(_table(url))
        _, token = asyncio.run(
            create_token(url, Role.APPROVAL_SYSTEM, "demo approval system", ACTOR)
        )
        blocked = next((r.credit_code for r in rows if r.decision == "BLOCK"), rows[0].credit_code)
        show(rows, token, f"http://{host}:{port}", blocked)
        serve()
