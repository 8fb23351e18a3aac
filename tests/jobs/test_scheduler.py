"""The scheduler: two workers on one job store run each job window once; runs are recorded; a
platform outage fails the pull and nothing else."""

import gc
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from jobs import ingest, runs, scheduler
from registry import db
from registry.settings import Settings
from tests.api.support import wait_for
from tests.conftest import drop_database, new_database

TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def url(pg_admin_url, template_db):
    url = new_database(pg_admin_url, template_db)
    eng = db.make_engine(url)
    with eng.begin() as conn:
        conn.execute(sa.text("CREATE TABLE probe_hit (window_key text, pid int, at timestamptz)"))
        conn.execute(sa.text("CREATE TABLE probe_worker (pid int, at timestamptz)"))
    eng.dispose()
    yield url
    drop_database(pg_admin_url, url)


def probe(key: str) -> None:
    """A job that takes a while and leaves a row per execution of its body."""

    def work(run: runs.Run) -> dict:
        with scheduler._ctx().engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO probe_hit VALUES (:k, :p, clock_timestamp())"),
                {"k": key, "p": os.getpid()},
            )
        time.sleep(0.3)
        return {"pid": os.getpid()}

    scheduler._recorded("probe", key, work)


def probe_jobs() -> list[scheduler.JobSpec]:
    return [scheduler.JobSpec("probe", probe, CronTrigger(second="*"), timedelta(seconds=1))]


WINDOWS = 3


# Windows finished since both workers' schedulers were running (none before both are up).
BOTH_UP_WINDOWS = sa.text(
    """
    SELECT count(*) FROM job_run
    WHERE job = 'probe' AND status = 'SUCCEEDED'
      AND started_at > (SELECT max(at) FROM probe_worker HAVING count(*) = 2)
    """
)


def worker_main(url: str) -> None:
    """One worker process: the probe job every second, until both workers have been running
    together for WINDOWS finished windows — however long a loaded machine takes to get there
    (the test's wait bounds a hang)."""
    sched = scheduler.build_scheduler(Settings(database_url=url), probe_jobs())
    scheduler.start_scheduler(sched)
    with scheduler._ctx().engine.connect() as conn:
        conn.execute(
            sa.text("INSERT INTO probe_worker VALUES (:p, clock_timestamp())"), {"p": os.getpid()}
        )
        conn.commit()
        while conn.scalar(BOTH_UP_WINDOWS) < WINDOWS:
            conn.rollback()  # a fresh snapshot for the next look
            time.sleep(0.2)
    sched.shutdown(wait=True)


def test_window_keys_floor_to_the_period_in_local_time():
    t = datetime(2026, 1, 5, 2, 22, 41, tzinfo=UTC)  # 10:22:41 local
    assert scheduler.window_key(t, timedelta(minutes=15), TZ) == "2026-01-05T10:15:00+08:00"
    assert scheduler.window_key(t, timedelta(hours=1), TZ) == "2026-01-05T10:00:00+08:00"
    late = datetime(2026, 1, 5, 17, 30, tzinfo=UTC)  # 01:30 on the 6th, local
    assert scheduler.window_key(late, timedelta(days=1), TZ) == "2026-01-06T00:00:00+08:00"


def test_two_workers_started_together_run_each_window_once(url):
    code = "import sys; from tests.jobs.test_scheduler import worker_main; worker_main(sys.argv[1])"
    workers = [
        subprocess.Popen([sys.executable, "-c", code, url], cwd=os.getcwd()) for _ in range(2)
    ]
    assert [w.wait(timeout=300) for w in workers] == [0, 0]

    eng = db.make_engine(url)
    with eng.connect() as conn:
        hits = conn.execute(sa.text("SELECT window_key, pid FROM probe_hit")).all()
        recorded = conn.execute(
            sa.text("SELECT window_key, status, counts FROM job_run WHERE job = 'probe'")
        ).all()
        stored = conn.execute(sa.text("SELECT id FROM apscheduler_jobs")).scalars().all()
    eng.dispose()
    windows = [k for k, _ in hits]
    assert len(windows) >= WINDOWS
    assert len(windows) == len(set(windows))  # each window's work done once …
    assert sorted(k for k, _, _ in recorded) == sorted(windows)  # … and recorded once
    assert {s for _, s, _ in recorded} == {"SUCCEEDED"}
    assert stored == ["probe"]


def test_a_run_holds_the_lock_and_the_window(url):
    eng = db.make_engine(url)
    try:
        with runs.recorded_run(eng, "x", "w1") as first:
            assert first is not None
            with runs.recorded_run(eng, "x", "w2") as second:  # another worker, same job
                assert second is None
            first.counts = {"n": 1}
        with runs.recorded_run(eng, "x", "w1") as again:  # the window is done
            assert again is None
        with pytest.raises(ZeroDivisionError), runs.recorded_run(eng, "x", "w3") as failing:
            failing.counts = {"n": 0}
            1 / 0  # noqa: B018
        with eng.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT window_key, status, counts, error FROM job_run ORDER BY id")
            ).all()
    finally:
        eng.dispose()
    assert [(r.window_key, r.status, r.counts) for r in rows] == [
        ("w1", "SUCCEEDED", {"n": 1}),
        ("w3", "FAILED", {"n": 0}),
    ]
    assert rows[1].error == "ZeroDivisionError: division by zero"


def test_a_platform_outage_fails_the_pull_and_penalises_nobody(url, monkeypatch):
    async def unreachable(key, database_url, platform_url, **kw):
        # what ingest.pull_job does when the platform cannot be read: records, then raises
        factory = db.session_factory(db.make_async_engine(database_url, pool_size=1))
        run_id = await runs.start_run(factory, "pull", key)
        await runs.finish_run(factory, run_id, {}, error="PlatformError: connection refused")
        raise ingest.PullFailed("PlatformError: connection refused", ingest.PullResult())

    monkeypatch.setattr(ingest, "pull_job", unreachable)
    # here, not in a process of its own: that process would not see the stand-in above
    monkeypatch.setattr(scheduler, "run_in_own_process", lambda work, *args: work(*args))
    scheduler.build_scheduler(Settings(database_url=url))
    eng = db.make_engine(url)
    try:
        with eng.begin() as conn:
            conn.execute(sa.text("INSERT INTO ingest_watermark VALUES ('observations', "
                                 "'2026-01-05T00:00Z', 7, now())"))  # fmt: skip
        scheduler.pull_then_roll_up_and_score("2026-01-05T10:15:00+08:00")
        with eng.connect() as conn:
            rows = dict(conn.execute(sa.text("SELECT job, status FROM job_run")).all())
            mark = conn.scalar(sa.text("SELECT result_time FROM ingest_watermark"))
    finally:
        eng.dispose()
    assert rows == {"pull": "FAILED", "rollup": "SUCCEEDED", "score": "SUCCEEDED"}
    assert mark == datetime(2026, 1, 5, tzinfo=UTC)


def test_the_jobs_are_defined_with_stable_ids_and_deliberate_misfire_handling(url):
    sched = scheduler.build_scheduler(Settings(database_url=url))
    scheduler.start_scheduler(sched)
    try:
        jobs = {j.id: j for j in sched.get_jobs()}
    finally:
        sched.shutdown(wait=False)
    assert set(jobs) == {
        "things-sync", "pull", "listing-expiry", "partitions", "audit-checkpoint", "webhooks",
    }  # fmt: skip
    for job in jobs.values():
        assert job.coalesce and job.max_instances == 1
        assert job.func_ref == "jobs.scheduler:run_job"
    assert jobs["pull"].misfire_grace_time == 15 * 60
    assert jobs["listing-expiry"].misfire_grace_time == 24 * 3600
    assert threading.active_count() >= 1


def test_partition_maintenance_creates_the_coming_months(url):
    scheduler.build_scheduler(Settings(database_url=url))
    scheduler.partitions("2026-01-05T03:00:00+08:00")
    scheduler.partitions("2026-01-05T03:00:00+08:00")  # the window ran: skipped
    eng = db.make_engine(url)
    try:
        with eng.connect() as conn:
            names = conn.scalars(
                sa.text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'observation'::regclass"
                )
            ).all()
            runs_ = conn.execute(sa.text("SELECT status, counts FROM job_run")).all()
    finally:
        eng.dispose()
    first = datetime.now(UTC).date().replace(day=1)
    assert f"observation_{first:%Y%m}" in names and len(names) >= 3
    ((status, counts),) = runs_
    assert status == "SUCCEEDED" and len(counts["months"]) == 3


def test_a_scheduled_pull_runs_in_a_process_of_its_own():
    """Under `geocredit serve` the API and the scheduler share a process: the pull's runtime
    settings (a frozen heap, rare young collections, a short GIL switch interval) stay in the pull's own process."""
    before = sys.getswitchinterval(), gc.get_freeze_count(), gc.get_threshold()
    assert scheduler.run_in_own_process(os.getpid) != os.getpid()
    assert scheduler.run_in_own_process(sys.getswitchinterval) < before[0]
    assert scheduler.run_in_own_process(gc.get_threshold)[0] > before[2][0]
    assert (sys.getswitchinterval(), gc.get_freeze_count(), gc.get_threshold()) == before


def sleep_recording_pid(path: str) -> None:
    """A pull that never ends by itself; its process id in `path`."""
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(600)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (Path(f"/proc/{pid}/stat").read_text().split()[2]) != "Z"  # not a zombie


def test_stopping_the_scheduler_ends_a_pull_running_in_its_own_process(tmp_path):
    """Ctrl-C of `geocredit serve` or `worker` while a pull retries a platform that is down:
    the service stops at once instead of waiting for the pull to give up."""
    pid_file = tmp_path / "pid"
    outcome: list[BaseException] = []

    def job() -> None:
        try:
            scheduler.run_in_own_process(sleep_recording_pid, str(pid_file))
        except BaseException as exc:
            outcome.append(exc)

    sched = BackgroundScheduler()
    sched.start()
    runner = threading.Thread(target=job)
    runner.start()
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60, "the pull started")
    scheduler.stop_scheduler(sched, wait=True)
    runner.join(30)
    assert not runner.is_alive()
    assert [type(e) for e in outcome] == [scheduler.StoppedProcess]
    assert not alive(int(pid_file.read_text()))


def test_a_pull_whose_scheduler_process_is_killed_stops_too(tmp_path):
    """kill -9 of the process that scheduled a pull (the OOM killer, an operator): the pull's
    own process does not go on alone."""
    pid_file = tmp_path / "pid"
    code = (
        "import sys; from jobs import scheduler; from tests.jobs.test_scheduler import "
        "sleep_recording_pid as s; scheduler.run_in_own_process(s, sys.argv[1])"
    )
    parent = subprocess.Popen([sys.executable, "-c", code, str(pid_file)], cwd=os.getcwd())
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60, "the pull started")
        pull = int(pid_file.read_text())
        parent.kill()
        parent.wait()
        wait_for(lambda: not alive(pull), 30, "the orphaned pull stopped")
    finally:
        parent.kill()
