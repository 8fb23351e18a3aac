"""Every command's --help is click's plain help: no `<bool>` placeholder on a flag, no boxes,
and each command's summary in its group's list whole (not cut with "...")."""

import pytest
import typer.main
from typer.testing import CliRunner

from api.cli import app


def _paths(command, path=()):
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if name != "monitorsim":  # monitorsim's own help: tests/monitorsim
            yield from _paths(sub, (*path, name))


PATHS = list(_paths(typer.main.get_command(app)))


def test_every_command_is_covered():
    names = {" ".join(p) for p in PATHS}
    assert {"company", "eligibility", "jobs", "token list", "db url", "audit verify"} <= names


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "geocredit")
def test_help_is_plain(path):
    result = CliRunner().invoke(
        app, [*path, "--help"], prog_name="geocredit", env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0, result.output
    text = result.output
    assert text.startswith("Usage: geocredit")
    assert "<bool>" not in text
    assert not set("╭╮╰╯│") & set(text)
    if "Commands:" in text:
        listed = text.split("Commands:", 1)[1]
        assert "..." not in listed, listed
    for line in text.splitlines():
        assert len(line) <= 80 or line.strip().startswith("--"), line
