"""The `geocredit` command line (a contract: docs/operations.md, "Commands").

Exit 0 on success; on failure one line on stderr and a non-zero exit (2 for a mistake in the
command line itself), no traceback unless --debug. Progress and notes go to stderr, results to
stdout. Machine-readable results (URLs, tokens, ids, `--json`) are printed as they are — never
wrapped, styled or cut — so `U=$(geocredit db url)` and `geocredit jobs --json | jq` work.
"""

import json
import os
import sys
from datetime import date, datetime
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer
from rich.console import Console

from registry import db, embedded
from registry.settings import Settings, get_settings

# rich_markup_mode=None: click's plain help (rich help shows a <bool> placeholder on every flag).
# Sub-apps take the root's mode; they set it too, for when one is run on its own.
PLAIN_HELP: dict[str, Any] = {"rich_markup_mode": None, "pretty_exceptions_enable": False}

app = typer.Typer(
    no_args_is_help=True,
    help="geocredit: the geothermal reinjection credit registry (晋政办发〔2026〕14号).\n\n"
    "Each command exits 0 on success, otherwise prints one line on stderr (exit 2 for a "
    "mistake in the command line itself). docs/operations.md describes them all.",
    **PLAIN_HELP,
)
db_app = typer.Typer(no_args_is_help=True, help="The embedded PostgreSQL server.", **PLAIN_HELP)
audit_app = typer.Typer(no_args_is_help=True, help="The audit chain.", **PLAIN_HELP)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")


def _register_subcommands() -> None:
    from api.cli_files import files_app
    from api.cli_ingest import ingest_app
    from api.cli_jobs import jobs_app
    from api.cli_rulebook import rulebook_app
    from api.cli_service import service_app
    from api.cli_webhooks import webhooks_app

    # Commands defined there join the top level (geocredit pull, geocredit worker, …).
    for sub in (files_app, ingest_app, jobs_app, rulebook_app, service_app, webhooks_app):
        app.registered_commands.extend(sub.registered_commands)
        app.registered_groups.extend(sub.registered_groups)


# Sentences for people; soft_wrap: never cut into lines at the terminal's (or 80) columns.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
_state = {"debug": False}


class CliError(Exception):
    """An expected failure: its message is the one line the user sees."""


# ---------------------------------------------------------------- output


def emit(text: str = "") -> None:
    """A line of results on stdout exactly as it is (never wrapped, styled or cut)."""
    print(text, flush=True)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def emit_json(document: Any) -> None:
    """`--json`: one JSON document on stdout (times ISO 8601 with their offset)."""
    emit(json.dumps(document, ensure_ascii=False, indent=2, default=_json_value))


def show(renderable: Any) -> None:
    """A table for people on stdout: as wide as the terminal, or as wide as it needs when stdout
    is a pipe or a file (rich would wrap every row at 80 columns there)."""
    if out.is_terminal:
        out.print(renderable)
    else:
        Console(highlight=False, width=100_000, color_system=None).print(renderable)


def local_zone():
    """Times shown to people are in the rulebook's zone (Asia/Shanghai)."""
    from scoring.rulebook import load_rulebook

    return load_rulebook().zone


def local_time(t: datetime | None, seconds: bool = False) -> str:
    if t is None:
        return ""
    return t.astimezone(local_zone()).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else ""))


# ---------------------------------------------------------------- settings


def check_settings() -> Settings:
    """The GEOCREDIT_* settings, read and checked before any command runs: a bad value is one
    line naming its variable, not an error deep inside the command."""
    import pydantic

    try:
        settings = get_settings()
    except pydantic.ValidationError as exc:
        raise CliError(_settings_problem(exc)) from None
    if settings.database_url:  # empty is unset, as for the registry
        check_database_url(settings.database_url)
    raw_dir = os.environ.get("GEOCREDIT_DATA_DIR")
    if raw_dir is not None and not raw_dir.strip():
        raise CliError(
            "GEOCREDIT_DATA_DIR is empty: unset it (default ~/.local/share/geocredit) or name a "
            "folder"
        )
    path = settings.data_path
    if path.exists() and not path.is_dir():
        raise CliError(f"GEOCREDIT_DATA_DIR {path} is not a folder")
    check_platform_url(settings.platform_url, "GEOCREDIT_PLATFORM_URL")
    return settings


def _settings_problem(exc) -> str:
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        name = f"GEOCREDIT_{field.upper()}" if field else "a GEOCREDIT_* setting"
        problems.append(f"{name}={error.get('input')!r}: {error['msg']}")
    return "; ".join(problems)


_DATABASE_EXAMPLE = "postgresql://user:password@host:5432/database"


def check_database_url(text: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    unset = "unset it for the embedded server"
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        shown = "" if "@" in text else f" {text!r}"  # a URL may hold a password: not echoed
        raise CliError(
            f"GEOCREDIT_DATABASE_URL{shown} is not a database URL: give {_DATABASE_EXAMPLE}, "
            f"or {unset}"
        ) from None
    if url.drivername not in ("postgresql", "postgres", "postgresql+psycopg"):
        raise CliError(
            f"GEOCREDIT_DATABASE_URL must be a PostgreSQL URL ({_DATABASE_EXAMPLE}), not "
            f"{url.drivername}://…; or {unset}"
        )


def check_platform_url(text: str, name: str) -> str:
    """An http(s) URL with a host (the SensorThings service root), or one line naming `name`."""
    try:
        parts = urlsplit(text.strip())
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 — raises ValueError when the port is not a number
    except ValueError:
        ok = False
    if not ok:
        raise CliError(
            f"{name} {text!r} is not an http(s) URL: give the SensorThings service root, "
            "e.g. http://127.0.0.1:8765"
        )
    return text.strip()


# ---------------------------------------------------------------- the root and small commands


def _version(value: bool) -> None:
    if value:
        emit(f"geocredit {version('geocredit')}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    _state["debug"] = debug
    check_settings()


def _engine():
    """The database's engine: reachable and at the code's schema revision, else one line."""
    eng = db.engine()
    db.check_reachable(eng)
    check_schema(eng)
    return eng


def check_schema(eng) -> None:
    from registry import migrate as migrations

    with eng.connect() as conn:
        current = migrations.current_revision(conn)
    head = migrations.head_revision(eng.url.render_as_string(hide_password=False))
    if current is None:
        raise CliError("the database has no geocredit schema yet: run geocredit migrate")
    if current != head:
        raise CliError(
            f"the database schema is at revision {current}, this geocredit needs {head}: "
            "run geocredit migrate"
        )


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
    """Start the embedded server and print its URL.

    Nothing to do when it runs already, or when GEOCREDIT_DATABASE_URL is set."""
    emit(db.database_url())


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded server."""
    stopped = embedded.stop(get_settings().data_path)
    err.print("stopped" if stopped else "the embedded server was not running")


@db_app.command("url")
def db_url() -> None:
    """Print the database URL in use.

    The embedded server is started when it does not run."""
    emit(db.database_url())


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the chain's length and newest entry.

    The checkpoint (Ed25519) is appended to <data dir>/audit/checkpoints.jsonl. The key is
    <data dir>/audit/signing.key (made on first use, mode 0600) or GEOCREDIT_AUDIT_KEY_FILE.
    The worker writes one every hour; copy the file off the machine, so that `audit verify
    --checkpoints COPY` holds even against whoever controls this one."""
    from registry import audit

    settings = get_settings()
    key = audit.signing_key(settings, create=True)
    assert key is not None
    with _engine().begin() as conn:
        checkpoint = audit.write_checkpoint(conn, settings.data_path, key)
    at = checkpoint.at.astimezone(local_zone()).strftime("%Y-%m-%d %H:%M:%S %Z")
    newest = (
        f", newest {checkpoint.head_id} ({checkpoint.head_hash[:16]}…)"
        if checkpoint.head_id is not None
        else ""
    )
    emit(
        f"checkpoint at {at}: {checkpoint.entries} entries{newest}; appended to "
        f"{settings.data_path / audit.CHECKPOINTS_FILE}"
    )


@audit_app.command("verify")
def audit_verify(
    checkpoints: Path | None = typer.Option(
        None,
        "--checkpoints",
        metavar="FILE",
        help="Check against this copy of the checkpoints (default: "
        "<data dir>/audit/checkpoints.jsonl).",
    ),
) -> None:
    """Prove the audit chain intact.

    Every audited row is unchanged, and the chain is consistent with every signed checkpoint:
    entries removed from its end or re-chained since a checkpoint was signed are found."""
    from registry import audit

    settings = get_settings()
    path = checkpoints or settings.data_path / audit.CHECKPOINTS_FILE
    if checkpoints is not None and not checkpoints.is_file():
        raise CliError(
            f"{checkpoints} " + ("is not a file" if checkpoints.exists() else "does not exist")
        )
    lines = audit.read_checkpoints(path)
    key = audit.signing_key(settings) if lines else None
    with _engine().begin() as conn:
        report = audit.verify(conn)
        holding = audit.verify_checkpoints(conn, lines, key.public_key() if key else None, report)
    if not report.intact:
        for problem in report.problems:
            emit(problem)
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
    emit(f"audit chain intact: {report.entries} entries verified {against}")


# ---------------------------------------------------------------- failures


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


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fail(message: str, code: int = 1) -> int:
    print(f"geocredit: error: {_one_line(message)}", file=sys.stderr, flush=True)
    return code


def _file_problem(exc: OSError) -> str:
    """A file-system error as the user can act on it: what, where, and the setting behind it."""
    where = Path(os.fsdecode(exc.filename))
    problem = exc.strerror or exc.__class__.__name__
    data = get_settings().data_path
    if where == data or (where in data.parents and not where.is_dir()):
        return f"cannot use the data folder {data} (GEOCREDIT_DATA_DIR): {problem}"
    if data in where.parents:
        return f"{problem}: {where} (in the data folder, GEOCREDIT_DATA_DIR)"
    return f"{problem}: {where}"


def run(argv: list[str] | None = None) -> int:
    """Run the command line; the exit status."""
    try:
        result = app(args=argv, prog_name="geocredit", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except typer.TyperException as exc:  # a mistake in the command line: exit 2
        if type(exc).__name__ == "NoArgsIsHelpError":  # `geocredit token` alone: its help
            print(exc.format_message(), file=sys.stderr)
            return exc.exit_code
        ctx = getattr(exc, "ctx", None)
        see = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        return _fail(exc.format_message().replace("Value error, ", "") + see, exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        print("aborted", file=sys.stderr)
        return 130
    except Exception as exc:
        if _state["debug"]:
            raise
        if isinstance(exc, _expected_errors()):
            return _fail(str(exc) or exc.__class__.__name__)
        if isinstance(exc, OSError) and exc.filename is not None:
            return _fail(_file_problem(exc))
        return _fail(
            f"internal error ({exc.__class__.__name__}): {exc} — rerun with --debug for the "
            "traceback"
        )


def main() -> None:
    sys.exit(run())


_register_subcommands()
