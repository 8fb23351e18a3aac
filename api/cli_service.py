"""CLI commands for the service: serve, api, token create, export-schema, demo."""

import asyncio
import contextlib
import errno
import getpass
import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer

from registry.models import Role

service_app = typer.Typer()
token_app = typer.Typer(no_args_is_help=True, help="API tokens of approval systems and staff.")
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


def check_port_free(host: str, port: int) -> None:
    """Fail with one line when something listens on host:port already. granian binds with
    SO_REUSEPORT, so a second server would otherwise share the port with the first (requests
    split between them, and a second scheduler)."""
    from api.cli import CliError

    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            busy = " (is geocredit serving there already?)" if exc.errno == errno.EADDRINUSE else ""
            raise CliError(f"cannot listen on {host}:{port}: {exc.strerror}{busy}") from None


def _database_ready(migrate_embedded: bool) -> str:
    """The database URL, reachable; the embedded default migrated to head when asked."""
    from api.cli import err
    from registry import db, migrate
    from registry.settings import get_settings

    url = db.database_url()
    db.check_reachable(db.engine())
    if migrate_embedded and not get_settings().database_url:
        migrate.upgrade(url)
        err.print(f"schema at {migrate.head_revision(url)}")
    return url


_HOST = typer.Option("127.0.0.1", "--host", help="Address to listen on.")
_PORT = typer.Option(8000, "--port", help="Port to listen on.")
_LOG = typer.Option("info", "--log-level", help="Server log level.")


@service_app.command()
def serve(host: str = _HOST, port: int = _PORT, log_level: str = _LOG) -> None:
    """Migrate (embedded default), then run the API and the scheduler in one process. On the
    embedded default, a database that dies is started again (and `/readyz` answers 503 until
    it is back)."""
    check_port_free(host, port)
    _database_ready(migrate_embedded=True)
    run_server("api.app:create_serve_app", host, port, 1, log_level)


@service_app.command()
def api(
    host: str = _HOST,
    port: int = _PORT,
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes."),
    log_level: str = _LOG,
) -> None:
    """Run the API alone (no scheduler)."""
    check_port_free(host, port)
    _database_ready(migrate_embedded=False)
    run_server("api.app:create_api_app", host, port, workers, log_level)


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


@token_app.command("create")
def token_create(
    role: Role = typer.Option(..., "--role", help="What the holder may do."),
    name: str = typer.Option(..., "--name", help="Who holds it, e.g. the approval system's name."),
    expires_in: str | None = typer.Option(
        None,
        "--expires-in",
        help="Refused after this long: a number and m, h, d or w (e.g. 90d, 12h). "
        "Default: never expires.",
    ),
) -> None:
    """Create an API client; its token is printed once, alone on the last line of stdout."""
    from api.cli import err

    expires_at = None if expires_in is None else datetime.now(UTC) + parse_duration(expires_in)
    url = _database_ready(migrate_embedded=False)
    client_id, token = asyncio.run(
        create_token(url, role, name, f"cli:{getpass.getuser()}", expires_at)
    )
    until = "" if expires_at is None else f", expires {_local(expires_at)} local time"
    err.print(f"client {client_id} ({role.value}, {name!r}{until}); the token is shown only now:")
    print(token)


def _local(t: datetime) -> str:
    from zoneinfo import ZoneInfo

    from registry.settings import get_settings

    return t.astimezone(ZoneInfo(get_settings().timezone)).strftime("%Y-%m-%d %H:%M")


@token_app.command("list")
def token_list() -> None:
    """Every API client: id, name, role, created, expiry and whether its token still works."""
    from rich.console import Console
    from rich.table import Table

    from api.cli import out
    from registry import auth

    url = _database_ready(migrate_embedded=False)
    clients = asyncio.run(_with_session(url, auth.list_clients))
    now = datetime.now(UTC)
    table = Table("id", "name", "role", "created", "expires", "status", title=_zone_note())
    for c in clients:
        if c.revoked_at is not None:
            status = f"revoked {_local(c.revoked_at)}"
        elif c.expires_at is not None and c.expires_at <= now:
            status = "expired"
        else:
            status = "active"
        expires = "never" if c.expires_at is None else _local(c.expires_at)
        table.add_row(str(c.id), c.name, c.role, _local(c.created_at), expires, status)
    # Piped output would default to 80 columns and wrap every row.
    wide = out if out.is_terminal else Console(highlight=False, width=160)
    wide.print(table if clients else "no API clients yet (geocredit token create)")


def _zone_note() -> str:
    from registry.settings import get_settings

    return f"API clients (times in {get_settings().timezone})"


@token_app.command("revoke")
def token_revoke(
    client_id: int = typer.Argument(..., help="The client's id (token list)."),
) -> None:
    """Revoke a client's token. It is refused at once by API processes started afterwards, and
    within 10 seconds by running ones (they keep tokens they checked that long)."""
    from api.cli import CliError, out
    from registry import auth
    from registry.models import ApiClient

    url = _database_ready(migrate_embedded=False)

    async def revoke(session) -> tuple[bool, ApiClient | None]:
        return await auth.revoke(session, client_id), await session.get(ApiClient, client_id)

    revoked, client = asyncio.run(_with_session(url, revoke))
    if client is None:
        raise CliError(f"no API client {client_id} (geocredit token list)")
    if not revoked:
        out.print(f"client {client_id} ({client.name!r}) was revoked already", soft_wrap=True)
        return
    out.print(
        f"revoked client {client_id} ({client.role}, {client.name!r}); running API processes "
        f"refuse its token within {auth.TOKEN_CACHE_SECONDS:.0f} s",
        soft_wrap=True,
    )


@service_app.command("export-schema")
def export_schema(
    out: Path = typer.Option(
        None, "--out", help="Project folder to write into (default: this checkout)."
    ),
    check: bool = typer.Option(False, "--check", help="Write nothing; fail when files drift."),
) -> None:
    """Write graphql/schema.graphql and openapi/openapi.json from the code."""
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
def demo(host: str = _HOST, port: int = _PORT) -> None:
    """The whole chain on the embedded default: monitorsim, pull, scoring, a table of decisions,
    a token and a request to paste; then the service until Ctrl-C."""
    import json
    import shlex

    from rich.console import Console
    from rich.table import Table

    from api import demo as the_demo
    from api.cli import err, out

    check_port_free(host, port)

    def show(rows, token: str, base: str, code: str) -> None:
        table = Table(title=f"Decisions for a water permit ({the_demo.KIND})")
        for column in ("company", "credit code", "grade", "score", "decision", "why"):
            table.add_column(column, no_wrap=column != "why")
        colour = {"ALLOW": "green", "RESTRICT": "yellow", "BLOCK": "red"}
        for r in rows:
            decision = f"[{colour[r.decision]}]{r.decision}[/]"
            table.add_row(r.name, r.credit_code, r.grade, r.score, decision, r.why)
        # Piped output would default to 80 columns and cut the table.
        (out if out.is_terminal else Console(highlight=False, width=160)).print(table)
        body = json.dumps({"query": DEMO_QUERY, "variables": {"c": code, "k": the_demo.KIND}})
        out.print("\nApproval-system token (shown once):")
        print(token)
        out.print("\nAsk the API (GraphiQL: " + base + "/graphql):")
        print(
            f"curl -s {base}/graphql -H 'Authorization: Bearer {token}' "
            f"-H 'Content-Type: application/json' -d {shlex.quote(body)}"
        )
        out.print(f"\nServing {base} (API + scheduler); Ctrl-C to stop.")

    with err.status("starting") as spinner:

        def status(message: str) -> None:
            spinner.update(message)
            err.print(f"• {message}")

        def serve() -> None:
            spinner.stop()
            run_server("api.app:create_serve_app", host, port, 1, "warning")

        the_demo.run(host, port, status, show, serve)
