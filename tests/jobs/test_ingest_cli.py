"""`geocredit pull` as a process: killed with SIGKILL mid-pull, a rerun converges to the same state
as one uninterrupted pull."""

import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from registry import db
from tests.conftest import drop_database, new_database
from tests.jobs.ingest_sim import assert_matches_truth, get, monitorsim, table_state

# Days well past, so that every row (late ones too) is due by the pull's clock.
SCENARIO = (
    "--scenario", "bench", "--wells", "120", "--start", "2026-11-01", "--days", "4",
    "--now", "2026-11-30",
)  # fmt: skip


@pytest.fixture(scope="module")
def platform():
    with monitorsim(*SCENARIO) as base:
        yield base


def geocredit(url: str, base: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "GEOCREDIT_DATABASE_URL": url, "GEOCREDIT_PLATFORM_URL": base}
    return subprocess.Popen(
        [sys.executable, "-m", "api", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd="/",
    )


def count(url: str) -> int:
    with psycopg.connect(db.libpq_url(url)) as conn:
        return conn.execute("SELECT count(*) FROM observation").fetchone()[0]


def pull_runs(url: str) -> list[tuple]:
    with psycopg.connect(db.libpq_url(url)) as conn:
        return conn.execute(
            "SELECT status, error FROM job_run WHERE job = 'pull' ORDER BY id"
        ).fetchall()


@pytest.fixture
def fresh(pg_admin_url, template_db):
    made = []

    def make() -> str:
        made.append(new_database(pg_admin_url, template_db))
        return made[-1]

    yield make
    for url in made:
        drop_database(pg_admin_url, url)


def test_kill_9_mid_pull_then_a_rerun_converges(platform, fresh):
    truth = get(platform, "/truth")
    killed = fresh()
    proc = geocredit(killed, platform, "pull", "--page-size", "1000")
    deadline = time.monotonic() + 120
    while count(killed) < 20_000:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    partial = count(killed)
    assert 0 < partial < truth["totals"]["stored"]
    assert pull_runs(killed) == [("RUNNING", None)]  # nobody is left to finish it

    rerun = geocredit(killed, platform, "pull", "--page-size", "1000")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert out.startswith("pulled ") and "watermark" in out
    assert_matches_truth(killed, truth)
    (killed_run, _), rerun_run = pull_runs(killed)
    assert killed_run == "FAILED" and rerun_run == ("SUCCEEDED", None)
    assert pull_runs(killed)[0][1].startswith("abandoned")

    clean = fresh()
    once = geocredit(clean, platform, "pull", "--page-size", "3000")
    assert once.wait(300) == 0
    assert table_state(killed) == table_state(clean)


def test_a_failed_pull_exits_non_zero_with_one_line(platform, fresh):
    proc = geocredit(fresh(), f"{platform}/no-such-service", "pull")  # 404: not retried
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert out.startswith("pull stopped: 0 rows")
    assert err.strip().splitlines()[-1].startswith("geocredit: error: pull incomplete")
    assert "Traceback" not in err


def test_monitorsim_is_started_through_geocredit():
    for args in (["monitorsim", "--help"], ["monitorsim", "serve", "--help"]):
        proc = subprocess.run(
            [sys.executable, "-m", "api", *args], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("Usage: monitorsim serve [OPTIONS]"), proc.stdout
