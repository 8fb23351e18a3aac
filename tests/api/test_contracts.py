"""The published contracts match the code (CI fails on drift), and the CLI that writes them."""

import subprocess
import sys
from pathlib import Path

from api import contracts

ROOT = Path(__file__).resolve().parents[2]


def test_the_published_contracts_match_the_code():
    stale = contracts.drifted(ROOT)
    assert not stale, f"{stale} drifted from the code: run `geocredit export-schema`"


def test_the_sdl_keeps_the_approval_systems_contract():
    sdl = (ROOT / "graphql" / "schema.graphql").read_text()
    for line in (
        "eligibility(creditCode: String!, kind: ApplicationKind!): Eligibility!",
        "eligibilities(requests: [EligibilityRequest!]!): [Eligibility!]!",
        "screenApplication(input: ScreenApplicationInput!): ScreenApplicationPayload!",
        "enum Decision {",
        "decisionId: ID",
        "userErrors: [UserError!]!",
        "restrictedUntil: DateTime",
        "asOf: DateTime!",
        "interface Node {",
    ):
        assert line in sdl, line


def test_export_schema_writes_both_files_and_check_finds_drift(tmp_path):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "api", "export-schema", "--out", str(tmp_path), *args],
            capture_output=True,
            text=True,
            cwd="/",
        )

    drift = run("--check")
    assert drift.returncode == 1 and "drifted" in drift.stderr
    assert run().returncode == 0
    assert (tmp_path / "graphql" / "schema.graphql").read_text() == contracts.sdl()
    assert (tmp_path / "openapi" / "openapi.json").read_text() == contracts.openapi()
    assert run("--check").returncode == 0
