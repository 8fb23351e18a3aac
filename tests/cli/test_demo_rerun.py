"""`geocredit demo` run again on the same data folder reuses its data and says so: every
company's grade, score and decision stay what they were (a second run once inspected the
same companies again). Its projects have names, and `--reset` starts afresh."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.api.support import free_port

GEOCREDIT = [sys.executable, "-m", "api"]


def demo(env: dict, *args: str, until: str = "Serving", timeout: float = 600) -> tuple[str, str]:
    """Run the demo until `until` appears in its output (and, after "Serving", until it
    answers), then stop it with Ctrl-C; (stdout, stderr). It must stop within a minute."""
    logs = Path(env["GEOCREDIT_DATA_DIR"]).parent / f"demo-{time.monotonic_ns()}"
    logs.mkdir()
    out, err = logs / "stdout", logs / "stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [*GEOCREDIT, "demo", "--port", str(port := free_port()), *args],
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd="/",
            start_new_session=True,  # a process group of its own, as in a terminal
        )
    deadline = time.monotonic() + timeout
    try:
        while until not in out.read_text() + err.read_text():
            assert proc.poll() is None, err.read_text()
            assert time.monotonic() < deadline, f"no {until!r} within {timeout} s"
            time.sleep(0.5)
        while until == "Serving" and not answers(f"http://127.0.0.1:{port}/healthz"):
            assert time.monotonic() < deadline, "the demo does not answer"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: to every process of the group
        try:
            proc.wait(60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # whatever did not stop
    return out.read_text(), err.read_text()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def table(out: str) -> dict[str, tuple[str, str, str]]:
    """credit code → (grade, score, decision) from the demo's table."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) == 8 and len(cells[2]) == 18:
            rows[cells[2]] = (cells[3], cells[4], cells[5])
    return rows


@pytest.mark.slow
def test_a_second_demo_reuses_its_data_and_reset_starts_afresh(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GEOCREDIT_DATABASE_URL"}
    env["GEOCREDIT_DATA_DIR"] = str(tmp_path / "data")
    try:
        first_out, first_err = demo(env)
        first = table(first_out)
        assert len(first) == 9, first_out
        assert "reusing" not in first_err
        assert ("A", "100", "ALLOW") in first.values()  # companies that file their reports
        assert any(grade == "A" and score != "100" for grade, score, _ in first.values())

        second_out, second_err = demo(env)
        assert "reusing the demo data already in this database" in second_err
        assert "0 new record(s)" in second_err
        assert table(second_out) == first

        company = next(c for c, row in first.items() if row[1] == "100")
        shown = subprocess.run(
            [*GEOCREDIT, "company", company, "--json"],
            capture_output=True,
            text=True,
            env=env,
            cwd="/",
        )
        projects = json.loads(shown.stdout)["projects"]
        assert projects and all(p["name"] != p["code"] for p in projects)
        assert all(p["name"].endswith("项目") for p in projects)

        _, reset_err = demo(env, "--reset", until="• pulling")
        assert "resetting: dropping the embedded database and starting afresh" in reset_err
        assert "reusing" not in reset_err
    finally:
        subprocess.run([*GEOCREDIT, "db", "stop"], env=env, capture_output=True, cwd="/")
