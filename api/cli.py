"""The `geocredit` command line (a contract: docs/operations.md, "Commands").

Exit 0 on success; on failure one line on stderr and a non-zero exit, no traceback unless --debug.
Progress goes to stderr, results to stdout.
"""

import sys
from importlib.metadata import version

import typer
from rich.console import Console

from registry import db, embedded
from registry.settings import get_settings

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="geocredit: the geothermal reinjection credit registry (晋政办发〔2026〕14号).",
)
db_app = typer.Typer(no_args_is_help=True, help="The embedded PostgreSQL server.")
audit_app = typer.Typer(no_args_is_help=True, help="The audit chain.")
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")


def _register_subcommands() -> None:
    from api.cli_ingest import ingest_app
    from api.cli_jobs import jobs_app
    from api.cli_service import service_app

    # Commands defined there join the top level (geocredit pull, geocredit worker, …).
    for sub in (ingest_app, jobs_app, service_app):
        app.registered_commands.extend(sub.registered_commands)
        app.registered_groups.extend(sub.registered_groups)


out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
_state = {"debug": False}


class CliError(Exception):
    """An expected failure: its message is the one line the user sees."""


def _version(value: bool) -> None:
    if value:
        out.print(f"geocredit {version('geocredit')}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    _state["debug"] = debug


def _engine():
    eng = db.engine()
    db.check_reachable(eng)
    return eng


@app.command()
def migrate() -> None:
    """Bring the schema to the latest revision."""
    from registry import migrate as migrations

    url = db.database_url()
    db.check_reachable(db.engine())
    migrations.upgrade(url)
    err.print(f"schema at {migrations.head_revision(url)}")


@db_app.command("start")
def db_start() -> None:
    """Start the embedded server (no-op when running or when GEOCREDIT_DATABASE_URL is set)."""
    out.print(db.database_url())


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded server."""
    stopped = embedded.stop(get_settings().data_path)
    err.print("stopped" if stopped else "the embedded server was not running")


@db_app.command("url")
def db_url() -> None:
    """Print the database URL in use (starting the embedded server if needed)."""
    out.print(db.database_url())


@audit_app.command("verify")
def audit_verify() -> None:
    """Prove the audit chain intact and every audited row unchanged."""
    from registry import audit

    with _engine().begin() as conn:
        report = audit.verify(conn)
    if not report.intact:
        for problem in report.problems:
            out.print(problem)
        shown = (
            f" (first {len(report.problems)} shown)"
            if report.problem_count > len(report.problems)
            else ""
        )
        raise CliError(f"audit chain broken: {report.problem_count} problem(s){shown}")
    out.print(f"audit chain intact: {report.entries} entries verified")


def _expected_errors() -> tuple[type[BaseException], ...]:
    import pydantic
    import sqlalchemy as sa

    from registry.creditcode import InvalidCreditCode

    return (
        CliError,
        db.DatabaseUnavailable,
        embedded.EmbeddedDatabaseError,
        InvalidCreditCode,
        pydantic.ValidationError,
        sa.exc.OperationalError,
    )


_register_subcommands()


def main() -> None:
    try:
        app()  # usage errors and --help are handled (and exited) by typer itself
    except KeyboardInterrupt:
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:
        if _state["debug"]:
            raise
        expected = isinstance(exc, _expected_errors())
        message = " ".join(str(exc).split()) or exc.__class__.__name__
        prefix = "error" if expected else f"internal error ({exc.__class__.__name__})"
        hint = "" if expected else " — rerun with --debug for the traceback"
        print(f"geocredit: {prefix}: {message}{hint}", file=sys.stderr)
        sys.exit(1)
