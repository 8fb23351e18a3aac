"""`geocredit` as an operator's tool, run as a user runs it (a real process on a real database):
a credit file and the approval decision in the terminal, `--json` that parses, machine output
that a pipe gets whole, and every mistake in one line."""

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from registry import db, reviews
from scoring.model import ApplicationKind
from scoring.rulebook import load_rulebook
from tests.api.console_sample import file_company
from tests.api.support import Server, code, free_port

GEOCREDIT = [sys.executable, "-m", "api"]
D_COMPANY = code(9101)
A_COMPANY = code(9102)
UNKNOWN = code(9199)
ZONE = load_rulebook().zone


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A data folder whose path is over 100 characters: nothing printed with it may wrap."""
    path = tmp_path_factory.mktemp("data") / ("a-long-folder-name-" * 6)
    path.mkdir()
    assert len(str(path)) > 100
    return path


@pytest.fixture(scope="module")
def env(db_url, data_dir) -> dict[str, str]:
    return {
        **os.environ,
        "GEOCREDIT_DATABASE_URL": db_url,
        "GEOCREDIT_DATA_DIR": str(data_dir),
        "GEOCREDIT_PLATFORM_URL": "http://127.0.0.1:9",
        "COLUMNS": "80",  # what rich assumes when stdout is not a terminal
    }


def geocredit(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*GEOCREDIT, *args], capture_output=True, text=True, env=env, timeout=timeout, cwd="/"
    )


def one_line_error(result: subprocess.CompletedProcess, code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("geocredit: error: "), lines[0]
    assert "internal error" not in lines[0] and "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def filed(engine):
    """A listed D company (a CRITICAL final month, an inspection) and an A-or-B company."""
    d = file_company(
        engine, D_COMPANY, "晋城测试地热能开发有限公司", projects=2, marks={(0, 1): "critical"}
    )
    a = file_company(engine, A_COMPANY, "太原测试热力有限公司", projects=1)

    async def inspect(url: str) -> None:
        async_engine = db.make_async_engine(url, pool_size=1)
        try:
            async with db.transaction(db.session_factory(async_engine), "tests") as session:
                await reviews.record_inspection(
                    session,
                    reviews.InspectionInput(
                        credit_code=D_COMPANY,
                        project_code=d.projects[0],
                        inspected_on=datetime.now(UTC).date(),
                        inspector="省地热能开发利用专班",
                        findings=[
                            reviews.InspectionFindingInput(
                                severity="MAJOR", description="回灌井计量装置未在线"
                            )
                        ],
                    ),
                    "tests",
                )
        finally:
            await async_engine.dispose()

    asyncio.run(inspect(engine.url.render_as_string(hide_password=False)))
    return d, a


def local_date(t: datetime) -> str:
    return t.astimezone(ZONE).date().isoformat()


def active_listing(engine, company_id: int):
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT l.* FROM listing l WHERE l.company_id = :c AND NOT EXISTS "
                "(SELECT 1 FROM listing_end e WHERE e.listing_id = l.id)"
            ),
            {"c": company_id},
        ).one()


def counting_findings(engine, company_id: int) -> int:
    with engine.connect() as conn:
        return conn.scalar(
            sa.text(
                "SELECT count(*) FROM credit_finding f WHERE f.company_id = :c AND NOT EXISTS "
                "(SELECT 1 FROM finding_event e WHERE e.finding_id = f.id)"
            ),
            {"c": company_id},
        )


# ---------------------------------------------------------------- company


def test_company_shows_the_credit_file_in_lines_a_pipe_gets_whole(env, engine, filed):
    d, _ = filed
    result = geocredit("company", D_COMPANY.lower(), env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"{D_COMPANY} 晋城测试地热能开发有限公司\n")
    assert "standing: grade D, score " in out
    listing = active_listing(engine, d.company_id)
    assert (
        f"earliest end {local_date(listing.min_end)}, latest end {local_date(listing.max_end)}"
    ) in out
    # every finding a line of its own, rule, clause, month, severity and message on it
    line = next(row for row in out.splitlines() if "NO_REINJECTION" in row)
    assert "二(二)6" in line and "CRITICAL" in line and "ACTIVE" in line and "−40" in line
    assert any(f" {m:%Y-%m} " in line for m in d.months)
    assert "回灌井计量装置未在线" in out  # the recent inspection
    assert "晋城测试供暖项目 1" in out  # the projects, with their names
    assert "…" not in out


def test_company_json_is_one_document_with_the_whole_standing(env, engine, filed):
    d, _ = filed
    result = geocredit("company", D_COMPANY, "--json", env=env)
    assert result.returncode == 0, result.stderr
    file = json.loads(result.stdout)
    assert file["creditCode"] == D_COMPANY and file["name"] == "晋城测试地热能开发有限公司"
    standing = file["standing"]
    assert standing["grade"] == "D" and standing["decision"] == "BLOCK"
    listing = active_listing(engine, d.company_id)
    assert standing["listing"]["minEndDate"] == local_date(listing.min_end)
    assert standing["listing"]["maxEndDate"] == local_date(listing.max_end)
    assert datetime.fromisoformat(standing["listing"]["minEnd"]) == listing.min_end
    assert {x["kind"] for x in file["decisions"]} == {k.value for k in ApplicationKind}
    assert len(file["findings"]) == counting_findings(engine, d.company_id)
    for finding in file["findings"]:
        assert finding["status"] in ("ACTIVE", "UNDER_APPEAL")
        assert {"ruleId", "policyClause", "month", "severity", "deduction"} <= finding.keys()
    assert [p["code"] for p in file["projects"]] == sorted(d.projects)
    assert file["inspections"][0]["findings"][0]["severity"] == "MAJOR"


def test_company_unknown_or_malformed_code_is_one_line(env, filed):
    unknown = one_line_error(geocredit("company", UNKNOWN, env=env), 1)
    assert unknown == f"geocredit: error: no credit file for {UNKNOWN}"
    malformed = one_line_error(geocredit("company", D_COMPANY[:-1] + "Z", env=env), 2)
    assert "invalid unified social credit code" in malformed
    assert "position 18" in malformed


# ---------------------------------------------------------------- eligibility


def test_eligibility_is_the_decision_the_api_gives(env, db_url, filed, tmp_path):
    from tests.api.conftest import make_token

    result = geocredit("eligibility", D_COMPANY, "--json", env=env)
    assert result.returncode == 0, result.stderr
    cli = json.loads(result.stdout)
    assert [e["kind"] for e in cli] == [k.value for k in ApplicationKind]

    engine = db.make_engine(db_url)
    token = make_token(engine, "approval_system", "cli tests")
    engine.dispose()
    server = Server(db_url, tmp_path / "server.log").start()
    try:
        body = httpx.post(
            f"{server.url}/graphql",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "query": """query($r: [EligibilityRequest!]!) { eligibilities(requests: $r) {
                    creditCode decision grade score conditions restrictedUntil asOf
                    rulebookVersion reasons { code ruleId policyClause message } } }""",
                "variables": {"r": [{"creditCode": D_COMPANY, "kind": e["kind"]} for e in cli]},
            },
            timeout=30,
        ).json()
    finally:
        server.stop()
    api = body["data"]["eligibilities"]
    for mine, theirs in zip(cli, api, strict=True):
        assert mine["decision"] == theirs["decision"] == "BLOCK"
        for key in ("creditCode", "grade", "score", "conditions", "rulebookVersion"):
            assert mine[key] == theirs[key], key
        for key in ("restrictedUntil", "asOf"):
            assert datetime.fromisoformat(mine[key]) == datetime.fromisoformat(theirs[key])
        assert [
            (r["code"], r["ruleId"], r["policyClause"], r["message"]) for r in mine["reasons"]
        ] == [(r["code"], r["ruleId"], r["policyClause"], r["message"]) for r in theirs["reasons"]]


def test_eligibility_for_one_kind_names_reasons_and_clauses(env, engine, filed):
    d, _ = filed
    result = geocredit("eligibility", D_COMPANY, "--kind", "water_permit", env=env)
    assert result.returncode == 0, result.stderr
    listing = active_listing(engine, d.company_id)
    assert f"WATER_PERMIT: BLOCK until {local_date(listing.min_end)}" in result.stdout
    assert "\n  LISTED: " in result.stdout
    assert "\n  NO_REINJECTION [二(二)6]: " in result.stdout
    assert "PROJECT_FILING" not in result.stdout

    unknown = geocredit("eligibility", UNKNOWN, env=env)
    assert unknown.returncode == 0
    assert unknown.stdout.startswith(f"{UNKNOWN}: no credit file")
    assert "ALLOW" in unknown.stdout and "NO_CREDIT_FILE" in unknown.stdout

    bad = one_line_error(geocredit("eligibility", D_COMPANY, "--kind", "permit", env=env), 2)
    assert "'permit' is not one of" in bad


def test_eligibility_as_of_answers_what_was_answered_then(env, engine, filed):
    d, _ = filed
    with engine.connect() as conn:
        filed_at = conn.scalar(
            sa.text("SELECT created_at FROM company WHERE id = :c"), {"c": d.company_id}
        )
    before = (filed_at - timedelta(seconds=1)).isoformat()
    then = geocredit("eligibility", D_COMPANY, "--as-of", before, "--json", env=env)
    assert then.returncode == 0, then.stderr
    assert {a["reasons"][0]["code"] for a in json.loads(then.stdout)} == {"NO_CREDIT_FILE"}
    now = geocredit(
        "eligibility", D_COMPANY, "--as-of", datetime.now(UTC).isoformat(), "--json", env=env
    )
    assert {a["decision"] for a in json.loads(now.stdout)} == {"BLOCK"}

    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert "is in the future" in one_line_error(
        geocredit("eligibility", D_COMPANY, "--as-of", future, env=env), 2
    )
    assert "no UTC offset" in one_line_error(
        geocredit("eligibility", D_COMPANY, "--as-of", "2026-12-01T09:30:00", env=env), 2
    )


# ---------------------------------------------------------------- --json and machine output


def test_jobs_and_tokens_as_json_and_jobs_counts_whole(env, filed):
    assert geocredit("score", "--all", env=env).returncode == 0
    created = geocredit("token", "create", "--role", "reviewer", "--name", "王芳", env=env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("gct_")

    runs = json.loads(geocredit("jobs", "--json", env=env).stdout)
    score = next(r for r in runs if r["job"] == "score")
    assert score["status"] == "SUCCEEDED" and score["counts"]["companies"] >= 2
    assert datetime.fromisoformat(score["startedAt"]).tzinfo is not None

    clients = json.loads(geocredit("token", "list", "--json", env=env).stdout)
    assert {"name": "王芳", "role": "reviewer", "status": "active"}.items() <= clients[-1].items()

    # The table, piped: one line per run, every count whole (no "…").
    table = geocredit("jobs", "-n", "1", "--job", "score", env=env).stdout
    row = next(line for line in table.splitlines() if "SUCCEEDED" in line)
    for name, value in score["counts"].items():
        assert f"{name}={value}" in row
    assert "…" not in table


def test_paths_and_urls_are_printed_whole(env, data_dir, tmp_path):
    checkpoint = geocredit("audit", "checkpoint", env=env)
    assert checkpoint.returncode == 0, checkpoint.stderr
    assert checkpoint.stdout.count("\n") == 1
    assert checkpoint.stdout.strip().endswith(f"{data_dir}/audit/checkpoints.jsonl")

    # the embedded server in a data folder with a long path (its socket goes elsewhere)
    embedded = {k: v for k, v in env.items() if k != "GEOCREDIT_DATABASE_URL"}
    embedded["GEOCREDIT_DATA_DIR"] = str(tmp_path / ("embedded-data-folder-" * 5))
    try:
        url = geocredit("db", "url", env=embedded)
        assert url.returncode == 0, url.stderr
        assert url.stdout.count("\n") == 1 and url.stdout.startswith("postgresql+psycopg://")
        assert geocredit("migrate", env=embedded).returncode == 0
    finally:
        geocredit("db", "stop", env=embedded)


# ---------------------------------------------------------------- mistakes, in one line


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["serve", "--port", "99999"], 2, "99999 is not a port"),
        (["serve", "--port", "0"], 2, "0 is not a port"),
        (["api", "--port", "-1"], 2, "-1 is not a port"),
        (["serve", "--port", "eighty"], 2, "--port"),
        (["serve", "--log-level", "loud"], 2, "'loud' is not one of"),
        (["serve", "--host", "no-such-host.invalid"], 1, "cannot listen on no-such-host"),
        (["token", "create", "--role", "reviewer", "--name", ""], 2, "a client needs a name"),
        (["token", "create", "--role", "reviewer", "--name", "  "], 2, "a client needs a name"),
        (["token", "create", "--name", "x"], 2, "Missing option '--role'"),
        (["token", "create", "--role", "root", "--name", "x"], 2, "'root' is not one of"),
        (["token", "create", "--role", "reviewer", "--name", "x", "--expires-in", "5y"], 2, "5y"),
        (["token", "revoke", "abc"], 2, "ID"),
        (["token", "revoke", "999999"], 1, "no API client 999999"),
        (["company"], 2, "Missing argument 'CODE'"),
        (["jobs", "-n", "0"], 2, "--limit"),
        (["pull", "--platform-url", "nonsense"], 1, "--platform-url 'nonsense'"),
        (["no-such-command"], 2, "No such command"),
        (["audit", "verify", "--checkpoints", "/no/such/file"], 1, "does not exist"),
    ],
)
def test_command_line_mistakes(env, args, code, says):
    assert says in one_line_error(geocredit(*args, env=env), code)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("GEOCREDIT_DATABASE_URL", "nonsense", "GEOCREDIT_DATABASE_URL 'nonsense' is not a"),
        ("GEOCREDIT_DATABASE_URL", "http://a", "must be a PostgreSQL URL"),
        ("GEOCREDIT_DATABASE_URL", "mysql://u:secret@h/db", "must be a PostgreSQL URL"),
        ("GEOCREDIT_DATABASE_URL", "postgresql://u:secret@h:port/db", "is not a database URL"),
        ("GEOCREDIT_DATABASE_URL", "postgresql://geo@127.0.0.1:1/x", "unreachable"),
        ("GEOCREDIT_ENV", "prod", "GEOCREDIT_ENV='prod': Input should be"),
        ("GEOCREDIT_PLATFORM_URL", "nonsense", "GEOCREDIT_PLATFORM_URL 'nonsense'"),
        ("GEOCREDIT_PLATFORM_URL", "http://h:port", "GEOCREDIT_PLATFORM_URL"),
        ("GEOCREDIT_DATA_DIR", "", "GEOCREDIT_DATA_DIR is empty"),
    ],
)
def test_bad_settings_name_their_variable(env, variable, value, says):
    line = one_line_error(geocredit("jobs", env={**env, variable: value}), 1)
    assert says in line
    assert "secret" not in line  # a password is never echoed


def test_a_data_folder_that_cannot_be_made_is_one_line(env, tmp_path):
    (tmp_path / "a-file").write_text("")
    embedded = {k: v for k, v in env.items() if k != "GEOCREDIT_DATABASE_URL"}
    embedded["GEOCREDIT_DATA_DIR"] = str(tmp_path / "a-file" / "data")
    line = one_line_error(geocredit("db", "url", env=embedded), 1)
    assert "cannot use the data folder" in line and "GEOCREDIT_DATA_DIR" in line
    assert "Not a directory" in line


def test_a_database_without_the_schema_says_to_migrate(env, empty_db_url):
    for command in (["jobs"], ["company", D_COMPANY], ["token", "list"]):
        line = one_line_error(
            geocredit(*command, env={**env, "GEOCREDIT_DATABASE_URL": empty_db_url}), 1
        )
        assert (
            line
            == "geocredit: error: the database has no geocredit schema yet: run geocredit migrate"
        )


def test_serve_on_localhost_resolves_it(env, filed):
    port = free_port()
    proc = subprocess.Popen(
        [*GEOCREDIT, "serve", "--host", "localhost", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd="/",
    )
    try:
        for _ in range(600):
            assert proc.poll() is None, proc.stderr.read()
            try:
                if httpx.get(f"http://localhost:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("serve --host localhost did not answer")
    finally:
        proc.terminate()
        proc.wait(30)
