"""The `geocredit` command as a user runs it: a real process, a real embedded server."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

GEOCREDIT = [sys.executable, "-m", "api"]


def run(*args, env=None, timeout=120):
    return subprocess.run(
        [*GEOCREDIT, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd="/",  # any working directory must do
    )


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("geocredit ")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("data")
    yield path
    run("db", "stop", env={"GEOCREDIT_DATA_DIR": str(path)})


def test_embedded_lifecycle_from_an_empty_data_folder(data_dir):
    env = {"GEOCREDIT_DATA_DIR": str(data_dir)}
    env.pop("GEOCREDIT_DATABASE_URL", None)
    migrated = run("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert "schema at" in migrated.stderr
    url = run("db", "url", env=env)
    assert url.stdout.strip().startswith("postgresql+psycopg://postgres@/geocredit?host=")
    verified = run("audit", "verify", env=env)
    assert verified.returncode == 0 and "intact" in verified.stdout

    # A server killed hard leaves postmaster.pid behind; the next command recovers.
    pid = int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    again = run("audit", "verify", env=env)
    assert again.returncode == 0, again.stderr

    stopped = run("db", "stop", env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stderr
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()


def test_unresponsive_database_is_one_line_once_the_connect_timeout_expires():
    # A listener that never answers: without our connect timeout the command would wait forever
    # (and `run` would give up); libpq says "timeout expired" only when that timeout ends it.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        result = run(
            "audit",
            "verify",
            env={"GEOCREDIT_DATABASE_URL": f"postgresql://geo@127.0.0.1:{port}/geocredit"},
        )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unreachable" in lines[0], result.stderr
    assert "timeout expired" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_refused_connection_is_immediate_and_readable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        result = run(
            "migrate", env={"GEOCREDIT_DATABASE_URL": f"postgresql://geo@127.0.0.1:{port}/x"}
        )
    assert result.returncode == 1
    assert result.stderr.startswith("geocredit: error: database ")
    assert "Connection refused" in result.stderr


def test_unknown_command_is_a_usage_error():
    assert run("no-such-command").returncode == 2


def test_works_from_any_directory_with_installed_resources(tmp_path: Path):
    from importlib.resources import files

    assert (Path(str(files("migrations"))) / "env.py").exists()
