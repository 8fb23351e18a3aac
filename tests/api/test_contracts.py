"""The published contracts match the code (CI fails on drift), and the CLI that writes them."""

import subprocess
import sys
from pathlib import Path

from graphql import build_schema

from api import contracts

ROOT = Path(__file__).resolve().parents[2]


def test_the_published_contracts_match_the_code():
    stale = contracts.drifted(ROOT)
    assert not stale, f"{stale} drifted from the code: run `geocredit export-schema`"


def _signature(field) -> tuple[str, dict[str, str]]:
    return str(field.type), {name: str(arg.type) for name, arg in field.args.items()}


def test_the_sdl_keeps_the_approval_systems_contract():
    """The contract approval systems code against changes only additively."""
    schema = build_schema((ROOT / "graphql" / "schema.graphql").read_text())
    query, mutation = schema.query_type.fields, schema.mutation_type.fields
    assert _signature(query["eligibility"]) == (
        "Eligibility!",
        {"creditCode": "String!", "kind": "ApplicationKind!", "asOf": "DateTime"},
    )
    assert _signature(query["eligibilities"]) == (
        "[Eligibility!]!",
        {"requests": "[EligibilityRequest!]!", "asOf": "DateTime"},
    )
    assert _signature(query["decisionChanges"]) == (
        "DecisionChangeConnection!",
        {"after": "String", "first": "Int"},
    )
    assert query["decisionChanges"].ast_node.arguments[1].default_value.value == "100"
    assert _signature(mutation["screenApplication"]) == (
        "ScreenApplicationPayload!",
        {"input": "ScreenApplicationInput!"},
    )
    assert set(schema.type_map["Decision"].values) == {"ALLOW", "RESTRICT", "BLOCK"}
    eligibility = schema.type_map["Eligibility"].fields
    assert str(eligibility["restrictedUntil"].type) == "DateTime"
    assert str(eligibility["asOf"].type) == "DateTime!"
    payload = schema.type_map["ScreenApplicationPayload"].fields
    assert str(payload["decisionId"].type) == "ID"
    assert str(payload["userErrors"].type) == "[UserError!]!"
    change = schema.type_map["DecisionChange"].fields
    assert {n: str(f.type) for n, f in change.items()} == {
        "creditCode": "String!", "changedAt": "DateTime!", "previous": "StandingSummary",
        "current": "StandingSummary!", "rulebookVersion": "String!",
    }  # fmt: skip
    assert "Node" in schema.type_map


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
