"""The reviewer console over HTTP against a started `geocredit api`: logging in with a token
(never kept in the cookie), form tokens on every POST, the role table deciding who may do what,
records through the same use cases as GraphQL, and every page's assets served by the app."""

import re
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa

from registry.auth import token_hash
from registry.vocabulary import Role
from scoring import periods
from scoring.rulebook import load_rulebook
from tests.api.conftest import make_token
from tests.api.console_sample import file_company
from tests.api.support import code

COMPANY = code(7601)
TODAY = periods.local_date(datetime.now(UTC), load_rulebook()).isoformat()


@pytest.fixture(scope="module")
def filed(api_engine):
    return file_company(api_engine, COMPANY, "盂县清泉热能有限公司", projects=2)


def form_token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def reports(engine: sa.Engine, project: str) -> list[str]:
    """Who recorded each monthly report of the project."""
    with engine.connect() as conn:
        return list(
            conn.scalars(
                sa.text(
                    "SELECT r.recorded_by FROM monthly_report r JOIN project p "
                    "ON p.id = r.project_id WHERE p.code = :p"
                ),
                {"p": project},
            )
        )


def login(server, token: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=30)
    page = client.get("/console/login")
    answer = client.post(
        "/console/login",
        data={"csrf_token": form_token(page.text), "token": token, "next": "/console/supervision"},
    )
    assert answer.status_code == 303, answer.text
    return client


def test_login_needs_a_staff_token_and_the_cookie_holds_no_token(server, tokens, api_engine):
    client = httpx.Client(base_url=server.url, timeout=30)
    assert client.get("/console/supervision").headers["location"].startswith("/console/login")
    page = client.get("/console/login")
    for token, why in (
        (tokens[Role.APPROVAL_SYSTEM], "无权使用审核控制台"),
        ("gct_not-a-token", "令牌无效"),
    ):
        refused = client.post(
            "/console/login", data={"csrf_token": form_token(page.text), "token": token}
        )
        assert refused.status_code == 400 and why in refused.text
        assert "geocredit_console=" not in refused.headers.get("set-cookie", "")
        page = refused
    # A login form posted from elsewhere (no matching login cookie) is refused.
    forged = httpx.post(
        server.url + "/console/login",
        data={"csrf_token": form_token(page.text), "token": tokens[Role.REVIEWER]},
    )
    assert forged.status_code == 400 and "geocredit_console=" not in forged.headers.get(
        "set-cookie", ""
    )

    answer = client.post(
        "/console/login",
        data={"csrf_token": form_token(page.text), "token": tokens[Role.REVIEWER]},
    )
    assert answer.status_code == 303
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith("geocredit_console=")
    )
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/console"} <= attributes
    session_id = client.cookies["geocredit_console"]
    assert tokens[Role.REVIEWER] not in cookie
    with api_engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT id_hash FROM console_session")).scalars().all()
    assert token_hash(session_id) in stored and session_id not in stored
    assert client.get("/console/supervision").status_code == 200


def test_every_post_needs_the_session_form_token(server, tokens, filed, api_engine):
    client = login(server, tokens[Role.REVIEWER])
    data = {"project_code": filed.projects[0], "month": TODAY[:7], "submitted_on": TODAY}
    for sent in ({}, {"csrf_token": "guessed"}):
        refused = client.post(f"/console/company/{COMPANY}/monthly_report", data=data | sent)
        assert refused.status_code == 403 and "CSRF" in refused.text
    assert reports(api_engine, filed.projects[0]) == []
    refused = client.post("/console/logout")
    assert refused.status_code == 403


def test_a_form_records_through_the_use_case_and_shows_the_rescored_file(
    server, tokens, filed, api_engine
):
    client = login(server, tokens[Role.REVIEWER])
    page = client.get(f"/console/company/{COMPANY}")
    assert page.status_code == 200 and "盂县清泉热能有限公司" in page.text
    data = {
        "csrf_token": form_token(page.text),
        "project_code": filed.projects[0],
        "month": TODAY[:7],
        "submitted_on": TODAY,
    }
    done = client.post(f"/console/company/{COMPANY}/monthly_report", data=data)
    assert done.status_code == 303
    assert done.headers["location"].startswith(f"/console/company/{COMPANY}?done=monthly_report")
    shown = client.get(done.headers["location"])
    assert "月度运行报告已记录；重新评分后信用等级" in shown.text
    assert reports(api_engine, filed.projects[0]) == ["reviewer:test reviewer"]

    # A refusal comes back with the use case's problems and what was typed.
    bad = client.post(
        f"/console/company/{COMPANY}/inspection",
        data={
            "csrf_token": form_token(page.text),
            "inspected_on": TODAY,
            "inspector": "",
            "findings-0-description": "回灌井停用",
            "findings-0-severity": "MAJOR",
            "findings-0-rectification_deadline": "2020-01-01",
        },
    )
    assert bad.status_code == 422
    assert "INVALID_INPUT" in bad.text and "回灌井停用" in bad.text


def test_the_role_table_decides_what_a_reviewer_may_do(server, tokens, filed, api_engine):
    reviewer = login(server, tokens[Role.REVIEWER])
    page = reviewer.get(f"/console/company/{COMPANY}")
    assert "列入失信名单（管理员）" not in page.text and "记录监督检查" in page.text
    refused = reviewer.post(
        f"/console/company/{COMPANY}/listing",
        data={"csrf_token": form_token(page.text), "reason": "屡查屡犯"},
    )
    assert refused.status_code == 403 and "place_listing" in refused.text
    admin = login(server, tokens[Role.ADMIN])
    page = admin.get(f"/console/company/{COMPANY}")
    assert "列入失信名单（管理员）" in page.text
    listed = admin.post(
        f"/console/company/{COMPANY}/listing",
        data={"csrf_token": form_token(page.text), "reason": "屡查屡犯", "critical": "on"},
    )
    assert listed.status_code == 303
    shown = admin.get(listed.headers["location"])
    assert "已列入失信名单（严重违规）：屡查屡犯" in shown.text
    assert re.search(r'id="min-end">\d{4}-\d\d-\d\d<', shown.text)


def test_logging_out_or_revoking_the_token_ends_the_session(server, api_engine):
    token = make_token(api_engine, Role.REVIEWER, "赵审核")
    client = login(server, token)
    page = client.get("/console/supervision")
    out = client.post("/console/logout", data={"csrf_token": form_token(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/console/login"
    assert client.get("/console/supervision").status_code == 303

    client = login(server, token)
    with api_engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE api_client SET revoked_at = now() WHERE token_hash = :h"),
            {"h": token_hash(token)},
        )
    assert client.get("/console/supervision").status_code == 303


def test_a_token_that_expires_ends_its_session(server, api_engine):
    token = make_token(api_engine, Role.REVIEWER, "钱审核")
    client = login(server, token)
    assert client.get("/console/supervision").status_code == 200
    with api_engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE api_client SET expires_at = now() WHERE token_hash = :h"),
            {"h": token_hash(token)},
        )
    assert client.get("/console/supervision").status_code == 303


def test_pages_load_only_assets_of_the_app(server, tokens, filed):
    client = login(server, tokens[Role.REVIEWER])
    pages = {
        "/console/supervision": client.get("/console/supervision"),
        f"/console/company/{COMPANY}": client.get(f"/console/company/{COMPANY}"),
        "/graphql": httpx.get(server.url + "/graphql", headers={"Accept": "text/html"}),
        "/schema": httpx.get(server.url + "/schema"),
    }
    for path, page in pages.items():
        assert page.status_code == 200, path
        urls = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', page.text)
        assets = [u for u in urls if u.endswith((".js", ".css", ".svg"))]
        assert assets, path
        assert all(u.startswith("/static/") for u in assets), (path, assets)
        for url in assets:
            assert httpx.get(server.url + url).status_code == 200, url
    assert "Authorization" in pages["/graphql"].text and "Authorization" in pages["/schema"].text
    csp = pages["/console/supervision"].headers["content-security-policy"]
    assert "script-src 'self'" in csp
