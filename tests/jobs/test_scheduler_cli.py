"""`geocredit rollup`, `score [--all]`, `jobs` and `worker` as a user runs them (real processes)."""

import os
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from tests.jobs.metrics_world import World, local, slot_ends

GEOCREDIT = [sys.executable, "-m", "api"]


def run(url, *args, timeout=120):
    env = {**os.environ, "GEOCREDIT_DATABASE_URL": url}
    return subprocess.run(
        [*GEOCREDIT, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd="/"
    )


@pytest.fixture(scope="module")
def world(engine):
    w = World(engine)
    p = w.project(w.company())
    e = w.datastream(w.well(p, "EXTRACTION"), "extraction_volume")
    r = w.datastream(w.well(p, "REINJECTION"), "reinjection_volume")
    times = slot_ends(local(2026, 1, 1), local(2026, 1, 2))
    w.observe(e, times, 10.0)
    w.observe(r, times, 10.0)
    w.watermark(local(2026, 1, 2, 0, 5))
    return w


def test_rollup_score_and_jobs(world, db_url):
    rolled = run(db_url, "rollup")
    assert rolled.returncode == 0, rolled.stderr
    assert "rolled up 1 days (2 datastream-days" in rolled.stdout
    assert "days" in rolled.stderr  # the progress bars

    scored = run(db_url, "score")
    assert scored.returncode == 0, scored.stderr
    assert "scored 1 of 1 companies" in scored.stdout
    everything = run(db_url, "score", "--all")
    assert "scored 1 of 1 companies" in everything.stdout and "1 snapshots" in everything.stdout

    listed = run(db_url, "jobs", "--limit", "2", "--job", "score")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("SUCCEEDED") == 2 and "rollup" not in listed.stdout


def test_a_manual_run_refuses_while_another_holds_the_job(world, db_url):
    with world.engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(hashtext('geocredit.job.rollup'))"))
        busy = run(db_url, "rollup")
        conn.execute(sa.text("SELECT pg_advisory_unlock(hashtext('geocredit.job.rollup'))"))
    assert busy.returncode == 1
    assert busy.stderr.strip().splitlines()[-1] == (
        "geocredit: error: rollup is running in another process; try again when it is done"
    )


def test_the_worker_starts_and_stops_on_sigterm(db_url):
    env = {**os.environ, "GEOCREDIT_DATABASE_URL": db_url}
    proc = subprocess.Popen(
        [*GEOCREDIT, "worker"], stderr=subprocess.PIPE, text=True, env=env, cwd="/"
    )
    try:
        deadline = time.monotonic() + 60
        line = ""
        while "worker running" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        assert "worker running 6 jobs" in line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
