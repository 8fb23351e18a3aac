"""token expiry; rows read again are found by their platform id; observation partitions refuse
DROP and DETACH; a watermark from the future is rewound

- `api_client.expires_at`: a token may expire (NULL: never).
- `quarantine.platform_obs_id` is indexed: a row that every pull reads again (a resultTime not yet
  due) is looked up there so that it is quarantined once.
- DROP of `observation` or of a monthly partition, and DETACH of a partition, raise (event
  triggers; TRUNCATE is refused since 0004). Event triggers can only be made by a superuser: run
  by anyone else, this revision leaves them out with a warning (`geocredit migrate` as a
  superuser adds them; the other changes do not depend on them).
- A watermark more than 10 minutes ahead of now (an earlier version let a row from the future
  move it, and every later row was skipped) goes back to the latest row read that was due, so
  that the next pull reads the skipped rows; storage is idempotent.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PARTITION = "^observation_[0-9]{6}$"

_GUARDS = f"""
CREATE FUNCTION geocredit_guard_observation_drop() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE dropped record;
BEGIN
    FOR dropped IN SELECT * FROM pg_event_trigger_dropped_objects() LOOP
        IF dropped.object_type = 'table' AND NOT dropped.is_temporary
           AND (dropped.object_name = 'observation' OR dropped.object_name ~ '{_PARTITION}') THEN
            RAISE EXCEPTION 'observations are append-only: % of % is not allowed',
                tg_tag, dropped.object_identity
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'a superuser archiving a month on purpose can ALTER EVENT TRIGGER '
                             'geocredit_no_observation_drop DISABLE, then ENABLE it again';
        END IF;
    END LOOP;
END $$;

-- After any ALTER TABLE: every monthly table is an attached partition, under its own name.
CREATE FUNCTION geocredit_guard_observation_partitions() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE odd text;
BEGIN
    IF to_regclass('observation') IS NULL THEN
        RETURN;
    END IF;
    SELECT c.relname INTO odd
    FROM pg_class c
    LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = 'observation'::regclass
    WHERE c.relkind = 'r'
      AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'observation'::regclass)
      AND ((c.relname ~ '{_PARTITION}' AND (i.inhrelid IS NULL OR i.inhdetachpending))
           OR (i.inhrelid IS NOT NULL AND c.relname !~ '{_PARTITION}'))
    LIMIT 1;
    IF odd IS NOT NULL THEN
        RAISE EXCEPTION 'observations are append-only: % would detach or rename partition %',
            tg_tag, odd
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'a superuser archiving a month on purpose can ALTER EVENT TRIGGER '
                         'geocredit_no_observation_detach DISABLE, then ENABLE it again';
    END IF;
END $$;

-- DETACH ... CONCURRENTLY commits its first step before any trigger at the end of the command
-- could refuse it: refused up front.
CREATE FUNCTION geocredit_guard_concurrent_detach() RETURNS event_trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_query() ~* '\\mdetach\\s+partition\\M' AND current_query() ~* '\\mconcurrently\\M' THEN
        RAISE EXCEPTION 'observations are append-only: DETACH PARTITION CONCURRENTLY is not allowed'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END $$;

CREATE EVENT TRIGGER geocredit_no_observation_drop ON sql_drop
    EXECUTE FUNCTION geocredit_guard_observation_drop();
CREATE EVENT TRIGGER geocredit_no_observation_detach ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION geocredit_guard_observation_partitions();
CREATE EVENT TRIGGER geocredit_no_concurrent_detach ON ddl_command_start
    WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION geocredit_guard_concurrent_detach();
"""

_DROP_GUARDS = """
DROP EVENT TRIGGER IF EXISTS geocredit_no_concurrent_detach;
DROP EVENT TRIGGER IF EXISTS geocredit_no_observation_detach;
DROP EVENT TRIGGER IF EXISTS geocredit_no_observation_drop;
DROP FUNCTION IF EXISTS geocredit_guard_concurrent_detach();
DROP FUNCTION IF EXISTS geocredit_guard_observation_partitions();
DROP FUNCTION IF EXISTS geocredit_guard_observation_drop();
"""

# A watermark ahead of now + 10 min goes back to the latest (resultTime, @iot.id) read — stored or
# quarantined — that is not; with none, it is removed (the next pull starts at the beginning).
_REWIND = """
UPDATE ingest_watermark w
SET result_time = l.result_time, platform_obs_id = l.platform_obs_id, updated_at = now()
FROM (
    SELECT result_time, platform_obs_id FROM (
        SELECT result_time, platform_obs_id FROM observation
        UNION ALL
        SELECT result_time, platform_obs_id FROM quarantine WHERE platform_obs_id IS NOT NULL
    ) r
    WHERE result_time <= now() + interval '10 minutes'
    ORDER BY result_time DESC, platform_obs_id DESC LIMIT 1
) l
WHERE w.result_time > now() + interval '10 minutes';
DELETE FROM ingest_watermark WHERE result_time > now() + interval '10 minutes';
"""


def upgrade() -> None:
    op.add_column("api_client", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        op.f("ix_quarantine_platform_obs_id"), "quarantine", ["platform_obs_id"], unique=False
    )
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM ingest_watermark WHERE result_time > now() + "
                            "interval '10 minutes'")).first():
        op.execute(_REWIND)
    if bind.execute(sa.text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar():
        op.execute(_GUARDS)
    else:
        op.execute(
            "DO $$ BEGIN RAISE WARNING 'observation partitions are not guarded against DROP and "
            "DETACH: event triggers need a superuser (run geocredit migrate as one)'; END $$"
        )


def downgrade() -> None:
    op.execute(_DROP_GUARDS)
    op.drop_index(op.f("ix_quarantine_platform_obs_id"), table_name="quarantine")
    op.drop_column("api_client", "expires_at")
