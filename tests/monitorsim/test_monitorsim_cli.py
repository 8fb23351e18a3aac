"""The command line: one command starts a server and says where."""

from __future__ import annotations

import re
import select
import subprocess
import sys

import httpx
import pytest

from monitorsim.cli import config_from_options, main


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


def test_options():
    c = config_from_options(
        scenario="faults",
        now="wall",
        start="2026-11-01",
        days=2,
        outage_backfill_hours="never",
        data_fault=["late=0.1"],
        http_faults='{"error_every": 3}',
    )
    assert c.wall_clock is True and c.outage_backfill_hours is None
    assert c.data_faults["late"] == 0.1 and c.data_faults["duplicate"] == 0.03
    assert c.http_faults == {
        "rate_limit_every": 7,
        "error_every": 3,
        "truncate_every": 13,
        "repeat_next_link": 1,
    }
    quiet = config_from_options(no_data_faults=True, now="2026-11-25T06:00:00Z", outage_hours=0)
    assert set(quiet.data_faults.values()) == {0.0} and not quiet.wall_clock
    assert quiet.outage_start is None


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--start", "2026-11-02", "--end", "2026-11-01"], "end must be after start"),
        (["--scenario", "nope"], "'nope' is not one of 'demo', 'bench', 'faults'"),
        (["--port", "70000"], "--port"),
        (["--start", "yesterday"], "'yesterday' is not a date"),
        (["--data-fault", "late"], "'late' is not KIND=RATE"),
        (["--data-fault", "sneeze=0.1"], "unknown data fault kinds: ['sneeze']"),
        (["--http-faults", "{"], "--http-faults"),
        (["--outage-backfill-hours", "soon"], "'soon' is not a number of hours or never"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(capsys, args, says):
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("monitorsim: error: ") and says in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_help_is_plain_and_names_every_option():
    result = subprocess.run(
        [sys.executable, "-m", "monitorsim", "serve", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: monitorsim serve [OPTIONS]")
    assert "<bool>" not in result.stdout and "╭" not in result.stdout
    for option in ("--host HOST", "--port PORT", "--scenario", "--no-data-faults", "--now"):
        assert option in result.stdout
