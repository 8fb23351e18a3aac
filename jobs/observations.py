"""Storing checked pages of the observation feed: one transaction per page, watermark included.

Good rows take one of two paths, both binary COPY:
- *new*: rows whose phenomenonTime is later than anything stored for their datastream (the
  ingest's hint, see jobs/ingest.py) cannot collide with a stored row, so they are copied straight
  into `observation` as revision 0 — the common case, about as cheap as a raw COPY;
- *merge*: every other row (late, re-sent, corrected, repeated within the page) is copied into a
  temporary staging table and merged by one set-based statement, idempotent on (datastream,
  phenomenonTime): the same value again is a no-op, a new value a new revision.
Should a "new" row collide after all (someone else wrote observations), the page is stored again
with every row on the merge path. Touched (datastream, local day) pairs are marked in dirty_day.
"""

import contextlib
import os
import socket
import struct
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import errors

from jobs.dirty_days import Marks
from registry import db

WATERMARK_SOURCE = "observations"  # ingest_watermark.source of the platform's feed
LOCK = "geocredit.pull"  # advisory lock: one pull at a time

APPLICATION_NAME = "geocredit-ingest"  # of the storing connection, for pg_stat_activity

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_PG_EPOCH_US = 946_684_800 * 1_000_000  # binary timestamptz counts µs from 2000-01-01

SEND_BUFFER_BYTES = 4 << 20  # a page of COPY data is ~1 MB

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_TRAILER = struct.pack("!h", -1)
# after a row's prefix (field count, well_id, datastream_id[, revision 0]):
_NEW_ROW = struct.Struct("!iqidiqiq")  # phenomenon_time, value, result_time, platform_obs_id
_STAGE_ROW = struct.Struct("!iiiqidiqiq")  # seq, then the same
_NEW_COPY_ROW = struct.Struct("!hiiiiih" + _NEW_ROW.format[1:])  # Target.new_prefix + _NEW_ROW


def to_datetime(us: int | None) -> datetime | None:
    return None if us is None else EPOCH + us * _US


@dataclass(frozen=True, slots=True)
class Target:
    """Where a datastream's rows go: binary COPY prefixes with its well and datastream ids."""

    datastream_id: int
    new_prefix: bytes
    stage_prefix: bytes

    @classmethod
    def of(cls, well_id: int, datastream_id: int) -> "Target":
        return cls(
            datastream_id,
            struct.pack("!hiiiiih", 7, 4, well_id, 4, datastream_id, 2, 0),
            struct.pack("!hiiii", 7, 4, well_id, 4, datastream_id),
        )


@dataclass
class Batch:
    """One page, checked. A good row is (target, seq, phenomenon µs, value, result µs, @iot.id)."""

    new: list[tuple] = field(default_factory=list)
    merge: list[tuple] = field(default_factory=list)
    dirty: set[tuple[int, int]] = field(default_factory=set)  # (datastream_id, day ordinal) of new
    quarantine: list[tuple] = field(default_factory=list)  # rows the watermark passes
    # rows later pulls may read again (no valid (resultTime, id), or a resultTime not yet due):
    # each is stored once, however often it is read
    reread: list[tuple] = field(default_factory=list)
    unknown: set = field(default_factory=set)  # datastream ids not in the registry
    months: set[date] = field(default_factory=set)  # partitions the good rows need
    last: tuple[int, int] | None = None  # the greatest (resultTime µs, @iot.id) read
    overlap: int = 0  # rows at or below the watermark, skipped
    copy_new: bytes | None = None  # `new` as binary COPY data, once encoded
    new_seqs: array | None = None  # and their seqs, for the rare merge of every row
    new_count: int = 0

    def encode(self) -> "Batch":
        """Turn the new rows into the COPY data the store sends — done by the checking side, so
        that PostgreSQL is not idle while the storing side packs.

        The rows' tuples are dropped then: freed by reference counting before the cyclic GC
        ever walks them (10^4 per page, which would otherwise be walked again as they age)."""
        self.copy_new = _new_copy(self.new)
        self.new_seqs = array("i", [row[1] for row in self.new])
        self.new_count = len(self.new)
        self.new = []
        return self

    def decoded_new(self) -> list[tuple]:
        """The new rows back from their COPY data."""
        assert self.copy_new is not None and self.new_seqs is not None
        off = _PG_EPOCH_US
        body = memoryview(self.copy_new)[len(_SIGNATURE) : -len(_TRAILER)]
        return [
            (Target.of(well, ds), seq, pt + off, v, rt + off, oid)
            for seq, (_, _, well, _, ds, _, _, _, pt, _, v, _, rt, _, oid) in zip(
                self.new_seqs, _NEW_COPY_ROW.iter_unpack(body), strict=True
            )
        ]


@dataclass
class Stored:
    stored: int = 0  # new (datastream, phenomenonTime) observations
    revisions: int = 0
    duplicates: int = 0


_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS ingest_stage (
    well_id int, datastream_id int, seq int, phenomenon_time timestamptz, value float8,
    result_time timestamptz, platform_obs_id bigint
) ON COMMIT DELETE ROWS
"""
_COLUMNS = "phenomenon_time, value, result_time, platform_obs_id"
_COPY_NEW = f"COPY observation (well_id, datastream_id, revision, {_COLUMNS}) FROM STDIN BINARY"
_COPY_STAGE = f"COPY ingest_stage (well_id, datastream_id, seq, {_COLUMNS}) FROM STDIN BINARY"

# Rows of one key are taken in feed order (seq); each whose value differs from the one before it
# (for the first: the stored latest revision) is a new revision, so the outcome does not depend on
# where pages break. A row stored before (same platform @iot.id: the feed read again) is no new
# revision, but it is the "one before" for the rows after it. A key not stored yet gets revision 0
# from `firsts`, whose conflict check is the primary key itself; only keys already stored or
# repeated in the page are looked up.
_MERGE = """
WITH staged AS (
    SELECT *, row_number() OVER w AS nth,
           count(*) OVER (PARTITION BY well_id, datastream_id, phenomenon_time) AS n
    FROM ingest_stage
    WINDOW w AS (PARTITION BY well_id, datastream_id, phenomenon_time ORDER BY seq)
),
firsts AS (
    INSERT INTO observation
        (well_id, datastream_id, phenomenon_time, revision, value, result_time, platform_obs_id)
    SELECT well_id, datastream_id, phenomenon_time, 0, value, result_time, platform_obs_id
    FROM staged WHERE nth = 1
    ON CONFLICT DO NOTHING
    RETURNING well_id, datastream_id, phenomenon_time
),
rest AS (
    SELECT * FROM staged s
    WHERE n > 1 OR NOT EXISTS (
        SELECT 1 FROM firsts f
        WHERE (f.well_id, f.datastream_id, f.phenomenon_time)
            = (s.well_id, s.datastream_id, s.phenomenon_time))
),
sequenced AS (
    SELECT r.*, l.revision AS latest_revision,
           coalesce(lag(r.value) OVER w, l.value) AS previous,
           coalesce(l.replayed, false) AS replayed
    FROM rest r LEFT JOIN LATERAL (  -- a key's few stored revisions, through the primary key
        SELECT max(o.revision) AS revision,
               (array_agg(o.value ORDER BY o.revision DESC))[1] AS value,
               bool_or(o.platform_obs_id = r.platform_obs_id) AS replayed
        FROM observation o
        WHERE o.well_id = r.well_id AND o.datastream_id = r.datastream_id
          AND o.phenomenon_time = r.phenomenon_time
          AND o.phenomenon_time BETWEEN %(lo)s AND %(hi)s
    ) l ON true
    WINDOW w AS (PARTITION BY r.well_id, r.datastream_id, r.phenomenon_time ORDER BY r.seq)
),
changed AS (
    SELECT *, coalesce(latest_revision + 1, 0) - 1 + row_number() OVER (
               PARTITION BY well_id, datastream_id, phenomenon_time ORDER BY seq) AS revision
    FROM sequenced
    WHERE NOT replayed AND previous IS DISTINCT FROM value
),
revised AS (  -- revision 0 of a key not stored before is the one `firsts` inserted
    INSERT INTO observation
        (well_id, datastream_id, phenomenon_time, revision, value, result_time, platform_obs_id)
    SELECT well_id, datastream_id, phenomenon_time, revision, value, result_time, platform_obs_id
    FROM changed WHERE revision > 0
    RETURNING datastream_id, phenomenon_time
),
dirty AS (  -- the days of the rows merged here, and those of the rows copied as new
    INSERT INTO dirty_day (datastream_id, day)
    SELECT DISTINCT datastream_id,
           ((phenomenon_time - interval '15 minutes') AT TIME ZONE %(tz)s)::date
    FROM (SELECT datastream_id, phenomenon_time FROM firsts
          UNION ALL SELECT datastream_id, phenomenon_time FROM revised) touched
    UNION
    SELECT id, date '0001-01-01' + (ordinal - 1)  -- Python's date ordinals
    FROM unnest(%(dirty_ids)s::int[], %(dirty_days)s::int[]) AS d (id, ordinal)
    ON CONFLICT DO NOTHING
),
mark AS (
    INSERT INTO ingest_watermark (source, result_time, platform_obs_id, updated_at)
    SELECT %(source)s, %(rt)s::timestamptz, %(id)s::bigint, now() WHERE %(id)s::bigint IS NOT NULL
    ON CONFLICT (source) DO UPDATE
    SET result_time = EXCLUDED.result_time, platform_obs_id = EXCLUDED.platform_obs_id,
        updated_at = now()
    WHERE (ingest_watermark.result_time, ingest_watermark.platform_obs_id)
        < (EXCLUDED.result_time, EXCLUDED.platform_obs_id)
)
SELECT (SELECT count(*) FROM firsts), (SELECT count(*) FROM revised)
"""

_QUARANTINE_COLUMNS = (
    "reason, detail, datastream_platform_id, platform_obs_id, phenomenon_time, result_time, raw"
)
_COPY_QUARANTINE = f"COPY quarantine ({_QUARANTINE_COLUMNS}) FROM STDIN"
_REREAD = f"""
INSERT INTO quarantine ({_QUARANTINE_COLUMNS})
SELECT %(reason)s::text, %(detail)s::text, %(ds)s::text, %(oid)s::bigint,
       %(pt)s::timestamptz, %(rt)s::timestamptz, %(raw)s::jsonb
WHERE NOT EXISTS (SELECT 1 FROM quarantine WHERE {{}} AND reason = %(reason)s::text
                  AND raw = %(raw)s::jsonb)
"""
_REREAD_PAIRED = _REREAD.format("platform_obs_id = %(oid)s::bigint")  # indexed
_REREAD_UNPAIRED = _REREAD.format("platform_obs_id IS NULL")
_REREAD_KEYS = ("reason", "detail", "ds", "oid", "pt", "rt", "raw")

_LATEST_STORED = """
SELECT d.id, (SELECT max(o.phenomenon_time) FROM observation o
              WHERE o.well_id = d.well_id AND o.datastream_id = d.id
                AND o.phenomenon_time >= %(since)s)
FROM datastream d
"""


def _new_copy(rows: list[tuple]) -> bytes:
    pack = _NEW_ROW.pack
    off = _PG_EPOCH_US
    return b"".join(
        [
            _SIGNATURE,
            *(
                t.new_prefix + pack(8, pt - off, 8, v, 8, rt - off, 8, oid)
                for t, _, pt, v, rt, oid in rows
            ),
            _TRAILER,
        ]
    )


def _stage_copy(rows: list[tuple]) -> bytes:
    pack = _STAGE_ROW.pack
    off = _PG_EPOCH_US
    return b"".join(
        [
            _SIGNATURE,
            *(
                t.stage_prefix + pack(4, seq, 8, pt - off, 8, v, 8, rt - off, 8, oid)
                for t, seq, pt, v, rt, oid in rows
            ),
            _TRAILER,
        ]
    )


def month_of(us: int) -> date:
    t = EPOCH + us * _US
    return date(t.year, t.month, 1)


def _widen_send_buffer(conn: psycopg.Connection) -> None:
    """Let the kernel take a whole page of COPY data at once on a local (unix) socket: with its
    default buffer (~200 kB) the storing thread wakes, and waits for the GIL, each time
    PostgreSQL has read the next part, while PostgreSQL idles. TCP sockets are left alone: a
    fixed SO_SNDBUF would turn their autotuning off (up to 4 MB) and could shrink them."""
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
        if sock.family == socket.AF_UNIX:
            current = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            if current < SEND_BUFFER_BYTES:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)


class Busy(RuntimeError):
    """Another pull holds the lock."""


class Store:
    """The ingest's own connection, holding the pull's advisory lock.

    Synchronous on purpose: the pull calls it in a worker thread, where libpq waits without the
    GIL, so PostgreSQL stores page k while the event loop fetches and checks page k+1.
    """

    def __init__(self, conn: psycopg.Connection, timezone: str):
        self.conn = conn
        self.timezone = timezone
        self.months: set[date] = set()  # partitions known to exist
        self.marks = Marks()  # dirty days committed by this pull (jobs/dirty_days.py)

    @classmethod
    @contextlib.contextmanager
    def open(cls, url: str, timezone: str) -> Iterator["Store"]:
        """Raises Busy when another pull holds the lock."""
        with psycopg.connect(
            db.libpq_url(url),
            connect_timeout=db.CONNECT_TIMEOUT_S,
            # A commit lost in a crash of the server takes its watermark with it: the next pull
            # reads those pages again. So the ingest need not wait for each commit's WAL flush.
            options="-c timezone=UTC -c synchronous_commit=off",
            application_name=APPLICATION_NAME,
        ) as conn:
            _widen_send_buffer(conn)
            store = cls(conn, timezone)
            if not store._one("SELECT pg_try_advisory_lock(hashtext(%s))", (LOCK,)):
                raise Busy("another pull is running (advisory lock held)")
            conn.execute(_STAGE)
            for (name,) in store._all(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'observation'::regclass"
            ):
                if name.startswith("observation_") and name[12:].isdigit():
                    store.months.add(date(int(name[12:16]), int(name[16:18]), 1))
            conn.commit()
            yield store

    def _all(self, sql: str, params=()) -> list[tuple]:
        return self.conn.execute(sql, params).fetchall()

    def _one(self, sql: str, params=()) -> object:
        rows = self._all(sql, params)
        return rows[0][0] if rows else None

    def watermark(self) -> tuple[datetime, int] | None:
        rows = self._all(
            "SELECT result_time, platform_obs_id FROM ingest_watermark WHERE source = %s",
            (WATERMARK_SOURCE,),
        )
        self.conn.commit()
        return rows[0] if rows else None

    def datastreams(self) -> list[tuple]:
        """(platform_id, id, well_id, indicator, unit, accumulation) of every known datastream."""
        rows = self._all(
            "SELECT platform_id, id, well_id, indicator, unit, accumulation FROM datastream"
        )
        self.conn.commit()
        return rows

    def latest_stored(self, since: datetime) -> dict[int, int]:
        """datastream id -> the latest phenomenonTime (µs) stored at or after `since`."""
        rows = self._all(_LATEST_STORED, {"since": since})
        self.conn.commit()
        return {ds: (t - EPOCH) // _US for ds, t in rows if t is not None}

    def _ensure_partitions(self, months: set[date]) -> None:
        """Create missing monthly partitions first, in their own short transaction."""
        missing = months - self.months
        if not missing:
            return
        with self.conn.transaction():
            for month in sorted(missing):
                self.conn.execute("SELECT geocredit_ensure_observation_partition(%s)", (month,))
        self.months |= missing

    def store(self, batch: Batch) -> Stored:
        """Store one page and move the watermark, in one transaction."""
        self._ensure_partitions(batch.months)
        if batch.copy_new is None:
            batch.encode()
        try:
            return self._store(batch, batch.merge, new=True)
        except errors.UniqueViolation:
            # A "new" row was stored already (by someone else): merge every row instead.
            rows = sorted(batch.decoded_new() + batch.merge, key=lambda r: r[1])
            return self._store(batch, rows, new=False)

    def _store(self, batch: Batch, merge: list[tuple], new: bool) -> Stored:
        """COPY the rows (the batch's new ones if `new`), then one statement: merge, dirty
        days, watermark."""
        conn = self.conn
        n_new = batch.new_count if new else 0
        with conn.transaction(), conn.cursor() as cur:
            unsent = self.marks.unsent(cur, batch.dirty)
            marks = unsent if n_new else []
            if n_new:
                with cur.copy(_COPY_NEW) as copy:
                    copy.write(batch.copy_new)
            if merge:
                with cur.copy(_COPY_STAGE) as copy:
                    copy.write(_stage_copy(merge))
            if batch.quarantine:
                with cur.copy(_COPY_QUARANTINE) as copy:
                    for entry in batch.quarantine:
                        copy.write_row(entry)
            for entry in batch.reread:
                row = dict(zip(_REREAD_KEYS, entry, strict=True))
                cur.execute(_REREAD_UNPAIRED if row["oid"] is None else _REREAD_PAIRED, row)
            pts = [r[2] for r in merge]
            rt, oid = batch.last or (None, None)
            params = {
                "lo": to_datetime(min(pts, default=None)),
                "hi": to_datetime(max(pts, default=None)),
                "tz": self.timezone,
                # array literals: psycopg would dump a list's elements one by one
                "dirty_ids": "{" + ",".join([str(d) for d, _ in marks]) + "}",
                "dirty_days": "{" + ",".join([str(day) for _, day in marks]) + "}",
                "source": WATERMARK_SOURCE,
                "rt": to_datetime(rt),
                "id": oid,
            }
            merged, revisions = cur.execute(_MERGE, params).fetchone()
        self.marks.committed(marks)
        stored = n_new + merged
        return Stored(stored, revisions, n_new + len(merge) - stored - revisions)
