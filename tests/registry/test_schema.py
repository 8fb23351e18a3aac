"""The schema on a real PostgreSQL: migrations, drift, append-only guards, the audit chain."""

import itertools

import pytest
import sqlalchemy as sa
from alembic import command

from registry import audit, migrate
from registry.db import make_engine
from registry.models import APPEND_ONLY_TABLES
from tests.conftest import scalar


def test_upgrade_downgrade_upgrade_round_trips(empty_db_url):
    migrate.upgrade(empty_db_url)
    migrate.downgrade(empty_db_url, "base")
    eng = make_engine(empty_db_url)
    with eng.connect() as conn:
        assert sa.inspect(conn).get_table_names() == ["alembic_version"]
    migrate.upgrade(empty_db_url)
    with eng.connect() as conn:
        assert migrate.is_at_head(conn, empty_db_url)
    eng.dispose()


def test_models_and_migrations_do_not_drift(db_url):
    command.check(migrate.alembic_config(db_url))  # raises when autogenerate finds a difference


def test_a_migration_keeps_stored_rows(empty_db_url):
    migrate.upgrade(empty_db_url, "0001")
    eng = make_engine(empty_db_url)
    with eng.begin() as conn:
        conn.execute(sa.text("INSERT INTO company (credit_code) VALUES ('91350100M000100Y43')"))
    migrate.upgrade(empty_db_url)
    assert scalar(eng, "SELECT credit_code FROM company") == "91350100M000100Y43"
    eng.dispose()


_codes = itertools.count()


@pytest.fixture
def company_id(engine):
    with engine.begin() as conn:
        return conn.execute(
            sa.text("INSERT INTO company (credit_code) VALUES (:c) RETURNING id"),
            {"c": f"T{next(_codes):017d}"},
        ).scalar_one()


@pytest.mark.parametrize(
    "statement", ["UPDATE company SET credit_code = 'X'", "DELETE FROM company"]
)
def test_credit_file_rows_cannot_be_changed(engine, company_id, statement):
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.text(f"{statement} WHERE id = :id"), {"id": company_id})


@pytest.mark.parametrize("table", [*APPEND_ONLY_TABLES, "observation", "quarantine", "audit_log"])
def test_every_append_only_table_refuses_truncate(engine, table):
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {table} CASCADE"))


def test_observation_partitions_are_created_on_demand(engine):
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT geocredit_ensure_observation_partition('2025-12-31')"))
        conn.execute(sa.text("SELECT geocredit_ensure_observation_partition('2025-12-01')"))
        conn.execute(
            sa.text(
                "INSERT INTO observation VALUES (1, 1, '2025-12-31T23:45:00+00', 0, 1.5, "
                "'2026-01-01T00:00:00+00', 1)"
            )
        )
    assert scalar(engine, "SELECT count(*) FROM observation_202512") == 1
    for statement in ("UPDATE observation_202512 SET value = 2", "TRUNCATE observation_202512"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(statement))
    assert scalar(engine, "SELECT count(*) FROM observation_202512") == 1


def test_partitions_made_before_the_truncate_guard_get_it(empty_db_url):
    migrate.upgrade(empty_db_url, "0003")
    eng = make_engine(empty_db_url)
    with eng.begin() as conn:
        conn.execute(sa.text("SELECT geocredit_ensure_observation_partition('2025-11-01')"))
    migrate.upgrade(empty_db_url)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), eng.begin() as conn:
        conn.execute(sa.text("TRUNCATE observation_202511"))
    eng.dispose()


def _verify(engine) -> audit.AuditReport:
    with engine.begin() as conn:
        return audit.verify(conn)


def test_every_insert_is_chained_and_attributed(engine):
    before = scalar(engine, "SELECT count(*) FROM audit_log")
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT set_config('geocredit.actor', 'reviewer:王芳', true)"))
        conn.execute(sa.text("INSERT INTO company (credit_code) VALUES ('91140100MA0K000019')"))
    assert scalar(engine, "SELECT count(*) FROM audit_log") == before + 1
    assert scalar(engine, "SELECT actor FROM audit_log ORDER BY id DESC LIMIT 1") == "reviewer:王芳"
    report = _verify(engine)
    assert report.intact, report.problems
    assert report.entries == before + 1


def _tamper(engine, sql: str) -> None:
    # A superuser bypassing the triggers: exactly what verify must catch.
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        conn.execute(sa.text(sql))


@pytest.fixture
def tamper_engine(pg_admin_url, template_db):
    from tests.conftest import drop_database, new_database

    url = new_database(pg_admin_url, template_db)
    eng = make_engine(url)
    with eng.begin() as conn:
        for code in ("91350100M000100Y43", "91140100MA0K000019", "911401007011111117"):
            conn.execute(sa.text("INSERT INTO company (credit_code) VALUES (:c)"), {"c": code})
    assert _verify(eng).intact
    yield eng
    eng.dispose()
    drop_database(pg_admin_url, url)


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        (
            "UPDATE company SET credit_code = '91350100M000100Y44' WHERE id = 2",
            "company row 2 was altered",
        ),
        ("DELETE FROM company WHERE id = 3", "company row 3 was removed"),
        (
            "INSERT INTO company (id, credit_code) VALUES (99, 'X')",
            "company row 99 has no audit entry",
        ),
        ("DELETE FROM audit_log WHERE id = 2", "does not follow the entry before it"),
        (
            "UPDATE audit_log SET actor = 'someone else' WHERE id = 1",
            "audit entry 1 (company 1) was altered",
        ),
    ],
)
def test_verify_finds_any_altered_or_removed_row(tamper_engine, sql, says):
    _tamper(tamper_engine, sql)
    report = _verify(tamper_engine)
    assert not report.intact
    assert any(says in p for p in report.problems), report.problems


def test_verify_counts_every_problem_beyond_those_it_lists(tamper_engine):
    _tamper(tamper_engine, "UPDATE company SET credit_code = reverse(credit_code)")
    with tamper_engine.begin() as conn:
        report = audit.verify(conn, max_problems=2)
    assert report.problem_count == 3
    assert len(report.problems) == 2
    assert not report.intact


def test_rows_audited_before_effective_from_keep_their_digests(empty_db_url):
    """Migration 0009 adds effective_from to version tables: rows recorded before it still
    verify, and a value set on one of them afterwards is an alteration."""
    migrate.upgrade(empty_db_url, "0008")
    eng = make_engine(empty_db_url)
    with eng.begin() as conn:
        conn.execute(sa.text("INSERT INTO company (credit_code) VALUES ('91350100M000100Y43')"))
        conn.execute(sa.text("INSERT INTO project (code) VALUES ('P1')"))
        conn.execute(
            sa.text(
                "INSERT INTO project_version (project_id, company_id, name, type, city, "
                "operating, source) VALUES (1, 1, 'p', 'MEDIUM_DEEP', '太原', true, 'x')"
            )
        )
    migrate.upgrade(empty_db_url)
    with eng.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO project_version (project_id, company_id, name, type, city, "
                "operating, source, effective_from) "
                "VALUES (1, 1, 'p', 'MEDIUM_DEEP', '太原', false, 'x', '2026-01-10T00:00+08')"
            )
        )
    assert _verify(eng).intact
    _tamper(eng, "UPDATE project_version SET effective_from = now() WHERE id = 1")
    report = _verify(eng)
    assert report.problems == ["project_version row 1 was altered after it was recorded"]
    eng.dispose()
