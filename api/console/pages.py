"""The console's pages and form posts (each handler reads its request itself: the logged-in
reviewer first, then path and query). Reads go through api.console.views, records through the
registry's use cases (api.console.forms → registry.actions); after a record the browser is sent
back to the credit file, which shows the company as rescored."""

from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Template
from litestar.router import Router

from api.console import forms, session, views
from api.console.session import BadFormToken, LoginRequired, Reviewer
from api.context import Services
from api.errors import Unauthenticated
from api.observability import log
from registry import auth, db
from registry.actions import Acting, Refused, RescoreFailed
from registry.creditcode import InvalidCreditCode, normalize_credit_code
from registry.roles import Action, Forbidden, may
from registry.standing import load_standings

SECURITY_HEADERS = {
    # Every script, style and image comes from this server: nothing inline, nothing from a CDN.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _services(request: Request) -> Services:
    return request.app.state.services


def _page(
    request: Request,
    name: str,
    reviewer: Reviewer | None,
    status_code: int = 200,
    cookies: list[Cookie] | None = None,
    **context: Any,
) -> Template:
    """A page, or only its part when htmx asks for `partial`."""
    partial = context.pop("partial", None)
    if partial and request.headers.get("hx-request"):
        name = partial
    return Template(
        template_name=name,
        context={
            "reviewer": reviewer,
            "csrf_field": session.CSRF_FIELD,
            "Action": Action,
            "label": views.label,
            **context,
        },
        status_code=status_code,
        headers=SECURITY_HEADERS,
        cookies=cookies or [],
    )


def _code(raw: str) -> str:
    try:
        return normalize_credit_code(raw)
    except InvalidCreditCode:
        raise NotFoundException(f"{raw} 不是有效的统一社会信用代码") from None


async def _form(request: Request) -> dict[str, str]:
    return dict((await request.form()).items())


def _statuses(request: Request) -> list[str]:
    """The finding statuses to show (none: all)."""
    return [s for s in request.query_params.getall("status", []) if s in views.STATUSES]


# ---------------------------------------------------------------- login


@get("/", name="console")
async def home() -> Redirect:
    return Redirect(f"{session.PATH}/supervision")


@get("/login", name="console-login")
async def login_page(request: Request) -> Template:
    next = request.query_params.get("next")
    cookie, value = session.login_cookie(request)
    return _page(
        request,
        "login.html",
        None,
        cookies=[cookie],
        login_token=value,
        next=session.safe_next(next),
    )


@post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    target = session.safe_next(form.get("next"))

    def again(message: str) -> Template:
        cookie, value = session.login_cookie(request)
        return _page(
            request,
            "login.html",
            None,
            400,
            [cookie],
            login_token=value,
            next=target,
            error=message,
        )

    if not session.login_form_ok(request, form):
        return again("登录页面已过期，请重新输入令牌。")
    services = _services(request)
    try:
        client = await services.authenticate(f"Bearer {form.get('token', '').strip()}")
    except Unauthenticated:
        return again("令牌无效或已被吊销。")
    if not may(client.role, Action.READ_CREDIT_FILES):
        return again(f"角色 {client.role} 无权使用审核控制台（需审核员或管理员令牌）。")
    now = datetime.now(UTC)
    async with db.transaction(services.sessions, f"console:{client.name}") as s:
        session_id, _ = await auth.open_console_session(s, client, now, session.LIFETIME)
    log.info("console login", client=client.name, role=client.role.value)
    return Redirect(
        target,
        status_code=303,
        cookies=[
            session.session_cookie(request, session_id),
            session.expired_cookie(request, session.LOGIN_COOKIE),
        ],
    )


@post("/logout")
async def logout(request: Request) -> Redirect:
    reviewer = await session.reviewer(request)
    session.check_form_token(reviewer, await _form(request))
    async with db.transaction(_services(request).sessions, "console") as s:
        await auth.close_console_session(s, reviewer.session_id)
    return Redirect(session.login_url(), status_code=303, cookies=[session.expired_cookie(request)])


# ---------------------------------------------------------------- lists


@get("/supervision", name="console-supervision")
async def supervision(request: Request) -> Template:
    reviewer = await session.reviewer(request)
    sort = request.query_params.get("sort", "next_due")
    desc = request.query_params.get("desc") == "true"
    services = _services(request)
    now = datetime.now(UTC)
    async with services.reads.connect() as conn:
        rows, more = await views.supervision(conn, now, services.rulebook, sort, desc)
    return _page(
        request,
        "supervision.html",
        reviewer,
        partial="supervision_table.html",
        rows=rows,
        more=more,
        sort=sort if sort in views.SORTS else "next_due",
        desc=desc,
        limit=views.SUPERVISION_MAX,
    )


@get("/search", name="console-search")
async def search(request: Request) -> Template:
    reviewer = await session.reviewer(request)
    text = request.query_params.get("q", "").strip()
    rows = []
    if text:
        async with _services(request).reads.connect() as conn:
            rows = await views.search(conn, text, datetime.now(UTC))
    return _page(request, "search.html", reviewer, partial="search_results.html", q=text, rows=rows)


# ---------------------------------------------------------------- the credit file


async def _credit_file(
    request: Request,
    reviewer: Reviewer,
    code: str,
    status_code: int = 200,
    statuses: list[str] | None = None,
    **context: Any,
) -> Template:
    services = _services(request)
    now = datetime.now(UTC)
    async with services.reads.connect() as conn:
        page = await views.credit_file(conn, code, now, services.rulebook, statuses or [])
    if page is None:
        raise NotFoundException(f"登记簿中没有 {code} 的信用档案")
    done = forms.FORMS.get(request.query_params.get("done", ""))
    return _page(
        request,
        "company.html",
        reviewer,
        status_code,
        page=page,
        code=code,
        now=now,
        done=done,
        forms=forms.FORMS,
        statuses=statuses or [],
        statuses_all=views.STATUSES,
        **context,
    )


@get("/company/{code:str}", name="console-company")
async def company(request: Request) -> Template:
    reviewer = await session.reviewer(request)
    code = _code(request.path_params["code"])
    return await _credit_file(request, reviewer, code, statuses=_statuses(request))


@get("/company/{code:str}/findings", name="console-findings")
async def findings(request: Request) -> Response:
    """The findings, filtered by status: the table alone for htmx, else the whole file."""
    reviewer = await session.reviewer(request)
    code = _code(request.path_params["code"])
    status = _statuses(request)
    if not request.headers.get("hx-request"):
        query = "&".join(f"status={s}" for s in status)
        return Redirect(f"{session.PATH}/company/{code}?{query}#findings")
    services = _services(request)
    async with services.reads.connect() as conn:
        filed = (await load_standings(conn, [code], datetime.now(UTC)))[code]
        if filed is None:
            raise NotFoundException(code)
        page = await views.findings_page(conn, filed.company_id, status)
    return _page(
        request,
        "findings_table.html",
        reviewer,
        code=code,
        findings=page.rows,
        more=page.has_next,
    )


@post("/company/{code:str}/{name:str}", name="console-record")
async def record(request: Request) -> Response:
    reviewer = await session.reviewer(request)
    code, name = _code(request.path_params["code"]), request.path_params["name"]
    form = await _form(request)
    session.check_form_token(reviewer, form)
    spec = forms.FORMS.get(name)
    if spec is None:
        raise NotFoundException(name)
    services = _services(request)
    acting = Acting(reviewer.client, services.sessions, services.rulebook, datetime.now(UTC))
    try:
        await spec.perform(acting, spec.parse(code, form))
    except Refused as e:
        return await _credit_file(
            request, reviewer, code, 422, failed=name, values=form, problems=e.problems
        )
    return Redirect(f"{session.PATH}/company/{code}?done={name}#standing", status_code=303)


# ---------------------------------------------------------------- errors


def _login_required(request: Request, exc: LoginRequired) -> Response:
    target = session.login_url(request.url.path if request.method == "GET" else None)
    if request.headers.get("hx-request"):
        return Response("", headers={"HX-Redirect": target})
    return Redirect(target, status_code=303, cookies=[session.expired_cookie(request)])


def _bad_form_token(request: Request, exc: BadFormToken) -> Template:
    message = "表单已过期或来源不明（CSRF 校验失败），请刷新页面后重试。"
    return _page(request, "error.html", None, 403, title="请求被拒绝", message=message)


def _forbidden(request: Request, exc: Forbidden) -> Template:
    allowed = "、".join(sorted(exc.allowed))
    message = f"角色 {exc.role} 不能执行 {exc.action}（允许的角色：{allowed}）。"
    return _page(request, "error.html", None, 403, title="无权操作", message=message)


def _not_found(request: Request, exc: NotFoundException) -> Template:
    return _page(request, "error.html", None, 404, title="未找到", message=exc.detail)


def _rescore_failed(request: Request, exc: RescoreFailed) -> Template:
    request_id = request.scope["state"].get("request_id", "-")
    log.error("console record not kept", error=str(exc), request_id=request_id)
    return _page(
        request,
        "error.html",
        None,
        500,
        title="记录未保存",
        message=f"重新评分失败，本次记录未保存。请将请求编号 {request_id} 告知运维人员。",
    )


ROUTER = Router(
    path=session.PATH,
    route_handlers=[
        home,
        login_page,
        login,
        logout,
        supervision,
        search,
        company,
        findings,
        record,
    ],
    exception_handlers={
        LoginRequired: _login_required,
        BadFormToken: _bad_form_token,
        Forbidden: _forbidden,
        RescoreFailed: _rescore_failed,
        NotFoundException: _not_found,
    },
    include_in_schema=False,
)
