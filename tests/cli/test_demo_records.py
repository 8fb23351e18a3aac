"""What `geocredit demo` records for the task force, run twice: nothing twice (a company is not
inspected again, a month not reported again), so a second demo leaves every score as it was;
the companies that file their monthly reports can reach 100. And where the demo refuses to run."""

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime

import sqlalchemy as sa

from api import demo
from registry import rescoring
from scoring import periods
from scoring.rulebook import load_rulebook
from tests.api.console_sample import file_company
from tests.api.support import code, free_port

RULEBOOK = load_rulebook()
LISTED = code(9201)
REPORTING = code(9202)
SILENT = code(9203)


def scores(engine) -> dict[str, float]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                """SELECT DISTINCT ON (c.credit_code) c.credit_code, s.score
                   FROM score_snapshot s JOIN company c ON c.id = s.company_id
                   ORDER BY c.credit_code, s.computed_at DESC, s.id DESC"""
            )
        ).all()
    return dict(rows)


def rescore(engine, company_ids: list[int]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT set_config('geocredit.actor', 'scoring', true)"))
        assert not rescoring.rescore(conn, company_ids, rulebook=RULEBOOK).errors


def count(engine, sql: str) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.text(sql))


def test_records_are_made_once_and_reports_let_a_company_reach_100(engine, db_url):
    now = datetime.now(UTC)
    with engine.begin() as conn:  # data up to now: the reports of past months are due
        conn.execute(
            sa.text(
                "INSERT INTO rollup_state (id, watermark, project_version_id, well_version_id, "
                "permit_id) VALUES (1, :now, 0, 0, 0)"
            ),
            {"now": now},
        )
    listed = file_company(engine, LISTED, "临汾测试水源热泵有限公司", marks={(0, 1): "critical"})
    reporting = file_company(engine, REPORTING, "太原测试地热有限公司", projects=2)
    silent = file_company(engine, SILENT, "长治测试热力有限公司", projects=1)
    ids = [listed.company_id, reporting.company_id, silent.company_id]
    before = scores(engine)
    assert before[REPORTING] < 100 and before[SILENT] < 100  # MONTHLY_REPORT findings

    today = periods.local_date(now, RULEBOOK)
    files = {LISTED: False, REPORTING: True, SILENT: False}
    written = asyncio.run(demo._task_force_records(db_url, today, files))
    assert written > 1
    assert count(engine, "SELECT count(*) FROM inspection WHERE recorded_by = 'demo'") == 1
    reports = count(engine, "SELECT count(*) FROM monthly_report WHERE recorded_by = 'demo'")
    assert reports >= 2 and reports % 2 == 0  # the same months for both projects
    rescore(engine, ids)
    after = scores(engine)
    assert after[REPORTING] == 100
    assert after[SILENT] == before[SILENT]
    assert after[LISTED] <= before[LISTED]

    # The second run records nothing and changes no score.
    assert asyncio.run(demo._task_force_records(db_url, today, files)) == 0
    rescore(engine, ids)
    assert scores(engine) == after


def geocredit(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "api", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        cwd="/",
    )


def test_the_demo_refuses_a_registry_that_is_not_its_own(db_url, engine, tmp_path):
    file_company(engine, code(9204), "吕梁测试热力有限公司", projects=1)
    env = {"GEOCREDIT_DATABASE_URL": db_url, "GEOCREDIT_DATA_DIR": str(tmp_path)}
    for extra, says in (
        ([], "this database holds a registry that is not the demo's"),
        (["--reset"], "--reset drops the database: the demo resets only the embedded one"),
    ):
        result = geocredit("demo", "--port", str(free_port()), *extra, env=env)
        assert result.returncode == 1
        line = result.stderr.strip().splitlines()[-1]
        assert line.startswith("geocredit: error: ") and says in line, result.stderr
        assert "Traceback" not in result.stderr
