"""`geocredit token create|list|revoke`: the token alone on the last line of stdout, usable at
once; a revoked or expired token is refused, and the API's cache keeps none past its limits."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from api import context
from registry.auth import TOKEN_CACHE_SECONDS, Client
from registry.vocabulary import Role
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


def created_token(*args, db_url) -> tuple[int, str, str]:
    """(client id, token, what stderr said) of `token create ARGS`."""
    result = run("token", "create", *args, db_url=db_url)
    assert result.returncode == 0, result.stderr
    client_id = int(result.stderr.split()[1])
    return client_id, result.stdout.strip(), result.stderr


def test_token_list_shows_every_client_and_revoke_stops_a_token(api_db_url, gql):
    client_id, token, said = created_token(
        "--role", "reviewer", "--name", "晋中市监察组", "--expires-in", "90d", db_url=api_db_url
    )
    assert ", expires 20" in said
    listed = run("token", "list", db_url=api_db_url)
    assert listed.returncode == 0, listed.stderr
    (line,) = [row for row in listed.stdout.splitlines() if "晋中市监察组" in row]
    assert line.split()[1] == str(client_id) and "reviewer" in line and "active" in line

    revoked = run("token", "revoke", str(client_id), db_url=api_db_url)
    assert revoked.returncode == 0, revoked.stderr
    assert "within 10 s" in revoked.stdout
    # never used before the revocation, so no API process has it cached: refused at once
    assert gql.post("{ __typename }", None, token).status_code == 401
    listed = run("token", "list", db_url=api_db_url)
    (line,) = [row for row in listed.stdout.splitlines() if "晋中市监察组" in row]
    assert "revoked" in line

    again = run("token", "revoke", str(client_id), db_url=api_db_url)
    assert again.returncode == 0 and "revoked already" in again.stdout
    unknown = run("token", "revoke", "999999", db_url=api_db_url)
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "geocredit: error: no API client 999999 (geocredit token list)"


def test_an_expired_token_is_refused(api_db_url, api_engine, gql):
    client_id, token, _ = created_token(
        "--role", "approval_system", "--name", "expiring", "--expires-in", "12h", db_url=api_db_url
    )
    with api_engine.begin() as conn:  # twelve hours later
        conn.execute(
            sa.text("UPDATE api_client SET expires_at = now() - interval '1 second' WHERE id = :i"),
            {"i": client_id},
        )
    assert gql.post("{ __typename }", None, token).status_code == 401
    listed = run("token", "list", db_url=api_db_url)
    (line,) = [row for row in listed.stdout.splitlines() if " expiring " in row]
    assert line.rstrip(" │").endswith("expired")


@pytest.mark.parametrize("duration", ["0d", "12", "1y", "-3h", "soon"])
def test_a_duration_that_is_not_one_is_refused(api_db_url, duration):
    result = run(
        "token", "create", "--role", "reviewer", "--name", "x", "--expires-in", duration,
        db_url=api_db_url,
    )  # fmt: skip
    assert result.returncode == 2 and "is not a duration" in result.stderr


def test_the_token_cache_keeps_a_revoked_token_at_most_its_ttl(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(context.time, "monotonic", lambda: clock[0])
    cache = context.TokenCache()
    client = Client(1, "x", Role.REVIEWER)
    cache.put("digest", client)
    clock[0] += TOKEN_CACHE_SECONDS - 0.1
    assert cache.get("digest") is client
    clock[0] += 0.1
    assert cache.get("digest") is None  # asked of the database again: refused once revoked


def test_the_token_cache_never_keeps_a_token_past_its_expiry(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(context.time, "monotonic", lambda: clock[0])
    cache = context.TokenCache()
    soon = Client(1, "x", Role.REVIEWER, datetime.now(UTC) + timedelta(seconds=2))
    cache.put("soon", soon)
    assert cache.get("soon") is soon
    clock[0] += 2.5
    assert cache.get("soon") is None
    cache.put("gone", Client(2, "y", Role.REVIEWER, datetime.now(UTC) - timedelta(seconds=1)))
    assert cache.get("gone") is None
