"""`geocredit token create`: the token alone on the last line of stdout, usable at once."""

import os
import subprocess
import sys

from tests.api.support import error_codes


def run(*args, db_url):
    return subprocess.run(
        [sys.executable, "-m", "api", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "GEOCREDIT_DATABASE_URL": db_url},
        cwd="/",
        timeout=120,
    )


def test_token_create_prints_a_working_token_once(api_db_url, gql):
    result = run(
        "token",
        "create",
        "--role",
        "approval_system",
        "--name",
        "太原市行政审批局",
        db_url=api_db_url,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("gct_") and result.stdout.strip() == token
    assert "approval_system" in result.stderr
    body = gql("{ __typename }", None, token)
    assert body == {"data": {"__typename": "Query"}}
    assert error_codes(gql("mutation { __typename }", None, token)) == []


def test_token_create_refuses_an_unknown_role(api_db_url):
    result = run("token", "create", "--role", "root", "--name", "x", db_url=api_db_url)
    assert result.returncode != 0
    assert "root" in result.stderr and "Traceback" not in result.stderr
