"""The dirty-day claim protocol: a pull marks the (datastream, local day)s its rows touch in
`dirty_day`; the rollup claims a day's marks and recomputes them. No mark may be lost between
the two.

A pull remembers the dirty-day marks it has committed and does not send them again: a page of
the feed touches the same ~2,000 (datastream, day) pairs as the page before, and re-inserting
them cost PostgreSQL ~13 ms a page. A remembered mark may have been claimed by a rollup since,
which would then miss this page's rows: so a rollup claims marks only under this lock, taken
exclusively, after counting its claim in the sequence; a page holds the lock shared from the
start of its transaction, and forgets what it remembers when the count has moved.
"""

from datetime import date

import psycopg
import sqlalchemy as sa

_CLAIMS_KEY = "hashtext('geocredit.dirty_day')"
CLAIMS_LOCK = f"SELECT pg_advisory_xact_lock({_CLAIMS_KEY})"  # a rollup's, to claim
CLAIMS_LOCK_SHARED = f"SELECT pg_advisory_xact_lock_shared({_CLAIMS_KEY})"  # a page's
COUNT_CLAIM = "SELECT nextval('dirty_day_claims')"
CLAIMS_COUNT = "SELECT last_value, is_called FROM dirty_day_claims"
REMEMBERED_MARKS = 200_000  # at most, then forgotten

# The claimed rows, in the temporary table `claim`, with their local day's bounds: observations
# with phenomenon time in [t0, t1) belong to the day (t − slot on the day), `nslots` slots in the
# day (96, except on DST days elsewhere).
_CLAIM = sa.text(
    """
    CREATE TEMP TABLE claim ON COMMIT DROP AS
    WITH taken AS (DELETE FROM dirty_day WHERE day = :day RETURNING datastream_id, day)
    SELECT t.datastream_id, t.day, s.well_id, s.indicator, s.accumulation,
           (t.day::timestamp AT TIME ZONE :tz) + :slot AS t0,
           ((t.day + 1)::timestamp AT TIME ZONE :tz) + :slot AS t1,
           (extract(epoch FROM ((t.day + 1)::timestamp AT TIME ZONE :tz)
                              - (t.day::timestamp AT TIME ZONE :tz)) / :slot_s)::int AS nslots
    FROM taken t JOIN datastream s ON s.id = t.datastream_id
    """
)


def claim_day(conn: sa.Connection, day: date, params: dict) -> int:
    """The rollup's side, in its transaction: take every mark of `day` into the temporary table
    `claim` (dropped at commit); how many. `params`: tz, slot, slot_s."""
    conn.execute(sa.text(CLAIMS_LOCK))
    conn.execute(sa.text(COUNT_CLAIM))
    conn.execute(_CLAIM, params | {"day": day})
    return conn.scalar(sa.text("SELECT count(*) FROM claim"))


class Marks:
    """The pull's side: the marks it has committed, valid while no rollup has claimed since."""

    def __init__(self) -> None:
        self.marked: set[tuple[int, int]] = set()  # (datastream id, day ordinal) committed
        self.claims: tuple | None = None  # the rollups' claim count when `marked` was valid

    def unsent(self, cur: psycopg.Cursor, dirty: set[tuple[int, int]]) -> list[tuple[int, int]]:
        """At the start of a page's transaction: take the lock shared (to the transaction's
        end) and return the marks of `dirty` still to send, sorted."""
        cur.execute(CLAIMS_LOCK_SHARED)
        claims = cur.execute(CLAIMS_COUNT).fetchone()
        if claims != self.claims or len(self.marked) > REMEMBERED_MARKS:
            self.marked.clear()
            self.claims = claims
        return sorted(dirty - self.marked)

    def committed(self, marks: list[tuple[int, int]]) -> None:
        """After the page's transaction committed with `marks`."""
        self.marked.update(marks)
