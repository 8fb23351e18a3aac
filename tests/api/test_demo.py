"""`geocredit demo` as a user runs it: one command, a table with every decision, a token and a
request that works, then the service until Ctrl-C."""

import os
import re
import shlex
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.api.support import free_port


@pytest.mark.slow
def test_demo(tmp_path):
    port = free_port()
    env = {**os.environ, "GEOCREDIT_DATA_DIR": str(tmp_path)}
    env.pop("GEOCREDIT_DATABASE_URL", None)
    out = tmp_path / "stdout"
    proc = subprocess.Popen(
        [sys.executable, "-m", "api", "demo", "--port", str(port)],
        stdout=out.open("w"),
        stderr=subprocess.DEVNULL,
        env=env,
        cwd="/",
    )
    try:
        deadline = time.monotonic() + 600
        while "Serving" not in out.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, out.read_text()
            time.sleep(1)
        text = out.read_text()
        assert {"ALLOW", "RESTRICT", "BLOCK"} <= set(re.findall(r"ALLOW|RESTRICT|BLOCK", text)), (
            text
        )
        curl = next(line for line in text.splitlines() if line.startswith("curl "))
        args = shlex.split(curl)
        token = args[args.index("-H") + 1].removeprefix("Authorization: Bearer ")
        body = args[args.index("-d") + 1]
        while time.monotonic() < deadline:
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/graphql",
                    content=body,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "application/json",
                    },
                    timeout=10,
                )
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert answer.json()["data"]["eligibility"]["decision"] == "BLOCK"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        subprocess.run(
            [sys.executable, "-m", "api", "db", "stop"], env=env, capture_output=True, cwd="/"
        )
    assert proc.returncode is not None
