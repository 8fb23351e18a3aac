"""CLI commands for the service: serve, api, token create, export-schema, demo."""

import asyncio
import contextlib
import errno
import getpass
import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import typer

from registry.vocabulary import Role
from scoring.model import DecisionKind

service_app = typer.Typer(rich_markup_mode=None)
token_app = typer.Typer(
    no_args_is_help=True, help="API tokens of approval systems and staff.", rich_markup_mode=None
)
service_app.add_typer(token_app, name="token")

SERVER = "granian"
"""The production ASGI server (bench/eligibility.py measured it against uvicorn)."""


def run_server(
    target: str, host: str, port: int, workers: int = 1, log_level: str = "info"
) -> None:
    """Serve an app factory (`module:function`) with granian until interrupted."""
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    from api.observability import shared_metrics
    from registry import embedded
    from registry.settings import get_settings

    settings = get_settings()
    keep_database = (
        embedded.Watchdog(settings.data_path)
        if not settings.database_url
        else contextlib.nullcontext()
    )
    with shared_metrics(workers > 1, settings.data_path / "run"), keep_database:
        Granian(
            target,
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            workers=workers,
            factory=True,
            log_level=LogLevels(log_level),
            log_access=False,
            workers_kill_timeout=10,
        ).serve()


def listen_address(host: str, port: int) -> str:
    """The IP address to serve `host` on (a name such as localhost is resolved: the server
    takes addresses only), after checking that nothing listens on it already. granian binds
    with SO_REUSEPORT, so a second server would otherwise share the port with the first
    (requests split between them, and a second scheduler). One line when either fails."""
    from api.cli import CliError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    # IPv4 first: "localhost" means 127.0.0.1 to most people and their browsers' first try
    family, kind, proto, _, address = min(infos, key=lambda i: i[0] != socket.AF_INET)
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            busy = " (is geocredit serving there already?)" if exc.errno == errno.EADDRINUSE else ""
            raise CliError(f"cannot listen on {host}:{port}: {exc.strerror}{busy}") from None
    return address[0]


def _database_ready(migrate_embedded: bool) -> str:
    """The database URL, reachable and at the code's schema (the embedded default migrated to
    head when asked)."""
    from api.cli import check_schema, err
    from registry import db, migrate
    from registry.settings import get_settings

    url = db.database_url()
    db.check_reachable(db.engine())
    if migrate_embedded and not get_settings().database_url:
        migrate.upgrade(url)
        err.print(f"schema at {migrate.head_revision(url)}")
    else:
        check_schema(db.engine())
    return url


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise typer.BadParameter(f"{value} is not a port: give 1 to 65535")
    return value


LogLevel = Literal["critical", "error", "warning", "info", "debug"]
_HOST = typer.Option(
    "127.0.0.1", "--host", metavar="HOST", help="Address or host name to listen on."
)
_PORT = typer.Option(8000, "--port", metavar="PORT", callback=_port, help="Port to listen on.")
_LOG = typer.Option("info", "--log-level", help="Server log level.")


@service_app.command()
def serve(host: str = _HOST, port: int = _PORT, log_level: LogLevel = _LOG) -> None:
    """Run the API and the scheduler in one process.

    On the embedded default, the database is migrated first, and started again when it dies
    (/readyz answers 503 until it is back)."""
    address = listen_address(host, port)
    _database_ready(migrate_embedded=True)
    run_server("api.app:create_serve_app", address, port, 1, log_level)


@service_app.command()
def api(
    host: str = _HOST,
    port: int = _PORT,
    workers: int = typer.Option(1, "--workers", min=1, metavar="N", help="Worker processes."),
    log_level: LogLevel = _LOG,
) -> None:
    """Run the API alone (no scheduler)."""
    address = listen_address(host, port)
    _database_ready(migrate_embedded=False)
    run_server("api.app:create_api_app", address, port, workers, log_level)


_DURATION = re.compile(r"(\d+)\s*([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """`90d`, `12h`, `30m`, `2w` → a timedelta (positive)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not match or int(match[1]) == 0:
        raise typer.BadParameter(
            f"{text!r} is not a duration: a positive number and m, h, d or w (e.g. 90d, 12h)"
        )
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


async def create_token(
    url: str, role: Role, name: str, actor: str, expires_at: datetime | None = None
) -> tuple[int, str]:
    from registry import auth, db

    engine = db.make_async_engine(url, pool_size=1)
    try:
        async with db.transaction(db.session_factory(engine), actor) as session:
            client, token = await auth.create_client(session, name, role, expires_at)
    finally:
        await engine.dispose()
    return client.id, token


async def _with_session(url: str, work):
    from registry import db

    engine = db.make_async_engine(url, pool_size=1)
    try:
        async with db.transaction(db.session_factory(engine), f"cli:{getpass.getuser()}") as s:
            return await work(s)
    finally:
        await engine.dispose()


def _client_name(name: str) -> str:
    if not name.strip():
        raise typer.BadParameter("a client needs a name, e.g. the approval system's")
    return name.strip()


@token_app.command("create")
def token_create(
    role: Role = typer.Option(..., "--role", help="What the holder may do."),
    name: str = typer.Option(
        ...,
        "--name",
        metavar="NAME",
        callback=_client_name,
        help="Who holds it, e.g. the approval system's name.",
    ),
    expires_in: str | None = typer.Option(
        None,
        "--expires-in",
        metavar="DURATION",
        help="Refused after this long: a number and m, h, d or w (e.g. 90d, 12h). "
        "Default: never expires.",
    ),
) -> None:
    """Create an API client and print its token.

    The token is printed once, alone on the last line of stdout."""
    from api.cli import emit, err, local_time

    expires_at = None if expires_in is None else datetime.now(UTC) + parse_duration(expires_in)
    url = _database_ready(migrate_embedded=False)
    client_id, token = asyncio.run(
        create_token(url, role, name, f"cli:{getpass.getuser()}", expires_at)
    )
    until = "" if expires_at is None else f", expires {local_time(expires_at)} local time"
    err.print(
        f"client {client_id} ({role.value}, {name!r}{until}); the token is shown only now:",
        markup=False,
    )
    emit(token)


def _client_status(c, now: datetime) -> str:
    if c.revoked_at is not None:
        return "revoked"
    if c.expires_at is not None and c.expires_at <= now:
        return "expired"
    return "active"


@token_app.command("list")
def token_list(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON list instead of a table."),
) -> None:
    """Every API client and whether its token still works.

    Its id, name, role, when it was created, when its token expires, and its status: active,
    expired or revoked."""
    from rich.table import Table
    from rich.text import Text

    from api import cli
    from registry import auth

    url = _database_ready(migrate_embedded=False)
    clients = asyncio.run(_with_session(url, auth.list_clients))
    now = datetime.now(UTC)
    if as_json:
        cli.emit_json(
            [
                {
                    "id": c.id,
                    "name": c.name,
                    "role": c.role,
                    "status": _client_status(c, now),
                    "createdAt": c.created_at,
                    "expiresAt": c.expires_at,
                    "revokedAt": c.revoked_at,
                }
                for c in clients
            ]
        )
        return
    if not clients:
        cli.emit("no API clients yet (geocredit token create)")
        return
    table = Table(
        "id", "name", "role", "created", "expires", "status",
        title=f"API clients (times in {cli.local_zone()})",
    )  # fmt: skip
    for c in clients:
        status = _client_status(c, now)
        if status == "revoked":
            status = f"revoked {cli.local_time(c.revoked_at)}"
        expires = "never" if c.expires_at is None else cli.local_time(c.expires_at)
        table.add_row(
            str(c.id), Text(c.name), c.role, cli.local_time(c.created_at), expires, status
        )
    cli.show(table)


@token_app.command("revoke")
def token_revoke(
    client_id: int = typer.Argument(..., metavar="ID", help="The client's id (token list)."),
) -> None:
    """Revoke a client's token.

    It is refused at once by API processes started afterwards, and within 10 seconds by running
    ones (they keep tokens they checked that long)."""
    from api.cli import CliError, emit
    from registry import auth
    from registry.models import ApiClient

    url = _database_ready(migrate_embedded=False)

    async def revoke(session) -> tuple[bool, ApiClient | None]:
        return await auth.revoke(session, client_id), await session.get(ApiClient, client_id)

    revoked, client = asyncio.run(_with_session(url, revoke))
    if client is None:
        raise CliError(f"no API client {client_id} (geocredit token list)")
    if not revoked:
        emit(f"client {client_id} ({client.name!r}) was revoked already")
        return
    emit(
        f"revoked client {client_id} ({client.role}, {client.name!r}); running API processes "
        f"refuse its token within {auth.TOKEN_CACHE_SECONDS:.0f} s"
    )


@service_app.command("export-schema")
def export_schema(
    out: Path = typer.Option(
        None,
        "--out",
        metavar="FOLDER",
        help="Project folder to write into (default: this checkout).",
    ),
    check: bool = typer.Option(False, "--check", help="Write nothing; fail when files drift."),
) -> None:
    """Write the GraphQL schema and OpenAPI document from code.

    Into graphql/schema.graphql and openapi/openapi.json; --check only compares them."""
    from api import contracts
    from api.cli import CliError, err

    root = out or contracts.project_root()
    if check:
        stale = contracts.drifted(root)
        if stale:
            names = ", ".join(str(p) for p in stale)
            raise CliError(
                f"contracts drifted from the code: {names} (run geocredit export-schema)"
            )
        err.print("contracts match the code")
        return
    for path in contracts.write(root):
        err.print(f"wrote {path}")


DEMO_QUERY = (
    "query($c: String!, $k: ApplicationKind!) { eligibility(creditCode: $c, kind: $k) "
    "{ decision grade restrictedUntil reasons { code message policyClause } conditions } }"
)


@service_app.command()
def demo(
    host: str = _HOST,
    port: int = _PORT,
    start_afresh: bool = typer.Option(
        False, "--reset", help="Drop the embedded database and start afresh."
    ),
) -> None:
    """The whole chain on demo data, then the service.

    monitorsim (the stand-in platform), pull, scoring, the task force's records, a table of
    decisions, a token and a request to paste. Run again, it reuses its data (only what is new
    is pulled and recorded); --reset starts afresh."""
    import json
    import shlex

    from rich.table import Table
    from rich.text import Text

    from api import demo as the_demo
    from api.cli import CliError, emit, err, show

    address = listen_address(host, port)

    def table(rows, token: str, base: str, code: str) -> None:
        decisions = Table(title=f"Decisions for a water permit ({the_demo.KIND})")
        for column in ("company", "credit code", "grade", "score", "decision", "why"):
            decisions.add_column(column, no_wrap=column != "why")
        colour = {
            DecisionKind.ALLOW: "green",
            DecisionKind.RESTRICT: "yellow",
            DecisionKind.BLOCK: "red",
        }
        for r in rows:
            decisions.add_row(
                Text(r.name), r.credit_code, r.grade, r.score,
                Text(r.decision, colour[r.decision]), Text(r.why),
            )  # fmt: skip
        show(decisions)
        body = json.dumps({"query": DEMO_QUERY, "variables": {"c": code, "k": the_demo.KIND}})
        emit("\nApproval-system token (shown once):")
        emit(token)
        emit(f"\nAsk the API (GraphiQL: {base}/graphql):")
        emit(
            f"curl -s {base}/graphql -H 'Authorization: Bearer {token}' "
            f"-H 'Content-Type: application/json' -d {shlex.quote(body)}"
        )
        emit(f"\nA credit file in the terminal: geocredit company {code}")
        emit(f"\nServing {base} (API + scheduler); Ctrl-C to stop.")

    with err.status("starting") as spinner:

        def status(message: str) -> None:
            spinner.update(message)
            err.print(f"• {message}", markup=False)

        def serve() -> None:
            spinner.stop()
            run_server("api.app:create_serve_app", address, port, 1, "warning")

        try:
            the_demo.run(host, port, start_afresh, status, table, serve)
        except (the_demo.DemoRefused, the_demo.MonitorsimFailed) as exc:
            raise CliError(str(exc)) from None
