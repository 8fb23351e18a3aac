"""`geocredit demo`: the whole chain on the embedded default, in one command.

monitorsim (the platform stand-in, over HTTP) → pull → rollup → scoring → what the task force
records and the platform cannot know (inspections, post-evaluations, the monthly reports of the
companies that file them) → scoring again → a table of companies with grade and decision, an
approval-system token and a request to paste → the service (API + scheduler) until Ctrl-C.

Run again, it reuses its data: the pull reads only what is new and the task force's records are
made once (a company is not inspected twice for the same finding). `--reset` drops the embedded
database and starts afresh.
"""

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from registry import db, migrate
from registry.current import finding_counts, latest_version
from registry.settings import get_settings
from registry.vocabulary import InspectionSeverity, Role
from scoring.model import RESTRICTIVENESS, DecisionKind, Verdict

ACTOR = "demo"
KIND = "WATER_PERMIT"
CLIENT_NAME = "demo approval system"
TASK_FORCE = "省地热能开发利用专班"


class DemoRefused(Exception):
    """The demo will not run here; the message says why and what to do."""


class MonitorsimFailed(RuntimeError):
    pass


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
            raise MonitorsimFailed(f"monitorsim did not start (exit {proc.poll()})")
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


async def _task_force_records(url: str, today: date, reporting: dict[str, bool]) -> int:
    """What the task force would have found (the platform cannot know it): an on-site
    inspection where the monitoring shows no reinjection, a conditional post-evaluation where
    it shows too little, and the monthly reports of the companies that file them (`reporting`:
    credit code → files them). Only what the demo has not recorded before: a second run adds
    nothing twice."""
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
            inspected = set((await session.scalars(_INSPECTED, {"actor": ACTOR})).all())
            evaluated = set((await session.scalars(_EVALUATED, {"actor": ACTOR})).all())
            for code, project in none.items():
                if code in inspected:
                    continue
                await reviews.record_inspection(
                    session,
                    reviews.InspectionInput(
                        credit_code=code,
                        project_code=project,
                        inspected_on=today,
                        inspector=TASK_FORCE,
                        summary="现场核查回灌设施运行情况",
                        findings=[
                            reviews.InspectionFindingInput(
                                severity=InspectionSeverity.CRITICAL,
                                description="回灌井未运行，开采地热水未回灌即排放",
                            )
                        ],
                    ),
                    ACTOR,
                )
                written += 1
            for project in low.values():
                if project in evaluated:
                    continue
                await reviews.record_post_evaluation(
                    session,
                    reviews.PostEvaluationInput(
                        project_code=project,
                        evaluated_on=today,
                        verdict=Verdict.CONDITIONAL,
                        reviewer=TASK_FORCE,
                        summary="回灌率未达同层等量回灌要求，限期整改",
                    ),
                    ACTOR,
                )
                written += 1
            written += await _monthly_reports(session, today, reporting)
    finally:
        await engine.dispose()
    return written


_INSPECTED = sa.text(
    "SELECT DISTINCT c.credit_code FROM inspection i JOIN company c ON c.id = i.company_id "
    "WHERE i.recorded_by = :actor"
)
_EVALUATED = sa.text(
    "SELECT DISTINCT p.code FROM post_evaluation e JOIN project p ON p.id = e.project_id "
    "WHERE e.recorded_by = :actor"
)
_REPORTS = sa.text(
    f"""
    SELECT p.code, c.credit_code,
           ARRAY(SELECT r.month FROM monthly_report r WHERE r.project_id = p.id) AS reported
    FROM project p
    JOIN project_version v ON v.project_id = p.id
    JOIN company c ON c.id = v.company_id
    WHERE c.credit_code = ANY(:codes) AND {latest_version("project_version", "v", "project_id")}
    ORDER BY p.code
    """
)


async def _monthly_reports(session, today: date, reporting: dict[str, bool]) -> int:
    """Every project of the companies that file their reports: a report for each month from the
    rulebook's first month on, submitted on the 10th of the next month (on time), up to the
    last month whose report is due by now. Months reported already are skipped."""
    from registry import reviews
    from scoring import periods
    from scoring.rulebook import load_rulebook

    codes = [code for code, files in reporting.items() if files]
    if not codes:
        return 0
    month = periods.month_of(load_rulebook().applies_from)
    months = []
    while (submitted := periods.month_end(month) + timedelta(days=10)) <= today:
        months.append((month, submitted))
        month = periods.add_months(month, 1)
    written = 0
    for project in (await session.execute(_REPORTS, {"codes": codes})).all():
        done = set(project.reported)
        for month, submitted in months:
            if month in done:
                continue
            await reviews.record_monthly_report(
                session,
                reviews.MonthlyReportInput(
                    project_code=project.code, month=month, submitted_on=submitted
                ),
                ACTOR,
            )
            written += 1
    return written


def files_reports(platform_url: str) -> dict[str, bool]:
    """Credit code → whether the company files its monthly reports, from the stand-in's own
    description of its scenario (/scenario; the real platform knows nothing of reports)."""
    scenario = httpx.get(f"{platform_url}/scenario", timeout=30).raise_for_status().json()
    return {c["creditCode"]: bool(c.get("filesMonthlyReports")) for c in scenario["companies"]}


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
    return sorted(rows, key=lambda r: (-RESTRICTIVENESS[r.decision], r.score, r.credit_code))


# ---------------------------------------------------------------- whose database


def _state(engine: sa.Engine) -> str:
    """ "fresh" (no companies), "demo" (the demo ran here before) or "other" (a registry that is
    not the demo's: the demo will not add made-up companies to it)."""
    with engine.connect() as conn:
        demo = conn.scalar(
            sa.text("SELECT EXISTS (SELECT 1 FROM job_run WHERE window_key LIKE 'demo:%')")
        )
        companies = conn.scalar(sa.text("SELECT EXISTS (SELECT 1 FROM company)"))
    return "demo" if demo else ("other" if companies else "fresh")


def reset(url: str) -> Path | None:
    """Drop the embedded database and create it empty; move the audit checkpoints of the old
    chain aside (they would not hold for the new one). The file they went to, if any."""
    import psycopg

    settings = get_settings()
    if settings.database_url:
        raise DemoRefused(
            "--reset drops the database: the demo resets only the embedded one, and "
            "GEOCREDIT_DATABASE_URL is set"
        )
    name = make_url(url).database
    db.engine().dispose()  # this process's own connections first
    admin = db.libpq_url(make_url(url).set(database="postgres").render_as_string(False))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    from registry import audit

    checkpoints = settings.data_path / audit.CHECKPOINTS_FILE
    if not checkpoints.exists():
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    moved = checkpoints.with_name(f"{checkpoints.stem}-before-reset-{stamp}{checkpoints.suffix}")
    checkpoints.rename(moved)
    return moved


async def _new_token(url: str) -> tuple[str, int]:
    """A new approval-system token for the demo; the demo's earlier ones are revoked (each run
    prints its own). (token, how many were revoked)."""
    from registry import auth
    from registry.models import ApiClient

    engine = db.make_async_engine(url, pool_size=1)
    try:
        async with db.transaction(db.session_factory(engine), ACTOR) as session:
            earlier = (
                await session.scalars(
                    sa.select(ApiClient.id).where(
                        ApiClient.name == CLIENT_NAME, ApiClient.revoked_at.is_(None)
                    )
                )
            ).all()
            for client_id in earlier:
                await auth.revoke(session, client_id)
            _, token = await auth.create_client(session, CLIENT_NAME, Role.APPROVAL_SYSTEM)
    finally:
        await engine.dispose()
    return token, len(earlier)


def run(
    host: str,
    port: int,
    start_afresh: bool,
    status: Callable[[str], None],
    show: Callable[[list[Row], str, str, str], None],
    serve: Callable[[], None],
) -> None:
    from scoring import periods
    from scoring.rulebook import load_rulebook

    url = db.database_url()
    db.check_reachable(db.engine())
    if start_afresh:
        status("resetting: dropping the embedded database and starting afresh")
        moved = reset(url)
        if moved is not None:
            status(f"the old chain's audit checkpoints are kept in {moved}")
    status("migrating the database")
    migrate.upgrade(url)
    engine = db.engine()
    state = _state(engine)
    if state == "other":
        raise DemoRefused(
            "this database holds a registry that is not the demo's; run the demo on a data "
            "folder of its own (GEOCREDIT_DATA_DIR=… geocredit demo)"
        )
    if state == "demo":
        status(
            "reusing the demo data already in this database: only what is new is pulled and "
            "recorded (geocredit demo --reset starts afresh)"
        )
    with monitorsim() as platform_url:
        # The service's scheduler keeps pulling from the same stand-in.
        os.environ["GEOCREDIT_PLATFORM_URL"] = platform_url
        get_settings.cache_clear()
        status(f"pulling the monitoring feed from {platform_url} (about 650,000 rows at first)")
        pull(engine, url, platform_url)
        status("rolling up and scoring")
        score(engine)
        status("recording the task force's inspections, post-evaluations and monthly reports")
        today = periods.local_date(datetime.now(UTC), load_rulebook())
        written = asyncio.run(_task_force_records(url, today, files_reports(platform_url)))
        status(f"{written} new record(s)" + (", scoring again" if written else ""))
        if written:
            score(engine)
        rows = asyncio.run(_table(url))
        token, revoked = asyncio.run(_new_token(url))
        if revoked:
            status(f"revoked the demo's earlier approval-system token(s): {revoked}")
        blocked = next(
            (r.credit_code for r in rows if r.decision == DecisionKind.BLOCK), rows[0].credit_code
        )
        show(rows, token, f"http://{host}:{port}", blocked)
        serve()
