"""Signed checkpoints of the audit chain: what a database superuser can do to the chain without
breaking its links — remove its newest entries, or rewrite a row and re-chain every entry after
it — is found by `audit verify`, in Python and as the command."""

import json
import os
import stat
import subprocess
import sys

import pytest
import sqlalchemy as sa

from registry import audit
from registry.db import make_engine
from registry.settings import Settings
from tests.conftest import drop_database, new_database

CODES = ("91350100M000100Y43", "91140100MA0K000019", "911401007011111117")


@pytest.fixture
def url(pg_admin_url, template_db):
    url = new_database(pg_admin_url, template_db)
    yield url
    drop_database(pg_admin_url, url)


@pytest.fixture
def engine(url):
    eng = make_engine(url)
    for code in CODES:
        add_company(eng, code)
    yield eng
    eng.dispose()


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path)


def add_company(engine, code: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO company (credit_code) VALUES (:c)"), {"c": code})


def checkpoint(engine, settings) -> audit.Checkpoint:
    with engine.begin() as conn:
        return audit.write_checkpoint(
            conn, settings.data_path, audit.signing_key(settings, create=True)
        )


def verify(engine, settings) -> tuple[audit.AuditReport, int]:
    lines = audit.read_checkpoints(settings.data_path / audit.CHECKPOINTS_FILE)
    key = audit.signing_key(settings)
    with engine.begin() as conn:
        report = audit.verify(conn)
        holding = audit.verify_checkpoints(conn, lines, key and key.public_key(), report)
    return report, holding


def as_superuser(engine, *statements: str) -> None:
    """What a database superuser can do: every trigger off, rows changed at will."""
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        conn.execute(sa.text("SET LOCAL timezone = 'UTC'"))  # as the audit trigger digests rows
        for statement in statements:
            conn.execute(sa.text(statement))


RECHAIN = """
DO $$
DECLARE entry record; prev text := '';
BEGIN
    FOR entry IN SELECT * FROM audit_log ORDER BY id LOOP
        UPDATE audit_log
        SET prev_hash = prev,
            hash = geocredit_audit_hash(prev, table_name, row_id, row_digest, actor, at)
        WHERE id = entry.id
        RETURNING hash INTO prev;
    END LOOP;
END $$
"""


def test_a_checkpoint_signs_the_chain_and_verify_checks_it(engine, settings):
    written = checkpoint(engine, settings)
    assert written.entries == 3 and written.head_id is not None and len(written.head_hash) == 64
    key_file = settings.data_path / "audit" / "signing.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    add_company(engine, "91110000100000000T")  # the chain goes on after a checkpoint
    second = checkpoint(engine, settings)
    assert second.entries == 4 and second.key == written.key  # the same key, made once
    lines = (settings.data_path / audit.CHECKPOINTS_FILE).read_text().splitlines()
    assert [json.loads(line)["entries"] for line in lines] == [3, 4]
    report, holding = verify(engine, settings)
    assert report.intact and holding == 2, report.problems


def test_removing_the_newest_row_with_its_audit_entry_is_found(engine, settings):
    checkpoint(engine, settings)
    as_superuser(
        engine,
        "DELETE FROM company WHERE id = (SELECT max(id) FROM company)",
        "DELETE FROM audit_log WHERE id = (SELECT max(id) FROM audit_log)",
    )
    with engine.begin() as conn:
        assert audit.verify(conn).intact  # the chain alone cannot tell
    report, holding = verify(engine, settings)
    assert holding == 0
    assert any("is gone: entries were removed" in p for p in report.problems), report.problems


def test_removing_the_newest_entries_after_more_were_added_is_found(engine, settings):
    checkpoint(engine, settings)
    add_company(engine, "91110000100000000T")
    as_superuser(
        engine,
        "DELETE FROM company WHERE credit_code IN ('911401007011111117', '91110000100000000T')",
        "DELETE FROM audit_log WHERE id >= (SELECT max(id) - 1 FROM audit_log)",
        "INSERT INTO company (credit_code) VALUES ('91110000100000000T')",
    )
    # the attacker adds the removed entries' successor again and re-chains: intact on its own
    as_superuser(
        engine,
        "INSERT INTO audit_log (at, actor, table_name, row_id, row_digest, prev_hash, hash) "
        "SELECT now(), 'x', 'company', c.id, "
        "encode(sha256(convert_to(to_jsonb(c)::text, 'UTF8')), 'hex'), '', '' "
        "FROM company c WHERE credit_code = '91110000100000000T'",
        RECHAIN,
    )
    with engine.begin() as conn:
        assert audit.verify(conn).intact
    report, _ = verify(engine, settings)
    assert not report.intact, "the checkpoint's head entry was removed"


def test_a_row_changed_and_the_chain_rewritten_after_it_is_found(engine, settings):
    checkpoint(engine, settings)
    as_superuser(
        engine,
        f"UPDATE company SET credit_code = '91350100M000100Y44' WHERE credit_code = '{CODES[0]}'",
        "UPDATE audit_log a SET row_digest = "
        "encode(sha256(convert_to(to_jsonb(c)::text, 'UTF8')), 'hex') "
        "FROM company c WHERE a.table_name = 'company' AND a.row_id = c.id",
        RECHAIN,
    )
    with engine.begin() as conn:
        assert audit.verify(conn).intact  # every link and digest agrees again
    report, holding = verify(engine, settings)
    assert holding == 0
    assert any("was rewritten" in p for p in report.problems), report.problems


def test_an_altered_or_foreign_checkpoint_does_not_count(engine, settings, tmp_path):
    checkpoint(engine, settings)
    path = settings.data_path / audit.CHECKPOINTS_FILE
    line = json.loads(path.read_text())
    forged = dict(line, entries=line["entries"] - 1)
    other = Settings(data_dir=tmp_path / "elsewhere")
    foreign = json.loads(checkpoint(engine, other).line())
    path.write_text("\n".join([json.dumps(forged), json.dumps(foreign), "{oops"]) + "\n")
    report, holding = verify(engine, settings)
    assert holding == 0 and report.problem_count == 3
    assert sum("not signed by this registry's key" in p for p in report.problems) == 2
    assert "checkpoint line 3 is not a checkpoint" in report.problems


def test_a_configured_key_file_that_is_missing_is_an_error_not_a_new_key(tmp_path):
    settings = Settings(data_dir=tmp_path, audit_key_file=tmp_path / "mounted" / "key.pem")
    with pytest.raises(audit.CheckpointError, match="does not exist"):
        audit.signing_key(settings, create=True)
    assert not (tmp_path / "mounted").exists()


def geocredit(*args, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "api", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        cwd="/",
    )


def test_the_commands(engine, url, tmp_path):
    env = {"GEOCREDIT_DATABASE_URL": url, "GEOCREDIT_DATA_DIR": str(tmp_path)}
    made = geocredit("audit", "checkpoint", env=env)
    assert made.returncode == 0, made.stderr
    assert "3 entries" in made.stdout
    intact = geocredit("audit", "verify", env=env)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "1 signed checkpoint(s) hold" in intact.stdout

    copy = tmp_path / "offsite.jsonl"
    copy.write_bytes((tmp_path / audit.CHECKPOINTS_FILE).read_bytes())
    (tmp_path / audit.CHECKPOINTS_FILE).unlink()  # the attacker removes the local file too
    as_superuser(
        engine,
        "DELETE FROM company WHERE id = (SELECT max(id) FROM company)",
        "DELETE FROM audit_log WHERE id = (SELECT max(id) FROM audit_log)",
    )
    fooled = geocredit("audit", "verify", env=env)
    assert fooled.returncode == 0 and "no signed checkpoints yet" in fooled.stdout
    caught = geocredit("audit", "verify", "--checkpoints", str(copy), env=env)
    assert caught.returncode == 1
    assert "entries were removed" in caught.stdout
    assert caught.stderr.strip().startswith("geocredit: error: audit chain broken: 1 problem")
