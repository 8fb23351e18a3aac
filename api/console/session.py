"""Logging in to the console: a reviewer or admin pastes an API token once and gets a session.

- The session cookie holds a random session id (HttpOnly, SameSite=Strict, Path=/console,
  Secure over HTTPS); the database keeps only its SHA-256 (registry.auth), never the token.
  A revoked token ends its sessions at once; logging out deletes the session.
- Every form carries the session's own random token (synchronizer token): a POST without it is
  refused. The login form, before any session, carries a random value that must equal the one
  in a short-lived login cookie (double submit).
- Who may log in is the role table's READ_CREDIT_FILES (registry.roles)."""

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from litestar import Request
from litestar.datastructures import Cookie

from api.context import Services
from registry import auth
from registry.roles import Action, may

PATH = "/console"
COOKIE = "geocredit_console"
LOGIN_COOKIE = "geocredit_console_login"
LIFETIME = timedelta(hours=12)
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Reviewer:
    """The logged-in caller of a console request."""

    client: auth.Client
    csrf_token: str
    session_id: str

    def may(self, action: Action | str) -> bool:
        return may(self.client.role, Action(action))


class LoginRequired(Exception):
    """No valid session: the console answers with the login page."""


class BadFormToken(Exception):
    """A POST without the session's form token (cross-site request forgery, or a stale page)."""


async def reviewer(request: Request) -> Reviewer:
    """The logged-in reviewer of a request; LoginRequired without a valid session."""
    session_id = request.cookies.get(COOKIE)
    if not session_id:
        raise LoginRequired
    services: Services = request.app.state.services
    async with services.reads.connect() as conn:
        login = await auth.console_login(conn, session_id, datetime.now(UTC))
    if login is None or not may(login.client.role, Action.READ_CREDIT_FILES):
        raise LoginRequired
    return Reviewer(login.client, login.csrf_token, session_id)


def check_form_token(reviewer: Reviewer, form: dict) -> None:
    sent = form.get(CSRF_FIELD) or ""
    if not secrets.compare_digest(str(sent), reviewer.csrf_token):
        raise BadFormToken


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def session_cookie(request: Request, session_id: str) -> Cookie:
    return Cookie(
        key=COOKIE,
        value=session_id,
        path=PATH,
        max_age=int(LIFETIME.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def expired_cookie(request: Request, key: str = COOKIE) -> Cookie:
    return Cookie(
        key=key, value="", path=PATH, max_age=0, httponly=True, samesite="strict",
        secure=_secure(request),
    )  # fmt: skip


def login_cookie(request: Request) -> tuple[Cookie, str]:
    """A fresh double-submit value for the login form, and its cookie."""
    value = secrets.token_urlsafe(32)
    cookie = Cookie(
        key=LOGIN_COOKIE,
        value=value,
        path=PATH,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return cookie, value


def login_form_ok(request: Request, form: dict) -> bool:
    expected = request.cookies.get(LOGIN_COOKIE) or ""
    sent = str(form.get(CSRF_FIELD) or "")
    return bool(expected) and secrets.compare_digest(sent, expected)


def login_url(next_path: str | None = None) -> str:
    url = f"{PATH}/login"
    return f"{url}?next={quote(next_path)}" if next_path else url


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a console path only (no open redirect)."""
    if value and value.startswith(PATH + "/") and not value.startswith("//"):
        return value
    return f"{PATH}/supervision"
