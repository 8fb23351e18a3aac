"""`geocredit rulebook show | check FILE | preview FILE`: the rulebook in force, a candidate
file's problems, and what it would do to every company (registry/whatif.py) — writing nothing.
docs/rulebook.md explains the rules and how a new version is installed."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

rulebook_app = typer.Typer(rich_markup_mode=None)
rules_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    short_help="The rulebook: show, check, preview a change.",
    help="The rulebook: the version in force, checking a new one, previewing what it would do.",
)
rulebook_app.add_typer(rules_app, name="rulebook")

_JSON = typer.Option(False, "--json", help="Print one JSON document instead of tables.")
_FILE = typer.Argument(
    ..., metavar="FILE", exists=True, dir_okay=False, readable=True, help="A rulebook TOML file."
)
_NOT_PARAMETERS = {"title", "clause"}


def _cli():
    from api import cli  # imported late: api.cli imports this module

    return cli


def _parameters(rule) -> str:
    values = rule.model_dump(mode="json")
    shown = (
        f"{k}={sorted(v) if isinstance(v, list) else v}"
        for k, v in values.items()
        if k not in _NOT_PARAMETERS and not k.startswith("message")
    )
    return ", ".join(shown)


@rules_app.command("show", short_help="The rulebook in force and its rules.")
def show(
    version: str | None = typer.Option(
        None, "--version", help="An installed version (default: the one in force)."
    ),
    as_json: bool = _JSON,
) -> None:
    """The rulebook in force (or an installed version): its scope and every rule with its
    policy clause and parameters."""
    from scoring.rulebook import RulebookError, installed_versions, load_rulebook

    cli = _cli()
    try:
        rb = load_rulebook(version=version)
    except RulebookError as exc:
        raise cli.CliError(str(exc)) from None
    in_force = load_rulebook().version
    if as_json:
        cli.emit_json(
            {"inForce": in_force, "installed": list(installed_versions())}
            | rb.model_dump(mode="json")
        )
        return
    state = "in force" if rb.version == in_force else f"installed; {in_force} is in force"
    cli.emit(f"rulebook v{rb.version} ({state}; installed: {', '.join(installed_versions())})")
    cli.emit(f"{rb.policy}")
    cli.emit(f"scores monitoring from {rb.applies_from} on; local time {rb.timezone}")
    table = Table("rule", "title", "clause", "parameters")
    for rule_id in type(rb.rules).model_fields:
        rule = getattr(rb.rules, rule_id)
        table.add_row(rule_id, rule.title, rule.clause, _parameters(rule))
    cli.show(table)


@rules_app.command("check", short_help="Name every problem of a rulebook file.")
def check(file: Path = _FILE) -> None:
    """Validate a rulebook file: every problem named by its key, one per line on stdout."""
    from scoring.rulebook import installed_versions, load_rulebook, rulebook_problems

    cli = _cli()
    problems = rulebook_problems(file.read_bytes())
    for key, message in problems:
        cli.emit(f"{key}: {message}")
    if problems:
        raise cli.CliError(f"{file}: {len(problems)} problem(s); it is not a valid rulebook")
    rb = load_rulebook(file)
    note = ""
    if rb.version in installed_versions():
        installed = load_rulebook(version=rb.version)
        if installed != rb:
            raise cli.CliError(
                f"{file}: version {rb.version} is installed with other values; a changed "
                "rulebook needs a new version"
            )
        note = " (the installed one)"
    cli.emit(f"{file}: a valid rulebook, version {rb.version}{note}")


@rules_app.command("preview", short_help="What a rulebook would change, company by company.")
def preview(file: Path = _FILE, as_json: bool = _JSON) -> None:
    """Every company whose score, grade or decision would differ under FILE on the same stored
    data, now, before → after, and the counts per grade and decision. Writes nothing."""
    from api.cli_jobs import _progress
    from registry import whatif
    from scoring.rulebook import RulebookError, load_rulebook

    cli = _cli()
    try:
        candidate = load_rulebook(file)
    except RulebookError as exc:
        raise cli.CliError(f"{exc} (geocredit rulebook check {file} lists every problem)") from None
    engine = cli._engine()
    with _progress() as progress:
        result = whatif.preview(engine, load_rulebook(), candidate, progress=progress)
    if as_json:
        cli.emit_json(preview_json(result))
        return
    cli.emit(
        f"v{result.before_version} → v{result.after_version}: {len(result.changed)} of "
        f"{result.companies} companies would differ"
    )
    if result.changed:
        table = Table("company", "name", "score", "grade", "decision")
        for code, name, b, a in result.changed:
            table.add_row(
                code,
                name,
                f"{b.score:g} → {a.score:g}",
                f"{b.grade} → {a.grade}",
                f"{b.decision} → {a.decision}",
            )
        cli.show(table)
    counts = Table("", "before", "after")
    for kind in ("grades", "decisions"):
        keys = sorted(set(result.before[kind]) | set(result.after[kind]))
        for k in keys:
            counts.add_row(k, str(result.before[kind][k]), str(result.after[kind][k]))
    cli.show(counts)
    for problem in result.errors:
        cli.err.print(f"not previewed: {problem}")


def preview_json(result) -> dict:
    """`rulebook preview --json`: one JSON object (docs/rulebook.md, Versions)."""

    def outcome(o) -> dict:
        return {"score": o.score, "grade": o.grade, "decision": o.decision}

    def counts(side: dict) -> dict:
        return {kind: dict(sorted(c.items())) for kind, c in side.items()}

    return {
        "from": result.before_version,
        "to": result.after_version,
        "companies": [
            {"creditCode": code, "name": name, "before": outcome(b), "after": outcome(a)}
            for code, name, b, a in result.changed
        ],
        "summary": {
            "companies": result.companies,
            "changed": len(result.changed),
            "before": counts(result.before),
            "after": counts(result.after),
            "errors": result.errors,
        },
    }
