"""The `geocredit` command line (a contract: docs/operations.md, "Commands").

Exit 0 on success; on failure one line on stderr and a non-zero exit, no traceback unless --debug.
Progress goes to stderr, results to stdout.
"""

import sys
from importlib.metadata import version
from pathlib import Path

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
    print(db.database_url())  # whole, however long: rich would wrap it at the terminal's width


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded server."""
    stopped = embedded.stop(get_settings().data_path)
    err.print("stopped" if stopped else "the embedded server was not running")


@db_app.command("url")
def db_url() -> None:
    """Print the database URL in use (starting the embedded server if needed)."""
    print(db.database_url())


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the chain's length and newest entry (Ed25519) and append the checkpoint to
    <data dir>/audit/checkpoints.jsonl. The key is <data dir>/audit/signing.key (made on first
    use, mode 0600) or GEOCREDIT_AUDIT_KEY_FILE. The worker writes one every hour; copy the file
    off the machine, so that `audit verify --checkpoints COPY` holds even against whoever
    controls this one."""
    from registry import audit

    settings = get_settings()
    key = audit.signing_key(settings, create=True)
    assert key is not None
    with _engine().begin() as conn:
        checkpoint = audit.write_checkpoint(conn, settings.data_path, key)
    at = checkpoint.at.astimezone(_local_zone()).strftime("%Y-%m-%d %H:%M:%S %Z")
    newest = (
        f", newest {checkpoint.head_id} ({checkpoint.head_hash[:16]}…)"
        if checkpoint.head_id is not None
        else ""
    )
    out.print(
        f"checkpoint at {at}: {checkpoint.entries} entries{newest}; appended to "
        f"{settings.data_path / audit.CHECKPOINTS_FILE}",
        soft_wrap=True,
    )


def _local_zone():
    from zoneinfo import ZoneInfo

    return ZoneInfo(get_settings().timezone)


@audit_app.command("verify")
def audit_verify(
    checkpoints: Path | None = typer.Option(
        None,
        "--checkpoints",
        help="Check against this copy of the checkpoints (default: "
        "<data dir>/audit/checkpoints.jsonl).",
    ),
) -> None:
    """Prove the audit chain intact, every audited row unchanged, and the chain consistent with
    every signed checkpoint: entries removed from its end or re-chained since one was signed are
    found."""
    from registry import audit

    settings = get_settings()
    path = checkpoints or settings.data_path / audit.CHECKPOINTS_FILE
    if checkpoints is not None and not checkpoints.exists():
        raise CliError(f"{checkpoints} does not exist")
    lines = audit.read_checkpoints(path)
    key = audit.signing_key(settings) if lines else None
    with _engine().begin() as conn:
        report = audit.verify(conn)
        holding = audit.verify_checkpoints(conn, lines, key.public_key() if key else None, report)
    if not report.intact:
        for problem in report.problems:
            out.print(problem)
        shown = (
            f" (first {len(report.problems)} shown)"
            if report.problem_count > len(report.problems)
            else ""
        )
        raise CliError(f"audit chain broken: {report.problem_count} problem(s){shown}")
    against = (
        f"and {holding} signed checkpoint(s) hold"
        if lines
        else "(no signed checkpoints yet: geocredit audit checkpoint)"
    )
    out.print(f"audit chain intact: {report.entries} entries verified {against}")


def _expected_errors() -> tuple[type[BaseException], ...]:
    import pydantic
    import sqlalchemy as sa

    from registry.audit import CheckpointError
    from registry.creditcode import InvalidCreditCode

    return (
        CliError,
        CheckpointError,
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
