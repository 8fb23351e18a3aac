"""The vocabulary in the database: every enum column takes exactly its enum's values."""

from enum import StrEnum

import pytest
import sqlalchemy as sa

from registry import migrate, vocabulary
from registry.db import make_engine
from registry.models import enum_columns
from scoring import model

COLUMNS = enum_columns()


@pytest.mark.parametrize("column", COLUMNS, ids=lambda c: f"{c.table.name}.{c.name}")
def test_an_enum_column_takes_its_values_and_refuses_any_other(engine, column):
    """On a copy of the table's constraints (no triggers, keys or NOT NULLs to satisfy)."""
    table, name = column.table.name, column.name
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE TEMP TABLE probe (LIKE {table} INCLUDING CONSTRAINTS)"))
        for other in column.table.columns:
            conn.execute(sa.text(f"ALTER TABLE probe ALTER COLUMN {other.name} DROP NOT NULL"))
        insert = sa.text(f"INSERT INTO probe ({name}) VALUES (:v)")
        for member in column.type.enum:
            conn.execute(insert, {"v": member.value})
        conn.execute(sa.text("SAVEPOINT outside"))
        for stray in ("NOT_IN_THE_ENUM", "", next(iter(column.type.enum)).value.swapcase()):
            with pytest.raises(sa.exc.IntegrityError, match=f"{table}_{name}"):
                conn.execute(insert, {"v": stray})
            conn.execute(sa.text("ROLLBACK TO SAVEPOINT outside"))
        conn.rollback()


def test_every_stored_enum_is_checked_by_the_constraint_the_model_declares():
    declared = {
        c.name
        for column in COLUMNS
        for c in column.table.constraints
        if isinstance(c, sa.CheckConstraint)
    }
    assert declared == {f"{c.table.name}_{c.name}" for c in COLUMNS}


@pytest.mark.parametrize(
    ("part", "whole"),
    [
        (vocabulary.InspectionSeverity, model.Severity),
        (vocabulary.FindingEventKind, model.FindingStatus),
        (vocabulary.AppealDecisionOutcome, model.AppealOutcome),
        (vocabulary.RepairDecisionOutcome, vocabulary.RepairOutcome),
    ],
)
def test_an_enum_of_some_members_takes_them_from_the_whole(part: type[StrEnum], whole):
    assert {(m.name, m.value) for m in part} < {(m.name, m.value) for m in whole}
    assert all(part(m.value) == whole(m.value) for m in part)


def test_the_upgrade_names_stored_values_outside_their_enum_and_changes_nothing(empty_db_url):
    migrate.upgrade(empty_db_url, "0010")
    eng = make_engine(empty_db_url)
    with eng.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO job_run (job, window_key, status, counts) "
                "VALUES ('pull', 'w', 'PAUSED', '{}')"
            )
        )
    with pytest.raises(RuntimeError, match=r"job_run\.status: 'PAUSED'"):
        migrate.upgrade(empty_db_url)
    with eng.connect() as conn:
        assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == "0010"
    eng.dispose()
