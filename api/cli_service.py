"""CLI commands for the service: serve, api, token create, export-schema, demo."""

import asyncio
import getpass
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
    from registry.settings import get_settings

    with shared_metrics(workers > 1, get_settings().data_path / "run"):
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
    """Migrate (embedded default), then run the API and the scheduler in one process."""
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
    _database_ready(migrate_embedded=False)
    run_server("api.app:create_api_app", host, port, workers, log_level)


async def create_token(url: str, role: Role, name: str, actor: str) -> tuple[int, str]:
    from registry import auth, db

    engine = db.make_async_engine(url, pool_size=1)
    try:
        async with db.transaction(db.session_factory(engine), actor) as session:
            client, token = await auth.create_client(session, name, role)
    finally:
        await engine.dispose()
    return client.id, token


@token_app.command("create")
def token_create(
    role: Role = typer.Option(..., "--role", help="What the holder may do."),
    name: str = typer.Option(..., "--name", help="Who holds it, e.g. the approval system's name."),
) -> None:
    """Create an API client; its token is printed once, alone on the last line of stdout."""
    from api.cli import err

    url = _database_ready(migrate_embedded=False)
    client_id, token = asyncio.run(create_token(url, role, name, f"cli:{getpass.getuser()}"))
    err.print(f"client {client_id} ({role.value}, {name!r}); the token is shown only now:")
    print(token)


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
