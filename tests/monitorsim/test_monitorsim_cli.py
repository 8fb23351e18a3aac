"""The command line: one command starts a server and says where."""

from __future__ import annotations

import re
import select
import subprocess
import sys

import httpx
import pytest

from monitorsim.cli import _parser, config_from_args, main


def test_serve_prints_its_url_and_serves():
    cmd = [
        sys.executable,
        "-m",
        "monitorsim",
        "serve",
        "--port",
        "0",
        "--scenario",
        "demo",
        "--start",
        "2026-11-20",
        "--days",
        "1",
        "--now",
        "2026-11-20T12:00:00Z",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        assert ready, "no URL printed"
        line = proc.stdout.readline().strip()
        m = re.fullmatch(r"monitorsim serving (http://127\.0\.0\.1:\d+)", line)
        assert m, line
        url = m.group(1)
        assert httpx.get(url + "/healthz").json()["status"] == "ok"
        body = httpx.get(url + "/v1.1/Observations?$top=2").json()
        assert len(body["value"]) == 2
        assert httpx.get(url + "/scenario").json()["now"] == "2026-11-20T12:00:00Z"
    finally:
        proc.terminate()
        proc.wait(20)


def _config(*args: str):
    return config_from_args(_parser().parse_args(["serve", *args])).resolved()


def test_options():
    c = _config(
        "--scenario",
        "faults",
        "--now",
        "wall",
        "--start",
        "2026-11-01",
        "--days",
        "2",
        "--outage-backfill-hours",
        "never",
        "--data-fault",
        "late=0.1",
        "--http-faults",
        '{"error_every": 3}',
    )
    assert c.wall_clock is True and c.outage_backfill_hours is None
    assert c.data_faults["late"] == 0.1 and c.data_faults["duplicate"] == 0.03
    assert c.http_faults == {
        "rate_limit_every": 7,
        "error_every": 3,
        "truncate_every": 13,
        "repeat_next_link": 1,
    }
    quiet = _config("--no-data-faults", "--now", "2026-11-25T06:00:00Z", "--outage-hours", "0")
    assert set(quiet.data_faults.values()) == {0.0} and not quiet.wall_clock
    assert quiet.outage_start is None


def test_bad_options_exit_2(capsys):
    assert main(["serve", "--start", "2026-11-02", "--end", "2026-11-01"]) == 2
    assert "end must be after start" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--scenario", "nope"])
