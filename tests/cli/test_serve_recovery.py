"""`geocredit serve` on the embedded default, as an operator runs it: a second server on its port
is refused; PostgreSQL killed with -9 under load is started again by the watchdog, `/readyz` says
so meanwhile, and nothing written before is lost; a server stopped on purpose stays stopped."""

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from registry import db
from tests.api.support import free_port, wait_for

GEOCREDIT = [sys.executable, "-m", "api"]
CODE = "91350100M000100Y43"
SCREEN = """mutation($input: ScreenApplicationInput!) {
  screenApplication(input: $input) { decisionId userErrors { code } } }"""
RECOVERY_LIMIT_S = 30  # generous: the watchdog looks every second, a restart takes a few


def geocredit(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*GEOCREDIT, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd="/"
    )


def ready(base: str) -> int | None:
    try:
        return httpx.get(f"{base}/readyz", timeout=10).status_code
    except httpx.HTTPError:
        return None


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """(base URL, environment) of a `geocredit serve` on its own embedded database."""
    data_dir = tmp_path_factory.mktemp("serve")
    env = {k: v for k, v in os.environ.items() if k != "GEOCREDIT_DATABASE_URL"}
    env |= {"GEOCREDIT_DATA_DIR": str(data_dir), "GEOCREDIT_PLATFORM_URL": "http://127.0.0.1:9"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (data_dir / "serve.log").open("w")
    proc = subprocess.Popen(
        [*GEOCREDIT, "serve", "--port", str(port)], env=env, stdout=log, stderr=log, cwd="/"
    )
    try:
        wait_for(lambda: proc.poll() is None and ready(base) == 200, 180, "serve ready")
        yield base, env, port, data_dir
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        geocredit("db", "stop", env=env)
        log.close()


@pytest.mark.parametrize("command", ["serve", "api"])
def test_a_second_server_on_a_busy_port_is_one_line_and_exit_1(service, command):
    base, env, port, _ = service
    second = geocredit(command, "--port", str(port), env=env)
    assert second.returncode == 1
    assert second.stderr.strip() == (
        f"geocredit: error: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(is geocredit serving there already?)"
    )
    assert ready(base) == 200


@contextlib.contextmanager
def held(lock: Path):
    with lock.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])


class Load:
    """Approval systems screening applications without pause; what was answered is noted."""

    def __init__(self, base: str, token: str):
        self.http = httpx.Client(
            base_url=base, timeout=10, headers={"Authorization": f"Bearer {token}"}
        )
        self.answered: dict[str, str] = {}  # case reference -> decisionId
        self.failed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            case = f"CHAOS-{n}"
            variables = {
                "input": {"creditCode": CODE, "kind": "WATER_PERMIT", "caseReference": case}
            }
            try:
                r = self.http.post("/graphql", json={"query": SCREEN, "variables": variables})
                decision = (r.json().get("data") or {}).get("screenApplication") or {}
            except (httpx.HTTPError, ValueError):
                decision = {}
            if decision.get("decisionId"):
                self.answered[case] = decision["decisionId"]
            else:
                self.failed += 1
                time.sleep(0.05)

    def __enter__(self) -> "Load":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(30)
        self.http.close()


def test_postgres_killed_under_load_is_restarted_and_nothing_is_lost(service):
    base, env, _, data_dir = service
    made = geocredit("token", "create", "--role", "approval_system", "--name", "chaos", env=env)
    assert made.returncode == 0, made.stderr
    with Load(base, made.stdout.strip()) as load:
        wait_for(lambda: len(load.answered) >= 20, 60, "screenings before the kill")
        # The watchdog takes this lock to start the server: held, the server stays down until
        # /readyz has said so (a restart can otherwise be quicker than /readyz's own wait).
        with held(data_dir / "pgdata.lock"):
            os.kill(postmaster_pid(data_dir), signal.SIGKILL)
            killed = time.monotonic()
            wait_for(lambda: ready(base) == 503, 30, "/readyz 503")
        wait_for(lambda: ready(base) == 200, RECOVERY_LIMIT_S, "/readyz 200 again")
        recovery = time.monotonic() - killed
        print(f"\nPostgreSQL killed with -9: /readyz 200 again after {recovery:.1f} s")
        after = len(load.answered)
        wait_for(lambda: len(load.answered) >= after + 20, 30, "screenings after recovery")
    assert recovery < RECOVERY_LIMIT_S

    url = geocredit("db", "url", env=env).stdout.strip()
    with psycopg.connect(db.libpq_url(url)) as conn:
        stored = dict(
            conn.execute(
                "SELECT a.case_reference, d.id FROM application a "
                "JOIN decision d ON d.application_id = a.id"
            ).fetchall()
        )
    assert set(load.answered) <= set(stored)  # every answered screening was kept
    verified = geocredit("audit", "verify", env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_database_stopped_on_purpose_stays_stopped_until_started(service):
    base, env, _, _ = service
    assert geocredit("db", "stop", env=env).returncode == 0
    time.sleep(3)  # three looks of the watchdog
    assert ready(base) == 503
    assert geocredit("db", "start", env=env).returncode == 0
    wait_for(lambda: ready(base) == 200, RECOVERY_LIMIT_S, "/readyz 200 after db start")


def test_a_server_whose_main_process_is_killed_stops_and_leaves_its_port(service):
    """kill -9 of the main process (the OOM killer, an operator): its worker does not go on
    alone holding the port, so the service starts again on it."""
    _, env, _, data_dir = service
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    servers = []

    def start() -> subprocess.Popen:
        log = (data_dir / f"api-{len(servers)}.log").open("w")
        servers.append(
            subprocess.Popen(
                [*GEOCREDIT, "api", "--port", str(port)],
                env=env,
                stdout=log,
                stderr=log,
                cwd="/",
                start_new_session=True,
            )
        )
        log.close()
        wait_for(lambda: ready(base) == 200, 120, "api ready")
        return servers[-1]

    try:
        first = start()
        first.kill()
        first.wait()
        wait_for(lambda: ready(base) is None, 30, "the orphaned worker stopped")
        second = start()
        assert second.poll() is None
    finally:
        for server in servers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)  # the server and whatever is left of it
