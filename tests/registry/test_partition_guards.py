"""Observation partitions cannot be dropped, detached or renamed away; a watermark an earlier
version moved into the future is rewound by the migration."""

import pytest
import sqlalchemy as sa

from registry import migrate
from registry.db import make_engine
from tests.conftest import scalar


@pytest.fixture(scope="module")
def month(engine):
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT geocredit_ensure_observation_partition('2025-10-01')"))
        conn.execute(
            sa.text(
                "INSERT INTO observation VALUES (1, 1, '2025-10-10T00:15:00+00', 0, 1.5, "
                "'2025-10-10T00:16:00+00', 1)"
            )
        )
    return "observation_202510"


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE observation_202510",
        "DROP TABLE observation_202510, quarantine",
        "DROP TABLE observation CASCADE",
        "ALTER TABLE observation DETACH PARTITION observation_202510",
        "ALTER TABLE observation DETACH PARTITION observation_202510 CONCURRENTLY",
        "ALTER TABLE observation_202510 RENAME TO archive_202510",
    ],
)
def test_partitions_cannot_be_dropped_detached_or_renamed(engine, month, statement):
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text(statement))
    attached = scalar(
        engine,
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'observation'::regclass "
        "AND inhrelid = 'observation_202510'::regclass AND NOT inhdetachpending",
    )
    assert attached == 1
    assert scalar(engine, "SELECT count(*) FROM observation WHERE platform_obs_id = 1") == 1


def test_other_tables_are_left_alone(engine, month):
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TEMP TABLE scratch (x int)"))
        conn.execute(sa.text("ALTER TABLE scratch ADD COLUMN y int"))
        conn.execute(sa.text("DROP TABLE scratch"))
        conn.execute(sa.text("CREATE TABLE observation_notes (x int)"))
        conn.execute(sa.text("DROP TABLE observation_notes"))
        conn.execute(sa.text("SELECT geocredit_ensure_observation_partition('2025-11-01')"))


def test_a_watermark_in_the_future_is_rewound_to_the_latest_row_read_that_was_due(
    empty_db_url,
):
    migrate.upgrade(empty_db_url, "0007")
    eng = make_engine(empty_db_url)
    with eng.begin() as conn:
        for month in ("2026-01-01", "2099-01-01"):
            conn.execute(sa.text("SELECT geocredit_ensure_observation_partition(:m)"), {"m": month})
        conn.execute(
            sa.text(
                "INSERT INTO observation VALUES "
                "(1, 1, '2026-01-05T00:15:00+00', 0, 1.0, '2026-01-05T00:16:00+00', 10), "
                "(1, 1, '2099-01-01T00:00:00+00', 0, 1.0, '2099-01-01T00:00:00+00', 11)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO quarantine (reason, detail, platform_obs_id, result_time, raw) "
                "VALUES ('negative_value', '', 12, '2026-01-05T00:16:00+00', '{}'), "
                "('malformed', '', NULL, '2026-02-01T00:00:00+00', '{}')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO ingest_watermark VALUES "
                "('observations', '2099-01-01T00:00:00+00', 11, now())"
            )
        )
    migrate.upgrade(empty_db_url)
    with eng.connect() as conn:
        mark = conn.execute(
            sa.text(
                "SELECT to_char(result_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), "
                "platform_obs_id FROM ingest_watermark"
            )
        ).one()
    assert tuple(mark) == ("2026-01-05 00:16", 12)
    eng.dispose()
